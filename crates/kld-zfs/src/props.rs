//! Property assignments (`name=value`), checked before any program runs
//! wherever OpenZFS fixes the values, and user properties (`module:name`).

use std::fmt;

/// Why a property assignment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid property {text:?}: {reason}")]
pub struct PropertyError {
    /// The assignment or name given.
    pub text: String,
    /// What is wrong, and what would be right.
    pub reason: String,
}

/// The longest user property name OpenZFS accepts.
pub const MAX_USER_PROPERTY_NAME: usize = 255;
/// The longest user property value OpenZFS accepts, in bytes.
pub const MAX_USER_PROPERTY_VALUE: usize = 8191;

/// What values a native property takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// One of these words.
    Words(&'static [&'static str]),
    /// `on` or `off`.
    OnOff,
    /// A size (`1G`, `512M`, `1048576`) or `none`.
    SizeOrNone,
    /// A power of two between the bounds, in bytes.
    BlockSize(u64, u64),
    /// An absolute path, `legacy` or `none`.
    Mountpoint,
    /// A compression algorithm, with level where it has one.
    Compression,
    /// Anything ZFS itself checks (free text without tabs or newlines).
    Free,
}

const ON_OFF: &[&str] = &["on", "off"];

/// Native properties kld knows, with the values each takes.
const NATIVE: &[(&str, Kind)] = &[
    ("compression", Kind::Compression),
    ("atime", Kind::OnOff),
    ("relatime", Kind::OnOff),
    ("readonly", Kind::OnOff),
    ("exec", Kind::OnOff),
    ("setuid", Kind::OnOff),
    ("devices", Kind::OnOff),
    ("overlay", Kind::OnOff),
    ("vscan", Kind::OnOff),
    ("nbmand", Kind::OnOff),
    ("zoned", Kind::OnOff),
    ("utf8only", Kind::OnOff),
    ("canmount", Kind::Words(&["on", "off", "noauto"])),
    ("mountpoint", Kind::Mountpoint),
    ("recordsize", Kind::BlockSize(512, 16 << 20)),
    ("volblocksize", Kind::BlockSize(512, 128 << 10)),
    ("quota", Kind::SizeOrNone),
    ("refquota", Kind::SizeOrNone),
    ("reservation", Kind::SizeOrNone),
    ("refreservation", Kind::SizeOrNone),
    ("volsize", Kind::SizeOrNone),
    ("special_small_blocks", Kind::SizeOrNone),
    ("xattr", Kind::Words(&["on", "off", "sa", "dir"])),
    (
        "acltype",
        Kind::Words(&["off", "noacl", "nfsv4", "posix", "posixacl"]),
    ),
    (
        "aclinherit",
        Kind::Words(&[
            "discard",
            "noallow",
            "restricted",
            "passthrough",
            "passthrough-x",
        ]),
    ),
    (
        "aclmode",
        Kind::Words(&["discard", "groupmask", "passthrough", "restricted"]),
    ),
    (
        "dnodesize",
        Kind::Words(&["legacy", "auto", "1k", "2k", "4k", "8k", "16k"]),
    ),
    ("sync", Kind::Words(&["standard", "always", "disabled"])),
    ("logbias", Kind::Words(&["latency", "throughput"])),
    ("primarycache", Kind::Words(&["all", "none", "metadata"])),
    ("secondarycache", Kind::Words(&["all", "none", "metadata"])),
    ("copies", Kind::Words(&["1", "2", "3"])),
    ("snapdir", Kind::Words(&["hidden", "visible"])),
    ("redundant_metadata", Kind::Words(&["all", "most"])),
    (
        "volmode",
        Kind::Words(&["default", "full", "geom", "dev", "none"]),
    ),
    (
        "normalization",
        Kind::Words(&["none", "formC", "formD", "formKC", "formKD"]),
    ),
    (
        "casesensitivity",
        Kind::Words(&["sensitive", "insensitive", "mixed"]),
    ),
    (
        "checksum",
        Kind::Words(&[
            "on",
            "off",
            "fletcher2",
            "fletcher4",
            "sha256",
            "noparity",
            "sha512",
            "skein",
            "edonr",
        ]),
    ),
    (
        "dedup",
        Kind::Words(&[
            "on",
            "off",
            "verify",
            "sha256",
            "sha256,verify",
            "sha512",
            "sha512,verify",
            "skein",
            "skein,verify",
            "edonr,verify",
        ]),
    ),
    (
        "encryption",
        Kind::Words(&[
            "on",
            "off",
            "aes-128-ccm",
            "aes-192-ccm",
            "aes-256-ccm",
            "aes-128-gcm",
            "aes-192-gcm",
            "aes-256-gcm",
        ]),
    ),
    ("keyformat", Kind::Words(&["raw", "hex", "passphrase"])),
    ("keylocation", Kind::Free),
    ("pbkdf2iters", Kind::Free),
    ("sharenfs", Kind::Free),
    ("sharesmb", Kind::Free),
    ("context", Kind::Free),
    ("fscontext", Kind::Free),
    ("defcontext", Kind::Free),
    ("rootcontext", Kind::Free),
    ("filesystem_limit", Kind::Free),
    ("snapshot_limit", Kind::Free),
];

