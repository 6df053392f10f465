//! What the `scan:` and `errors:` paragraphs of `zpool status` say: the last
//! or current scrub or resilver, and the pool's count of data errors, as
//! OpenZFS 2.1 prints them.

use crate::parse::ParseError;

/// Which kind of scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanKind {
    /// `zpool scrub`.
    Scrub,
    /// Rebuilding a replaced or returning device.
    Resilver,
}

/// The state of a pool's scan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Scan {
    /// `none requested`: the pool was never scrubbed or resilvered.
    Never,
    /// A scan that completed.
    Finished {
        /// Scrub or resilver.
        kind: ScanKind,
        /// What it repaired (or resilvered), as printed (`0B`, `1.50M`).
        repaired: String,
        /// Errors it could not repair.
        errors: u64,
        /// When it ended, as printed (ctime format: `Tue Nov 24 07:22:19
        /// 2026`), in the time zone `zpool` ran in ([`Zfs`](crate::Zfs)
        /// runs it with `TZ=UTC`).
        ended: String,
    },
    /// A scan that is running.
    InProgress {
        /// Scrub or resilver.
        kind: ScanKind,
        /// When it started, as printed (see `Finished::ended`).
        since: String,
        /// How far it is, when `zpool` says.
        percent_done: Option<f64>,
    },
    /// A scrub paused with `zpool scrub -p`.
    Paused {
        /// When it was paused, as printed.
        since: String,
    },
    /// A scan that was canceled (`zpool scrub -s`).
    Canceled {
        /// Scrub or resilver.
        kind: ScanKind,
        /// When, as printed.
        at: String,
    },
}

impl Scan {
    /// Parses a `scan:` paragraph (its lines joined by `\n`, as
    /// [`PoolStatus::scan`](crate::parse::PoolStatus::scan) holds it).
    pub fn parse(text: &str) -> Result<Scan, ParseError> {
        let bad = |message: String| ParseError {
            program: "zpool status",
            line: 0,
            message,
        };
        let first = text.lines().next().unwrap_or("").trim();
        let kind_of = |word: &str| match word {
            "scrub" => Some(ScanKind::Scrub),
            "resilver" => Some(ScanKind::Resilver),
            _ => None,
        };
        if first == "none requested" {
            return Ok(Scan::Never);
        }
        if let Some(rest) = first.strip_prefix("scrub paused since ") {
            return Ok(Scan::Paused {
                since: rest.to_owned(),
            });
        }
        let (word, rest) = first.split_once(' ').unwrap_or((first, ""));
        if let Some(kind) = kind_of(word) {
            if let Some(since) = rest.strip_prefix("in progress since ") {
                return Ok(Scan::InProgress {
                    kind,
                    since: since.to_owned(),
                    percent_done: percent_done(text),
                });
            }
            if let Some(at) = rest.strip_prefix("canceled on ") {
                return Ok(Scan::Canceled {
                    kind,
                    at: at.to_owned(),
                });
            }
        }
        // `scrub repaired 0B in 00:00:01 with 0 errors on DATE` or
        // `resilvered 1.50M in 00:00:01 with 0 errors on DATE`.
        let (kind, rest) = if let Some(rest) = first.strip_prefix("scrub repaired ") {
            (ScanKind::Scrub, rest)
        } else if let Some(rest) = first.strip_prefix("resilvered ") {
            (ScanKind::Resilver, rest)
        } else {
            return Err(bad(format!("unknown scan state {first:?}")));
        };
        let (repaired, rest) = rest
            .split_once(" in ")
            .ok_or_else(|| bad(format!("no duration in {first:?}")))?;
        let (_, rest) = rest
            .split_once(" with ")
            .ok_or_else(|| bad(format!("no error count in {first:?}")))?;
        let (errors, ended) = rest
            .split_once(" errors on ")
            .ok_or_else(|| bad(format!("no end time in {first:?}")))?;
        let errors = errors
            .parse()
            .map_err(|_| bad(format!("bad error count {errors:?}")))?;
        Ok(Scan::Finished {
            kind,
            repaired: repaired.to_owned(),
            errors,
            ended: ended.to_owned(),
        })
    }
}

