//! Package relationships (`Depends`, `Pre-Depends`, `Provides`, ...):
//! `libc6 (>= 2.34), libssl3 | libssl1.1, python3:any` (Debian Policy §7.1),
//! and package names (§5.6.1).

use std::fmt;

use crate::version::{Version, VersionError};

/// Why a relationship field does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelationError {
    /// A package name that Debian does not allow.
    #[error("{0:?} is not a valid package name (lower-case letters, digits, '+', '-', '.'; at least two, starting with a letter or digit)")]
    BadName(String),
    /// An empty alternative (`a | | b`) or relation (`a, , b`).
    #[error("empty relation in {0:?}")]
    Empty(String),
    /// A `(op version)` that does not parse.
    #[error("bad version constraint {0:?}: expected (OP VERSION) with OP one of << <= = >= >>")]
    BadConstraint(String),
    /// The version inside a constraint is invalid.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// Architecture restrictions (`[amd64]`) or build profiles (`<!nocheck>`)
    /// belong to source packages, not to binary relations.
    #[error("{0:?}: architecture restrictions and build profiles only apply to source packages")]
    SourceOnly(String),
    /// Something after the relation that is not part of it.
    #[error("unexpected text in relation {0:?}")]
    Trailing(String),
}

/// A relational operator of a version constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=`: earlier or equal (also the obsolete `<`).
    Le,
    /// `=`: exactly.
    Eq,
    /// `>=`: later or equal (also the obsolete `>`).
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl Op {
    /// Whether `have OP want` holds.
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        use std::cmp::Ordering::*;
        let c = have.cmp(want);
        match self {
            Op::Lt => c == Less,
            Op::Le => c != Greater,
            Op::Eq => c == Equal,
            Op::Ge => c != Less,
            Op::Gt => c == Greater,
        }
    }

    /// The operator as Debian writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

/// The architecture qualifier of a relation (`name:any`, `name:native`,
/// `name:amd64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArchQual {
    /// None written: the depending package's architecture rules apply.
    None,
    /// `:any`: any architecture, if the target is `Multi-Arch: allowed`.
    Any,
    /// `:native`: the native architecture.
    Native,
    /// An explicit architecture.
    Arch(String),
}

/// One relation: a package name, an architecture qualifier and an optional
/// version constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The package (real or virtual) named.
    pub name: String,
    /// The architecture qualifier.
    pub arch: ArchQual,
    /// The version constraint, if any.
    pub constraint: Option<(Op, Version)>,
}

impl Relation {
    /// Whether a package (or a provided version) `version` meets the
    /// constraint. `None` is an unversioned `Provides`, which meets only an
    /// unconstrained relation.
    pub fn version_ok(&self, version: Option<&Version>) -> bool {
        match (&self.constraint, version) {
            (None, _) => true,
            (Some((op, want)), Some(have)) => op.holds(have, want),
            (Some(_), None) => false,
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch {
            ArchQual::None => {}
            ArchQual::Any => f.write_str(":any")?,
            ArchQual::Native => f.write_str(":native")?,
            ArchQual::Arch(a) => write!(f, ":{a}")?,
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({} {v})", op.as_str())?;
        }
        Ok(())
    }
}

/// Alternatives: satisfied when any one of them is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternatives(pub Vec<Relation>);

impl fmt::Display for Alternatives {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Whether `name` is a valid Debian package name.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c))
}

/// Parses a whole relationship field: comma-separated groups of
/// `|`-separated alternatives. Blank text is no relation at all.
pub fn parse_field(text: &str) -> Result<Vec<Alternatives>, RelationError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|group| {
            if group.trim().is_empty() {
                return Err(RelationError::Empty(text.trim().to_owned()));
            }
            group
                .split('|')
                .map(parse_relation)
                .collect::<Result<Vec<_>, _>>()
                .map(Alternatives)
        })
        .collect()
}

