//! Boot environment names: one dataset component, checked before anything
//! runs.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The longest boot environment name accepted (ZFS's limit applies to the
/// whole dataset name; this leaves room for the root and children).
pub const MAX_LEN: usize = 128;

/// A boot environment's name: the last component of its dataset
/// (`debian-v43` of `rpool/ROOT/debian-v43`). Letters, digits, `_`, `-`,
/// `.` and `:`, starting with a letter or digit, at most [`MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct BeName(String);

impl BeName {
    /// Checks `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<BeName, Error> {
        let name = name.into();
        let refuse = |reason: &str| Error::Name {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let Some(first) = name.chars().next() else {
            return Err(refuse("it is empty"));
        };
        if !first.is_ascii_alphanumeric() {
            return Err(refuse("it must start with a letter or a digit"));
        }
        if name.len() > MAX_LEN {
            return Err(refuse(&format!("longer than {MAX_LEN} bytes")));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
        {
            return Err(refuse(&format!(
                "character {c:?} is not allowed (letters, digits, '_', '-', '.', ':')"
            )));
        }
        Ok(BeName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BeName {
    type Err = Error;
    fn from_str(s: &str) -> Result<BeName, Error> {
        BeName::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_seeds_names() {
        for n in [
            "pre-upgrade-20261201",
            "golden-v43",
            "a",
            "debian_12.5",
            "x:y",
        ] {
            assert_eq!(BeName::new(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn refuses_hostile_names() {
        for n in [
            "", "-rf", ".hidden", "a/b", "a@b", "a b", "a;reboot", "a%b", "a\nb", "é",
        ] {
            assert!(BeName::new(n).is_err(), "{n:?} was accepted");
        }
        assert!(BeName::new("a".repeat(MAX_LEN + 1)).is_err());
    }

    proptest! {
        /// Every accepted name is a valid dataset component.
        #[test]
        fn accepted_names_are_dataset_components(s in "\\PC{0,40}") {
            if let Ok(name) = BeName::new(s) {
                let ds = kld_zfs::name::DatasetName::new(format!("rpool/ROOT/{name}"));
                prop_assert!(ds.is_ok());
                prop_assert!(!name.as_str().starts_with('-'));
            }
        }
    }
}