/// A checked `name=value` assignment, ready to pass to `zfs create -o` or
/// `zfs set`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Property {
    name: String,
    value: String,
}

impl Property {
    /// Checks a property and value. Native properties must be known and take
    /// a value of their kind; user properties (`module:name`) take any value
    /// up to OpenZFS's limit.
    pub fn new(name: &str, value: &str) -> Result<Property, PropertyError> {
        let bad = |reason: String| PropertyError {
            text: format!("{name}={value}"),
            reason,
        };
        if value.contains(['\t', '\n', '\r', '\0']) {
            return Err(bad("values may not hold tabs, newlines or NUL".into()));
        }
        if name.contains(':') {
            check_user_name(name).map_err(bad)?;
            if value.len() > MAX_USER_PROPERTY_VALUE {
                return Err(bad(format!(
                    "a user property value is at most {MAX_USER_PROPERTY_VALUE} bytes"
                )));
            }
        } else {
            let kind = native_kind(name).ok_or_else(|| {
                bad(format!(
                    "unknown property {name:?} (a user property needs a ':', e.g. kld:{name})"
                ))
            })?;
            check_value(kind, value).map_err(bad)?;
        }
        Ok(Property {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Parses `name=value`.
    pub fn parse(text: &str) -> Result<Property, PropertyError> {
        let (name, value) = text.split_once('=').ok_or_else(|| PropertyError {
            text: text.to_owned(),
            reason: "expected NAME=VALUE".into(),
        })?;
        Property::new(name, value)
    }

    /// The property's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// Checks a property *name* alone (for `zfs get`/`zfs inherit`): a native
/// property kld knows, or a valid user property name.
pub fn check_property_name(name: &str) -> Result<(), PropertyError> {
    let bad = |reason: String| PropertyError {
        text: name.to_owned(),
        reason,
    };
    if name.contains(':') {
        check_user_name(name).map_err(bad)
    } else if native_kind(name).is_some() {
        Ok(())
    } else {
        Err(bad(format!("unknown property {name:?}")))
    }
}

fn native_kind(name: &str) -> Option<Kind> {
    NATIVE.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

fn check_user_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_USER_PROPERTY_NAME {
        return Err(format!(
            "a user property name is at most {MAX_USER_PROPERTY_NAME} bytes"
        ));
    }
    if name.starts_with(':') || name.starts_with('-') {
        return Err("a user property name needs a module before ':' (e.g. kld:note)".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(*c)))
    {
        return Err(format!("character {c:?} is not allowed in a user property name (lower-case letters, digits, '-', '_', '.', ':')"));
    }
    Ok(())
}

fn check_value(kind: Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Words(words) => one_of(words, value),
        Kind::OnOff => one_of(ON_OFF, value),
        Kind::Free => Ok(()),
        Kind::SizeOrNone => {
            if value == "none" || value == "auto" {
                Ok(())
            } else {
                parse_zfs_size(value).map(|_| ())
            }
        }
        Kind::BlockSize(min, max) => {
            let size = parse_zfs_size(value)?;
            if size.is_power_of_two() && (min..=max).contains(&size) {
                Ok(())
            } else {
                Err(format!(
                    "expected a power of two from {min} to {max} bytes, e.g. 128K"
                ))
            }
        }
        Kind::Mountpoint => {
            if value == "legacy" || value == "none" {
                Ok(())
            } else if !value.starts_with('/') {
                Err("expected an absolute path, legacy or none".into())
            } else if value.split('/').any(|c| c == "..") {
                Err("a mountpoint may not contain '..'".into())
            } else {
                Ok(())
            }
        }
        Kind::Compression => check_compression(value),
    }
}

fn one_of(words: &[&str], value: &str) -> Result<(), String> {
    if words.contains(&value) {
        Ok(())
    } else {
        Err(format!("expected one of: {}", words.join(", ")))
    }
}

fn check_compression(value: &str) -> Result<(), String> {
    let level = |prefix: &str, ok: &dyn Fn(u32) -> bool| {
        value
            .strip_prefix(prefix)
            .and_then(|l| l.parse::<u32>().ok())
            .is_some_and(ok)
    };
    let plain = [
        "on",
        "off",
        "lz4",
        "lzjb",
        "zle",
        "gzip",
        "zstd",
        "zstd-fast",
    ]
    .contains(&value);
    let fast = |l: u32| {
        (1..=10).contains(&l)
            || (l.is_multiple_of(10) && (20..=100).contains(&l))
            || l == 500
            || l == 1000
    };
    if plain
        || level("gzip-", &|l| (1..=9).contains(&l))
        || level("zstd-fast-", &fast)
        || level("zstd-", &|l| (1..=19).contains(&l))
    {
        Ok(())
    } else {
        Err("expected on, off, lz4, lzjb, zle, gzip[-1..9], zstd[-1..19] or zstd-fast[-N]".into())
    }
}

/// Parses a size the way `zfs` reads one: a number (decimals allowed) with
/// an optional suffix `B K M G T P E`, optionally followed by `B` or `iB`;
/// all binary.
pub fn parse_zfs_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size (e.g. 512M, 1.5G, 1048576)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number.matches('.').count() > 1 || number.ends_with('.') {
        return Err(bad());
    }
    let suffix = suffix.to_ascii_uppercase();
    let unit = suffix
        .strip_suffix("IB")
        .or_else(|| suffix.strip_suffix('B').filter(|u| !u.is_empty()))
        .unwrap_or(&suffix);
    let shift = match unit {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "E" => 60,
        _ => return Err(bad()),
    };
    let value = number.parse::<f64>().map_err(|_| bad())? * (1u64 << shift) as f64;
    if !value.is_finite() || value >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    if shift == 0 && number.contains('.') {
        return Err(bad());
    }
    Ok(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn native_values_are_checked() {
        for ok in [
            "compression=zstd-3",
            "compression=lz4",
            "compression=zstd-fast-500",
            "recordsize=1M",
            "recordsize=8K",
            "recordsize=16384",
            "atime=off",
            "canmount=noauto",
            "mountpoint=/srv/db",
            "mountpoint=legacy",
            "quota=10G",
            "quota=none",
            "refreservation=auto",
            "xattr=sa",
        ] {
            Property::parse(ok).unwrap();
        }
        for bad in [
            "compression=zstd-20",
            "compression=gzip-0",
            "recordsize=100K",
            "recordsize=32M",
            "atime=yes",
            "canmount=maybe",
            "mountpoint=srv",
            "mountpoint=/srv/../etc",
            "quota=lots",
            "compresion=lz4",
            "noequals",
            "atime=off\nfoo",
        ] {
            assert!(Property::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn typos_get_a_hint() {
        let err = Property::parse("kldnote=x").unwrap_err();
        assert!(err.reason.contains("kld:kldnote"), "{err}");
    }

    #[test]
    fn user_properties() {
        Property::parse("org.zfsbootmenu:commandline=quiet loglevel=4").unwrap();
        Property::parse("kld:note=any text; even = signs").unwrap();
        assert!(Property::parse("kld:Note=x").is_err());
        assert!(Property::parse(":x=y").is_err());
        assert!(Property::new("kld:x", &"v".repeat(9000)).is_err());
        check_property_name("kld:note").unwrap();
        check_property_name("used").unwrap_err();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_zfs_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_zfs_size("128KiB"), Ok(128 << 10));
        assert_eq!(parse_zfs_size("1m"), Ok(1 << 20));
        assert_eq!(parse_zfs_size("7"), Ok(7));
        for bad in ["", "G", "1.2.3G", "1.", "1X", "1.5", "-1G", "99999E"] {
            assert!(parse_zfs_size(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn property_display_round_trips(name in "[a-z]{1,8}:[a-z0-9_.-]{1,12}", value in "[ -~]{0,40}") {
            let p = Property::new(&name, &value).unwrap();
            prop_assert_eq!(Property::parse(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn never_panics(text in "\\PC{0,40}") {
            let _ = Property::parse(&text);
            let _ = parse_zfs_size(&text);
        }
    }
}