/// Parses one relation, e.g. `libc6:any (>= 2.34)`.
pub fn parse_relation(text: &str) -> Result<Relation, RelationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(RelationError::Empty(text.to_owned()));
    }
    if s.contains('[') || s.contains('<') && !s.contains('(') {
        return Err(RelationError::SourceOnly(s.to_owned()));
    }
    let name_end = s
        .find(|c: char| c.is_whitespace() || c == '(' || c == ':')
        .unwrap_or(s.len());
    let name = &s[..name_end];
    if !valid_name(name) {
        return Err(RelationError::BadName(name.to_owned()));
    }
    let mut rest = &s[name_end..];
    let arch = if let Some(r) = rest.strip_prefix(':') {
        let end = r
            .find(|c: char| c.is_whitespace() || c == '(')
            .unwrap_or(r.len());
        let a = &r[..end];
        rest = &r[end..];
        match a {
            "any" => ArchQual::Any,
            "native" => ArchQual::Native,
            a if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
                ArchQual::Arch(a.to_owned())
            }
            _ => return Err(RelationError::BadName(format!("{name}:{a}"))),
        }
    } else {
        ArchQual::None
    };
    let rest = rest.trim();
    let constraint = if rest.is_empty() {
        None
    } else {
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| {
                if rest.starts_with('[') || rest.starts_with('<') {
                    RelationError::SourceOnly(s.to_owned())
                } else if rest.starts_with('(') {
                    RelationError::BadConstraint(rest.to_owned())
                } else {
                    RelationError::Trailing(s.to_owned())
                }
            })?
            .trim();
        let (op, ver) = [
            ("<<", Op::Lt),
            ("<=", Op::Le),
            (">=", Op::Ge),
            (">>", Op::Gt),
            ("=", Op::Eq),
            ("<", Op::Le),
            (">", Op::Ge),
        ]
        .iter()
        .find_map(|(t, op)| inner.strip_prefix(t).map(|v| (*op, v)))
        .ok_or_else(|| RelationError::BadConstraint(rest.to_owned()))?;
        if ver.trim().is_empty() {
            return Err(RelationError::BadConstraint(rest.to_owned()));
        }
        Some((op, Version::parse(ver)?))
    };
    Ok(Relation {
        name: name.to_owned(),
        arch,
        constraint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn real_fields() {
        let deps = parse_field(
            "libc6 (>= 2.34), libssl3 (>= 3.0.0) | libssl1.1,\n python3:any, perl:native (<< 6), foo:i386 (= 1:2-3)",
        )
        .unwrap();
        assert_eq!(deps.len(), 5);
        assert_eq!(deps[1].0.len(), 2);
        assert_eq!(deps[1].0[1].name, "libssl1.1");
        assert_eq!(deps[2].0[0].arch, ArchQual::Any);
        assert_eq!(deps[3].0[0].arch, ArchQual::Native);
        assert_eq!(deps[3].0[0].constraint.as_ref().unwrap().0, Op::Lt);
        assert_eq!(deps[1].to_string(), "libssl3 (>= 3.0.0) | libssl1.1");
        let last = parse_field("foo:i386 (= 1:2-3)").unwrap();
        assert_eq!(last[0].0[0].arch, ArchQual::Arch("i386".into()));
        assert_eq!(last[0].to_string(), "foo:i386 (= 1:2-3)");
        assert!(parse_field("  ").unwrap().is_empty());
        assert_eq!(
            parse_relation("a1 (>=1.0)").unwrap().to_string(),
            "a1 (>= 1.0)"
        );
        assert_eq!(
            parse_relation("a1 (> 1.0)").unwrap().constraint.unwrap().0,
            Op::Ge
        );
    }

    #[test]
    fn bad_fields() {
        assert!(matches!(
            parse_field("ab, , cd"),
            Err(RelationError::Empty(_))
        ));
        assert!(matches!(parse_field("Foo"), Err(RelationError::BadName(_))));
        assert!(matches!(
            parse_field("ab (~ 1)"),
            Err(RelationError::BadConstraint(_))
        ));
        assert!(matches!(
            parse_field("ab (>= )"),
            Err(RelationError::BadConstraint(_))
        ));
        assert!(matches!(
            parse_field("ab [amd64]"),
            Err(RelationError::SourceOnly(_))
        ));
        assert!(matches!(
            parse_field("ab (>= 1) x"),
            Err(RelationError::BadConstraint(_))
        ));
        assert!(matches!(
            parse_field("ab x"),
            Err(RelationError::Trailing(_))
        ));
        assert!(matches!(
            parse_field("ab (>= -1)"),
            Err(RelationError::Version(_))
        ));
    }

    #[test]
    fn constraints() {
        let r = parse_relation("x1 (>> 1.0)").unwrap();
        assert!(r.version_ok(Some(&Version::parse("1.1").unwrap())));
        assert!(!r.version_ok(Some(&Version::parse("1.0").unwrap())));
        assert!(!r.version_ok(None));
        assert!(parse_relation("x1").unwrap().version_ok(None));
    }

    proptest! {
        #[test]
        fn display_round_trips(
            name in "[a-z0-9][a-z0-9+.-]{1,10}",
            arch in prop_oneof![Just(""), Just(":any"), Just(":native"), Just(":i386")],
            c in proptest::option::of((prop_oneof![Just("<<"), Just("<="), Just("="), Just(">="), Just(">>")], "[0-9][0-9a-z.+~]{0,6}")),
        ) {
            let text = match &c {
                Some((op, v)) => format!("{name}{arch} ({op} {v})"),
                None => format!("{name}{arch}"),
            };
            let r = parse_relation(&text).unwrap();
            prop_assert_eq!(r.to_string(), text);
        }

        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = parse_field(&s);
        }
    }
}
