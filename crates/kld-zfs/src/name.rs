//! Names of pools, datasets, snapshots and bookmarks, checked against
//! OpenZFS's naming rules when they are made, so that an invalid or hostile
//! name is refused before any program runs.
//!
//! The rules (OpenZFS `zfs_namecheck.c`): a component holds only ASCII
//! letters, digits, `_`, `-`, `.`, `:` and space; it is never empty, `.` or
//! `..`; a whole name is at most 255 bytes; a pool name begins with a letter
//! and is not a vdev keyword (`mirror`, `raidz…`, `draid…`, `spare`, `log`).

use std::fmt;
use std::str::FromStr;

/// The longest name OpenZFS accepts, in bytes (`ZFS_MAX_DATASET_NAME_LEN` - 1).
pub const MAX_NAME_LEN: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct NameError {
    /// What kind of name it was meant to be ("pool", "dataset", ...).
    pub kind: &'static str,
    /// The text given (possibly truncated for display).
    pub name: String,
    /// The rule it breaks.
    pub reason: String,
}

fn refuse(kind: &'static str, name: &str, reason: impl Into<String>) -> NameError {
    let shown: String = name.chars().take(80).collect();
    NameError {
        kind,
        name: shown,
        reason: reason.into(),
    }
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' ')
}

/// Checks one component (between `/`, or after `@` or `#`).
fn check_component(kind: &'static str, whole: &str, part: &str) -> Result<(), NameError> {
    if part.is_empty() {
        return Err(refuse(
            kind,
            whole,
            "empty component (doubled or trailing '/')",
        ));
    }
    if part == "." || part == ".." {
        return Err(refuse(
            kind,
            whole,
            format!("component {part:?} is not allowed"),
        ));
    }
    if let Some(c) = part.chars().find(|c| !valid_char(*c)) {
        return Err(refuse(
            kind,
            whole,
            format!("character {c:?} is not allowed (only letters, digits, '_', '-', '.', ':' and space)"),
        ));
    }
    Ok(())
}

fn check_length(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(refuse(
            kind,
            name,
            format!("{} bytes, the limit is {MAX_NAME_LEN}", name.len()),
        ));
    }
    Ok(())
}

fn check_pool(kind: &'static str, whole: &str, pool: &str) -> Result<(), NameError> {
    check_component(kind, whole, pool)?;
    if !pool.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(refuse(kind, whole, "a pool name must begin with a letter"));
    }
    let reserved = ["mirror", "raidz", "draid", "spare", "log"];
    if reserved.iter().any(|r| pool.starts_with(r)) {
        return Err(refuse(
            kind,
            whole,
            "a pool name may not begin with a vdev keyword (mirror, raidz, draid, spare, log)",
        ));
    }
    Ok(())
}

