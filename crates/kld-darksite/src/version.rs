//! Debian version numbers (`[epoch:]upstream[-revision]`) and their order,
//! as Debian Policy §5.6.12 defines it and `dpkg --compare-versions`
//! implements it.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a string is not a Debian version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// Nothing (or only white space) was given.
    #[error("empty version")]
    Empty,
    /// The part before the first `:` is not a number.
    #[error("version {0:?}: the epoch is not a number")]
    BadEpoch(String),
    /// No upstream version between the epoch and the revision.
    #[error("version {0:?}: the upstream version is empty")]
    EmptyUpstream(String),
    /// A `-` with nothing after it.
    #[error("version {0:?}: the revision after the last '-' is empty")]
    EmptyRevision(String),
    /// A character no Debian version may hold.
    #[error("version {version:?}: {found:?} is not allowed in a version")]
    BadChar {
        /// The whole version given.
        version: String,
        /// The offending character.
        found: char,
    },
}

/// A parsed Debian version. Ordering and equality are dpkg's: `1.0` equals
/// `1.0-0` and `0:1.0`, and `1.0~rc1` sorts before `1.0`.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    epoch: u64,
    /// Byte range of the upstream part in `text`.
    upstream: (usize, usize),
    /// Byte range of the revision (empty when there is none).
    revision: (usize, usize),
}

impl Version {
    /// Parses a version the way dpkg does (surrounding white space is
    /// ignored; anything else dpkg would reject is an error).
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        if let Some(found) = text.chars().find(|c| c.is_whitespace()) {
            return Err(VersionError::BadChar {
                version: text.to_owned(),
                found,
            });
        }
        let (epoch, start) = match text.find(':') {
            Some(i) => {
                let digits = &text[..i];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VersionError::BadEpoch(text.to_owned()));
                }
                let epoch = digits
                    .parse::<u64>()
                    .ok()
                    .filter(|e| *e <= i32::MAX as u64)
                    .ok_or_else(|| VersionError::BadEpoch(text.to_owned()))?;
                (epoch, i + 1)
            }
            None => (0, 0),
        };
        let rest = &text[start..];
        let (upstream, revision) = match rest.rfind('-') {
            Some(j) => {
                if j + 1 == rest.len() {
                    return Err(VersionError::EmptyRevision(text.to_owned()));
                }
                ((start, start + j), (start + j + 1, text.len()))
            }
            None => ((start, text.len()), (text.len(), text.len())),
        };
        if upstream.0 == upstream.1 {
            return Err(VersionError::EmptyUpstream(text.to_owned()));
        }
        let allowed_upstream = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
        let allowed_revision = |c: char| c.is_ascii_alphanumeric() || ".+~".contains(c);
        let bad = text[upstream.0..upstream.1]
            .chars()
            .find(|c| !allowed_upstream(*c))
            .or_else(|| {
                text[revision.0..revision.1]
                    .chars()
                    .find(|c| !allowed_revision(*c))
            });
        if let Some(found) = bad {
            return Err(VersionError::BadChar {
                version: text.to_owned(),
                found,
            });
        }
        Ok(Version {
            text: text.to_owned(),
            epoch,
            upstream,
            revision,
        })
    }

    /// The epoch (0 when none is written).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The upstream part.
    pub fn upstream(&self) -> &str {
        &self.text[self.upstream.0..self.upstream.1]
    }

    /// The Debian revision ("" when there is none).
    pub fn revision(&self) -> &str {
        &self.text[self.revision.0..self.revision.1]
    }

    /// The version as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream(), other.upstream()))
            .then_with(|| compare_part(self.revision(), other.revision()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// The weight of a character in the non-digit parts: `~` before the end of
/// the string, the end before letters, letters before everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// Compares an upstream version or a revision: alternating non-digit parts
/// (compared by [`order`]) and digit parts (compared as numbers of any
/// length).
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parts() {
        let x = v("1:2.30-1+deb12u2");
        assert_eq!(
            (x.epoch(), x.upstream(), x.revision()),
            (1, "2.30", "1+deb12u2")
        );
        let y = v("2:1.2-3-4");
        assert_eq!((y.upstream(), y.revision()), ("1.2-3", "4"));
        assert_eq!(v("1.0").revision(), "");
        assert_eq!(v("1:2:3").upstream(), "2:3");
    }

    #[test]
    fn policy_examples() {
        let ordered = ["~~", "~~a", "~", "", "a"];
        for w in ordered.windows(2) {
            assert_eq!(compare_part(w[0], w[1]), Ordering::Less, "{w:?}");
        }
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0+b1"));
        assert!(v("1.0") < v("1.0a"));
        assert!(v("1.0a") < v("1.0+"));
        assert!(v("1:0.1") > v("9.9"));
        assert!(v("1.10") > v("1.9"));
        assert!(v("1.001") == v("1.1"));
        assert!(v("1.0") == v("1.0-0"));
        assert!(v("0:1.0") == v("1.0"));
        assert!(v("2.30-1") < v("2.30-1+deb12u1"));
        assert!(v("1.2.3-1~bpo12+1") < v("1.2.3-1"));
        assert!(v("99999999999999999999999") > v("99999999999999999999998"));
    }

    #[test]
    fn rejects_what_dpkg_rejects() {
        assert_eq!(Version::parse(" "), Err(VersionError::Empty));
        assert!(matches!(
            Version::parse("a:1"),
            Err(VersionError::BadEpoch(_))
        ));
        assert!(matches!(
            Version::parse(":1"),
            Err(VersionError::BadEpoch(_))
        ));
        assert!(matches!(
            Version::parse("1-"),
            Err(VersionError::EmptyRevision(_))
        ));
        assert!(matches!(
            Version::parse("1:-1"),
            Err(VersionError::EmptyUpstream(_))
        ));
        assert!(matches!(
            Version::parse("1 2"),
            Err(VersionError::BadChar { .. })
        ));
        assert!(matches!(
            Version::parse("1.0-a_b"),
            Err(VersionError::BadChar { .. })
        ));
        assert!(matches!(
            Version::parse("1.0-a=b"),
            Err(VersionError::BadChar { .. })
        ));
    }

    fn version_text() -> impl Strategy<Value = String> {
        (
            proptest::option::of(0u32..5),
            "[0-9][0-9a-z.+~]{0,8}",
            proptest::option::of("[0-9a-z.+~]{1,6}"),
        )
            .prop_map(|(e, u, r)| {
                let mut s = String::new();
                if let Some(e) = e {
                    s.push_str(&format!("{e}:"));
                }
                s.push_str(&u);
                if let Some(r) = r {
                    s.push('-');
                    s.push_str(&r);
                }
                s
            })
    }

    proptest! {
        #[test]
        fn total_order(a in version_text(), b in version_text(), c in version_text()) {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            prop_assert_eq!(a.cmp(&a), Ordering::Equal);
        }

        #[test]
        fn display_round_trips(a in version_text()) {
            let x = v(&a);
            prop_assert_eq!(x.to_string(), a.clone());
            prop_assert_eq!(v(&x.to_string()).cmp(&x), Ordering::Equal);
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = Version::parse(&s);
        }
    }
}
