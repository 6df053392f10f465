//! Sizes as people write them: `512M`, `2G`, `1048576`.

/// Parses a size in bytes with an optional binary suffix (`K`, `M`, `G`,
/// `T`, optionally followed by `iB` or `B`, any case).
///
/// ```
/// assert_eq!(kld_tests::vm::parse_size("512M"), Ok(512 << 20));
/// assert_eq!(kld_tests::vm::parse_size("2GiB"), Ok(2 << 30));
/// assert!(kld_tests::vm::parse_size("-1G").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let bad = || {
        format!("invalid size {text:?}: expected a number with an optional K, M, G or T suffix, e.g. 512M")
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let size = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))?;
    if size == 0 {
        return Err(format!("size {text:?} must be more than zero"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("3T"), Ok(3 << 40));
        for bad in ["", "G", "1.5G", "1X", "0", "99999999999999999999T", "1 G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(n in 1u64..1_000_000, unit in 0usize..4) {
            let (suffix, shift) = [("K", 10), ("M", 20), ("G", 30), ("T", 40)][unit];
            prop_assert_eq!(parse_size(&format!("{n}{suffix}")), Ok(n << shift));
        }

        #[test]
        fn never_panics(text in "\\PC{0,20}") {
            let _ = parse_size(&text);
        }
    }
}
