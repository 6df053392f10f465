//! Names in a zone file: zones, sets and interfaces. Each can only hold a
//! value that is safe to place in nft text (and in a chain name) unquoted or
//! quoted, so rendering never has to escape anything.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {why}")]
pub struct NameError {
    what: &'static str,
    value: String,
    why: &'static str,
}

fn identifier(what: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    let err = |why| NameError {
        what,
        value: value.to_owned(),
        why,
    };
    let mut chars = value.chars();
    match chars.next() {
        None => return Err(err("it is empty")),
        Some(c) if !c.is_ascii_lowercase() => return Err(err("it must start with a-z")),
        Some(_) => {}
    }
    if value.len() > max {
        return Err(err("it is too long"));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(err("only a-z, 0-9 and _ may follow the first letter"));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: &str) -> Result<$name, NameError> {
                identifier($what, value, $max)?;
                Ok($name(value.to_owned()))
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A zone's name: `a-z` first, then `a-z`, `0-9`, `_`; at most 24
    /// characters (it becomes part of chain names such as `in_public`).
    ZoneName,
    "zone name",
    24
);

name_type!(
    /// A named set's name: `a-z` first, then `a-z`, `0-9`, `_`; at most 32
    /// characters.
    SetName,
    "set name",
    32
);

/// An interface name (`eth0`), or a prefix wildcard (`wg*`) matching every
/// interface whose name starts with the part before the `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interface(String);

/// The longest interface name Linux allows (IFNAMSIZ less the NUL).
const IFNAME_MAX: usize = 15;

impl Interface {
    /// Checks `value`: 1-15 characters of `A-Z a-z 0-9 . _ - @ :`, with an
    /// optional `*` at the end only.
    pub fn new(value: &str) -> Result<Interface, NameError> {
        let err = |why| NameError {
            what: "interface",
            value: value.to_owned(),
            why,
        };
        let stem = value.strip_suffix('*').unwrap_or(value);
        if stem.is_empty() && !value.ends_with('*') {
            return Err(err("it is empty"));
        }
        if value == "*" {
            return Err(err("a bare * would match every interface"));
        }
        if stem.len() > IFNAME_MAX {
            return Err(err("interface names have at most 15 characters"));
        }
        if stem == "." || stem == ".." {
            return Err(err("Linux refuses this name"));
        }
        if !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':'))
        {
            return Err(err(
                "only letters, digits and . _ - @ : are allowed, and * only at the end",
            ));
        }
        Ok(Interface(value.to_owned()))
    }

    /// The name or pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a `prefix*` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.0.ends_with('*')
    }

    fn stem(&self) -> &str {
        self.0.strip_suffix('*').unwrap_or(&self.0)
    }

    /// Whether some interface name would match both.
    pub fn overlaps(&self, other: &Interface) -> bool {
        match (self.is_wildcard(), other.is_wildcard()) {
            (false, false) => self.0 == other.0,
            (true, false) => other.0.starts_with(self.stem()),
            (false, true) => self.0.starts_with(other.stem()),
            (true, true) => {
                self.stem().starts_with(other.stem()) || other.stem().starts_with(self.stem())
            }
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(ZoneName::new("public").is_ok());
        assert!(ZoneName::new("wg_mgmt2").is_ok());
        for bad in ["", "Public", "2x", "a-b", "a b", "a\"", &"x".repeat(25)] {
            assert!(ZoneName::new(bad).is_err(), "{bad}");
        }
        assert!(SetName::new("lb_pool").is_ok());
    }

    #[test]
    fn interfaces_and_overlap() {
        let i = |s| Interface::new(s).unwrap();
        assert!(i("wg*").overlaps(&i("wg0")));
        assert!(i("wg0").overlaps(&i("wg*")));
        assert!(!i("wg0").overlaps(&i("wg1")));
        assert!(i("wg*").overlaps(&i("wg-mgmt*")));
        assert!(!i("eth*").overlaps(&i("wg*")));
        for bad in ["", "*", "a*b", "eth\"0", "0123456789abcdef", "a b", ".."] {
            assert!(Interface::new(bad).is_err(), "{bad}");
        }
        assert!(Interface::new("0123456789abcde").is_ok());
    }
}
