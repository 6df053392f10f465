//! The scrub check: how long ago each pool's last scrub completed, and what
//! it found.

use kld_zfs::scan::{Scan, ScanKind};

use super::config::Scrub;
use super::sources::Sources;
use super::{age, age_status, CheckName, CheckResult, Failed, Measurement, Status};
use crate::time::parse_ctime;

pub(super) fn check(config: &Scrub, sources: &Sources) -> Result<CheckResult, Failed> {
    let statuses = sources.pool_status()?;
    if statuses.is_empty() {
        return Err(Failed::Missing("no pool is imported".into()));
    }
    let mut result = CheckResult::new(CheckName::Scrub);
    let mut notable = Vec::new();
    let too_old = |result: &mut CheckResult, name: &str, what: String, age: u64| {
        let status = age_status(age, config.warning_age, config.critical_age);
        if status != Status::Ok {
            result.finding(status, format!("{name}: {what}"));
        }
        status
    };
    for pool in statuses {
        let name = &pool.pool;
        let scan = match pool.scan.as_deref().map(Scan::parse) {
            None => Scan::Never,
            Some(Ok(scan)) => scan,
            Some(Err(e)) => {
                result.finding(Status::Unknown, format!("{name}: {e}"));
                continue;
            }
        };
        let in_progress = matches!(
            scan,
            Scan::InProgress {
                kind: ScanKind::Scrub,
                ..
            }
        );
        result.values.push(
            Measurement::new(
                "kld_pool_scrub_in_progress",
                "Whether a scrub of the pool is running (1) or not (0).",
                f64::from(u8::from(in_progress)),
            )
            .label("pool", name),
        );
        match scan {
            Scan::Never => {
                if too_old(&mut result, name, "never scrubbed".into(), u64::MAX) != Status::Ok {
                    notable.push(format!("{name} never scrubbed"));
                }
            }
            Scan::Finished {
                kind: ScanKind::Scrub,
                repaired,
                errors,
                ended,
            } => {
                let Some(ended_at) = parse_ctime(&ended) else {
                    result.finding(
                        Status::Unknown,
                        format!("{name}: unreadable time {ended:?}"),
                    );
                    continue;
                };
                let scrub_age = sources.now.saturating_sub(ended_at);
                result.values.extend([
                    Measurement::new(
                        "kld_pool_scrub_age_seconds",
                        "Time since the pool's last scrub completed.",
                        scrub_age as f64,
                    )
                    .label("pool", name),
                    Measurement::new(
                        "kld_pool_scrub_errors",
                        "Errors the pool's last scrub could not repair.",
                        errors as f64,
                    )
                    .label("pool", name),
                ]);
                let what = format!(
                    "last scrub completed {} ago (warning after {})",
                    age(scrub_age),
                    age(config.warning_age)
                );
                if too_old(&mut result, name, what, scrub_age) != Status::Ok {
                    notable.push(format!("{name} {} old", age(scrub_age)));
                }
                if errors > 0 {
                    notable.push(format!("{name} {errors} errors"));
                    result.finding(
                        Status::Critical,
                        format!("{name}: the last scrub found {errors} errors it could not repair"),
                    );
                } else if !matches!(repaired.as_str(), "0" | "0B") {
                    notable.push(format!("{name} repaired {repaired}"));
                    result.finding(
                        Status::Warning,
                        format!(
                            "{name}: the last scrub repaired {repaired} (a disk returned bad data)"
                        ),
                    );
                }
            }
            Scan::Finished {
                kind: ScanKind::Resilver,
                ended,
                ..
            } => {
                notable.push(format!("{name} not scrubbed since resilver"));
                result.finding(
                    Status::Warning,
                    format!("{name}: no scrub since the resilver that ended {ended}"),
                );
            }
            Scan::InProgress {
                kind: ScanKind::Scrub,
                percent_done,
                ..
            } => {
                let done = percent_done.map_or(String::new(), |p| format!(" {p:.0}%"));
                notable.push(format!("{name} in progress{done}"));
            }
            Scan::InProgress {
                kind: ScanKind::Resilver,
                ..
            } => notable.push(format!("{name} resilvering")),
            Scan::Paused { since } => {
                notable.push(format!("{name} paused"));
                result.finding(
                    Status::Warning,
                    format!("{name}: scrub paused since {since}"),
                );
            }
            Scan::Canceled { kind, at } => {
                notable.push(format!("{name} canceled"));
                let what = match kind {
                    ScanKind::Scrub => "scrub",
                    ScanKind::Resilver => "resilver",
                };
                result.finding(Status::Warning, format!("{name}: {what} canceled on {at}"));
            }
        }
    }
    result.summary = if notable.is_empty() {
        "clean".into()
    } else {
        notable.join(", ")
    };
    Ok(result)
}