fn check_dataset(kind: &'static str, whole: &str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(refuse(kind, whole, "empty name"));
    }
    let mut parts = name.split('/');
    check_pool(kind, whole, parts.next().unwrap_or_default())?;
    for part in parts {
        check_component(kind, whole, part)?;
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `name` and wraps it.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                check_length($kind, &name)?;
                let check: fn(&str) -> Result<(), NameError> = $check;
                check(&name)?;
                Ok($name(name))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::ffi::OsStr> for $name {
            fn as_ref(&self) -> &std::ffi::OsStr {
                self.0.as_ref()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// A pool name, e.g. `rpool`.
    PoolName,
    "pool",
    |n| check_pool("pool", n, n)
);

string_newtype!(
    /// A dataset (filesystem or volume) name, e.g. `rpool/ROOT/debian`.
    DatasetName,
    "dataset",
    |n| check_dataset("dataset", n, n)
);

string_newtype!(
    /// A snapshot name, `DATASET@SNAP`, e.g. `rpool/home@manual-20260101-120000`.
    SnapshotName,
    "snapshot",
    |n| match n.split_once('@') {
        Some((ds, snap)) => {
            check_dataset("snapshot", n, ds)?;
            check_component("snapshot", n, snap)
        }
        None => Err(refuse("snapshot", n, "missing '@' (expected DATASET@SNAPSHOT)")),
    }
);

string_newtype!(
    /// A bookmark name, `DATASET#BOOKMARK`.
    BookmarkName,
    "bookmark",
    |n| match n.split_once('#') {
        Some((ds, mark)) => {
            check_dataset("bookmark", n, ds)?;
            check_component("bookmark", n, mark)
        }
        None => Err(refuse("bookmark", n, "missing '#' (expected DATASET#BOOKMARK)")),
    }
);

impl DatasetName {
    /// The pool the dataset lives in.
    pub fn pool(&self) -> PoolName {
        PoolName(self.0.split('/').next().unwrap_or_default().to_owned())
    }

    /// The parent dataset, or `None` for a pool's root dataset.
    pub fn parent(&self) -> Option<DatasetName> {
        self.0
            .rsplit_once('/')
            .map(|(p, _)| DatasetName(p.to_owned()))
    }

    /// The last component (`debian` of `rpool/ROOT/debian`).
    pub fn basename(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// A child dataset, `self/component`, checked.
    pub fn child(&self, component: &str) -> Result<DatasetName, NameError> {
        DatasetName::new(format!("{}/{component}", self.0))
    }

    /// The snapshot `self@snap`, checked.
    pub fn snapshot(&self, snap: &str) -> Result<SnapshotName, NameError> {
        SnapshotName::new(format!("{}@{snap}", self.0))
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &DatasetName) -> bool {
        self.0 == other.0
            || self
                .0
                .strip_prefix(&other.0)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// How many `/` separate the dataset from its pool's root (0 for the
    /// root dataset).
    pub fn depth(&self) -> usize {
        self.0.matches('/').count()
    }
}

impl SnapshotName {
    /// The dataset the snapshot belongs to.
    pub fn dataset(&self) -> DatasetName {
        DatasetName(
            self.0
                .split_once('@')
                .map(|(d, _)| d)
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// The part after `@`.
    pub fn short(&self) -> &str {
        self.0.split_once('@').map(|(_, s)| s).unwrap_or_default()
    }
}

impl BookmarkName {
    /// The dataset the bookmark belongs to.
    pub fn dataset(&self) -> DatasetName {
        DatasetName(
            self.0
                .split_once('#')
                .map(|(d, _)| d)
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

impl From<PoolName> for DatasetName {
    fn from(pool: PoolName) -> Self {
        DatasetName(pool.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_names() {
        for n in [
            "rpool",
            "rpool/ROOT/debian",
            "tank/a b",
            "t/x:y.z-_",
            "p/-leading-dash-component",
        ] {
            DatasetName::new(n).unwrap();
        }
        SnapshotName::new("rpool/home@manual-20260101-120000").unwrap();
        BookmarkName::new("rpool/home#mark").unwrap();
        PoolName::new("tank").unwrap();
    }

    #[test]
    fn hostile_and_invalid_names_are_refused() {
        let bad = [
            "",
            "-rpool",
            "rpool/",
            "rpool//x",
            "/rpool",
            "rpool/../etc",
            "rpool/.",
            "rpool/x;rm -rf /",
            "rpool/$(reboot)",
            "rpool/a`b`",
            "rpool/a|b",
            "rpool/a\tb",
            "rpool/a\nb",
            "rpool/é",
            "1pool",
            "mirror/x",
            "raidz1",
            "rpool@snap",
            "rpool#mark",
        ];
        for n in bad {
            assert!(DatasetName::new(n).is_err(), "{n:?} was accepted");
        }
        let long = format!("rpool/{}", "x".repeat(250));
        let err = DatasetName::new(long).unwrap_err();
        assert!(err.reason.contains("limit is 255"), "{err}");
        for n in [
            "rpool",
            "rpool@",
            "rpool@a@b",
            "@x",
            "rpool@x/y",
            "rpool@-x;y",
        ] {
            assert!(SnapshotName::new(n).is_err(), "{n:?} was accepted");
        }
        assert!(PoolName::new("rpool/x").is_err());
    }

    #[test]
    fn errors_name_the_rule() {
        let err = DatasetName::new("rpool/x;y").unwrap_err();
        assert_eq!(err.to_string(), "invalid dataset name \"rpool/x;y\": character ';' is not allowed (only letters, digits, '_', '-', '.', ':' and space)");
    }

    #[test]
    fn relations() {
        let d = DatasetName::new("rpool/ROOT/debian").unwrap();
        assert_eq!(d.pool().as_str(), "rpool");
        assert_eq!(d.parent().unwrap().as_str(), "rpool/ROOT");
        assert_eq!(d.basename(), "debian");
        assert_eq!(d.depth(), 2);
        assert!(d.is_within(&DatasetName::new("rpool/ROOT").unwrap()));
        assert!(!d.is_within(&DatasetName::new("rpool/RO").unwrap()));
        let s = d.snapshot("x").unwrap();
        assert_eq!((s.dataset(), s.short()), (d.clone(), "x"));
        assert!(d.child("a/b").is_ok());
        assert!(d.child("..").is_err());
    }

    fn component() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.: -]{1,12}".prop_filter("not . or ..", |c| c != "." && c != "..")
    }

    proptest! {
        #[test]
        fn valid_names_are_accepted_and_kept(pool in "[a-l][a-z0-9]{0,8}", parts in proptest::collection::vec(component(), 0..4), snap in component()) {
            let name = std::iter::once(pool).chain(parts).collect::<Vec<_>>().join("/");
            let ds = DatasetName::new(name.clone()).unwrap();
            prop_assert_eq!(ds.as_str(), name.as_str());
            let s = ds.snapshot(&snap).unwrap();
            prop_assert_eq!(s.dataset(), ds);
            prop_assert_eq!(s.short(), snap.as_str());
        }

        #[test]
        fn nothing_accepted_holds_a_forbidden_character(text in "\\PC{0,40}") {
            if let Ok(ds) = DatasetName::new(text.clone()) {
                prop_assert!(ds.as_str().chars().all(|c| valid_char(c) || c == '/'));
                prop_assert!(!ds.as_str().starts_with('-'));
                prop_assert!(ds.as_str().len() <= MAX_NAME_LEN);
            }
            let _ = SnapshotName::new(text.clone());
            let _ = BookmarkName::new(text);
        }
    }
}
