//! Time for kld's tools: UTC stamps in snapshot names, ISO dates in tables,
//! and durations such as `30d` on the command line. UTC because local time
//! repeats an hour every autumn; UTC stamps sort and never collide.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The civil date and time (UTC) of an epoch second:
/// (year, month, day, hour, minute, second).
pub fn civil(epoch: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

/// The epoch second of a civil date and time (UTC).
pub fn from_civil(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<u64> {
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(secs).ok()
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `YYYYMMDD-HHMMSS` in UTC, the stamp in ksnap's snapshot names.
pub fn stamp(epoch: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Reads a `YYYYMMDD-HHMMSS` stamp back.
pub fn parse_stamp(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 15
        || b[8] != b'-'
        || !text[..8]
            .bytes()
            .chain(text[9..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text[r].parse::<u32>().ok();
    from_civil(
        i64::from(n(0..4)?),
        n(4..6)?,
        n(6..8)?,
        n(9..11)?,
        n(11..13)?,
        n(13..15)?,
    )
}

/// Reads a time in C's `ctime` format (`Tue Nov 24 07:22:19 2026`, as
/// `zpool status` prints it) as UTC.
pub fn parse_ctime(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_weekday, month, day, clock, year] = fields[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let mut hms = clock.split(':').map(|n| n.parse::<u32>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() {
        return None;
    }
    from_civil(year.parse().ok()?, month, day.parse().ok()?, h, mi, s)
}

/// `2026-01-24 15:30:00Z`.
pub fn iso_utc(epoch: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

/// Parses a duration: a number and a unit, `s`, `m`, `h`, `d` or `w`
/// (several may follow each other: `1d12h`).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {text:?}: expected e.g. 30d, 12h, 2w or 1d12h");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match rest[digits..].chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(stamp(1_795_504_606), "20261124-071646");
        assert_eq!(iso_utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(parse_stamp("20000229-000000"), Some(951_782_400));
        assert_eq!(parse_stamp("20010229-000000"), None);
        assert_eq!(parse_stamp("2026112-0726460"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("1d12h"), Ok(36 * 3600));
        for bad in ["", "d", "10", "5y", "-1d", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_the_date_command() {
        let out = kld_exec::Cmd::new("date")
            .args(["-u", "-d", "@1700000000", "+%Y%m%d-%H%M%S"])
            .run()
            .unwrap();
        assert_eq!(out.stdout_str().trim(), stamp(1_700_000_000));
    }

    #[test]
    fn ctime_as_zpool_prints_it() {
        assert_eq!(
            parse_ctime("Tue Nov 24 07:22:19 2026"),
            from_civil(2026, 11, 24, 7, 22, 19)
        );
        assert_eq!(
            parse_ctime("Tue Dec  1 18:00:00 2026"),
            from_civil(2026, 12, 1, 18, 0, 0)
        );
        assert_eq!(parse_ctime("Tue Dec 1 18:00 2026"), None);
        assert_eq!(parse_ctime("Tue Foo 1 18:00:00 2026"), None);
    }

    proptest! {
        #[test]
        fn ctime_round_trips(epoch in 0u64..253_402_300_799) {
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let (y, mo, d, h, mi, s) = civil(epoch);
            let text = format!("Mon {} {d:2} {h:02}:{mi:02}:{s:02} {y}", MONTHS[mo as usize - 1]);
            prop_assert_eq!(parse_ctime(&text), Some(epoch));
        }

        #[test]
        fn stamps_round_trip(epoch in 0u64..253_402_300_799) {
            prop_assert_eq!(parse_stamp(&stamp(epoch)), Some(epoch));
        }

        #[test]
        fn stamps_sort_like_time(a in 0u64..4_000_000_000, b in 0u64..4_000_000_000) {
            prop_assert_eq!(stamp(a).cmp(&stamp(b)), a.cmp(&b));
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,20}") {
            let _ = parse_ctime(&text);
            let _ = parse_duration(&text);
            let _ = parse_stamp(&text);
        }
    }
}