/// `12.34% done` on a progress line.
fn percent_done(text: &str) -> Option<f64> {
    let (before, _) = text.split_once("% done")?;
    let start = before
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    before[start..].parse().ok()
}

/// The number of data errors in an `errors:` line: `No known data errors`
/// is 0, `3 data errors, use '-v' for a list` is 3; `None` for anything
/// else.
pub fn data_errors(line: &str) -> Option<u64> {
    let line = line.trim();
    if line == "No known data errors" {
        return Some(0);
    }
    line.split_once(" data error")?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finished_scrub_and_resilver() {
        assert_eq!(
            Scan::parse("scrub repaired 0B in 00:00:01 with 0 errors on Tue Nov 24 07:22:19 2026")
                .unwrap(),
            Scan::Finished {
                kind: ScanKind::Scrub,
                repaired: "0B".into(),
                errors: 0,
                ended: "Tue Nov 24 07:22:19 2026".into(),
            }
        );
        assert_eq!(
            Scan::parse("resilvered 1.50M in 00:00:02 with 3 errors on Wed Dec  2 01:02:03 2026")
                .unwrap(),
            Scan::Finished {
                kind: ScanKind::Resilver,
                repaired: "1.50M".into(),
                errors: 3,
                ended: "Wed Dec  2 01:02:03 2026".into(),
            }
        );
    }

    #[test]
    fn running_paused_canceled_never() {
        let text = "scrub in progress since Tue Dec  1 18:00:00 2026\n\
                    1.20G scanned at 600M/s, 500M issued at 250M/s, 10.0G total\n\
                    0B repaired, 4.88% done, 00:00:38 to go";
        assert_eq!(
            Scan::parse(text).unwrap(),
            Scan::InProgress {
                kind: ScanKind::Scrub,
                since: "Tue Dec  1 18:00:00 2026".into(),
                percent_done: Some(4.88),
            }
        );
        assert!(matches!(
            Scan::parse("resilver in progress since Tue Dec  1 18:00:00 2026").unwrap(),
            Scan::InProgress {
                kind: ScanKind::Resilver,
                percent_done: None,
                ..
            }
        ));
        assert!(matches!(
            Scan::parse("scrub paused since Tue Dec  1 18:00:00 2026\nscrub started on ...")
                .unwrap(),
            Scan::Paused { .. }
        ));
        assert!(matches!(
            Scan::parse("scrub canceled on Tue Dec  1 18:00:00 2026").unwrap(),
            Scan::Canceled {
                kind: ScanKind::Scrub,
                ..
            }
        ));
        assert_eq!(Scan::parse("none requested").unwrap(), Scan::Never);
        assert!(Scan::parse("scrub repaired 0B").is_err());
        assert!(Scan::parse("defragmented everything").is_err());
    }

    #[test]
    fn error_lines() {
        assert_eq!(data_errors("No known data errors"), Some(0));
        assert_eq!(data_errors("3 data errors, use '-v' for a list"), Some(3));
        assert_eq!(data_errors("1 data error, use '-v' for a list"), Some(1));
        assert_eq!(data_errors("something else"), None);
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = Scan::parse(&text);
            let _ = data_errors(&text);
        }

        #[test]
        fn finished_round_trips(repaired in "[0-9]{1,4}(\\.[0-9]{2})?[BKMGT]", errors in any::<u64>(), day in 1u32..29) {
            let ended = format!("Tue Nov {day:2} 07:22:19 2026");
            let text = format!("scrub repaired {repaired} in 00:00:01 with {errors} errors on {ended}");
            prop_assert_eq!(
                Scan::parse(&text).unwrap(),
                Scan::Finished { kind: ScanKind::Scrub, repaired, errors, ended }
            );
        }
    }
}
