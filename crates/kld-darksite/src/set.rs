//! Package sets: the TOML file that says what a darksite holds.
//!
//! ```toml
//! name = "server"
//! distribution = "bookworm"                 # the suite the darksite publishes
//! suites = ["bookworm", "bookworm-updates"] # read from the mirror (default: distribution)
//! components = ["main"]                     # default ["main"]
//! architectures = ["amd64"]                 # the first is native; default ["amd64"]
//! base = "minbase"        # none | essential | minbase | important (default minbase)
//! recommends = false      # follow Recommends too (default false)
//! packages = ["openssh-server", "nginx (>= 1.22)", "default-mta | mail-transport-agent"]
//! local = ["debs/zfs-modules_2.1.11_amd64.deb"]   # relative to this file
//! keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
//!
//! [mirrors]               # suites served from another URL than --mirror
//! bookworm-security = "http://deb.debian.org/debian-security"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::relation::{self, Alternatives, RelationError};

/// The keyring upstream Release files are checked against by default.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Why a package set is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// The file could not be read.
    #[error("cannot read the package set {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or not the fields a package set has.
    #[error("package set {path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A package entry that is not a Debian relation.
    #[error("package set {path}: package {entry:?}: {source}")]
    Package {
        /// The file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// Why.
        source: RelationError,
    },
    /// A name (suite, component, architecture) with characters that do not
    /// belong in a path or URL.
    #[error("package set {path}: {what} {value:?} is not a valid name ({allowed})")]
    BadName {
        /// The file.
        path: PathBuf,
        /// What kind of name.
        what: &'static str,
        /// The value.
        value: String,
        /// The characters allowed.
        allowed: &'static str,
    },
    /// A mirror URL kld cannot fetch from.
    #[error("package set {path}: mirror {url:?}: only http:// and file:// URLs are supported")]
    BadMirror {
        /// The file.
        path: PathBuf,
        /// The URL.
        url: String,
    },
    /// A list that must not be empty is.
    #[error("package set {path}: {0} must not be empty", .field)]
    Empty {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
    },
}

/// Which part of the base system a darksite holds besides the packages
/// named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// Nothing: the target already has its Essential packages.
    None,
    /// The `Essential: yes` packages.
    Essential,
    /// Essential, `Priority: required` and apt: what `mmdebstrap
    /// --variant=minbase` and `debootstrap --variant=minbase` install.
    #[default]
    Minbase,
    /// Minbase and `Priority: important`: mmdebstrap's default variant.
    Important,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFile {
    name: Option<String>,
    distribution: String,
    suites: Option<Vec<String>>,
    components: Option<Vec<String>>,
    architectures: Option<Vec<String>>,
    #[serde(default)]
    base: Base,
    #[serde(default)]
    recommends: bool,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    local: Vec<PathBuf>,
    keyring: Option<PathBuf>,
    #[serde(default)]
    mirrors: BTreeMap<String, String>,
}

/// A validated package set.
#[derive(Debug, Clone)]
pub struct PackageSet {
    /// A label for the darksite (the Release file's `Label`).
    pub name: String,
    /// The suite the darksite publishes (e.g. `bookworm`).
    pub distribution: String,
    /// The upstream suites read, in order of preference for equal versions.
    pub suites: Vec<String>,
    /// The components read.
    pub components: Vec<String>,
    /// The architectures; the first is the native one.
    pub architectures: Vec<String>,
    /// The base system to include.
    pub base: Base,
    /// Whether Recommends are followed.
    pub recommends: bool,
    /// The packages asked for, each a group of alternatives.
    pub packages: Vec<Alternatives>,
    /// The entries as written (for messages and records).
    pub package_texts: Vec<String>,
    /// Local `.deb` files to add (absolute paths).
    pub local: Vec<PathBuf>,
    /// The keyring upstream Release files must be signed by.
    pub keyring: PathBuf,
    /// Suites served from another URL than the default mirror.
    pub mirrors: BTreeMap<String, String>,
}

impl PackageSet {
    /// Reads and validates a package set file.
    pub fn load(path: &Path) -> Result<PackageSet, SetError> {
        let text = std::fs::read_to_string(path).map_err(|source| SetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        PackageSet::parse(&text, path, dir)
    }

    /// Validates the text of a package set; `path` names it in errors and
    /// `dir` is where relative `local` paths start.
    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<PackageSet, SetError> {
        let f: SetFile = toml::from_str(text).map_err(|e| SetError::Toml {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        let bad = |what: &'static str, value: &str, allowed: &'static str| SetError::BadName {
            path: path.to_owned(),
            what,
            value: value.to_owned(),
            allowed,
        };
        let suite_ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with(['.', '-'])
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        const SUITE_CHARS: &str = "letters, digits, '.', '_', '-'";
        if !suite_ok(&f.distribution) {
            return Err(bad("distribution", &f.distribution, SUITE_CHARS));
        }
        let suites = f.suites.unwrap_or_else(|| vec![f.distribution.clone()]);
        let components = f.components.unwrap_or_else(|| vec!["main".into()]);
        let architectures = f.architectures.unwrap_or_else(|| vec!["amd64".into()]);
        for (field, list) in [
            ("suites", &suites),
            ("components", &components),
            ("architectures", &architectures),
        ] {
            if list.is_empty() {
                return Err(SetError::Empty {
                    path: path.to_owned(),
                    field,
                });
            }
        }
        for s in suites.iter().chain(f.mirrors.keys()) {
            if !suite_ok(s) {
                return Err(bad("suite", s, SUITE_CHARS));
            }
        }
        for c in &components {
            if !suite_ok(c) || c.contains('.') {
                return Err(bad("component", c, "letters, digits, '_', '-'"));
            }
        }
        for a in &architectures {
            let ok = !a.is_empty()
                && a != "all"
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(bad(
                    "architecture",
                    a,
                    "lower-case letters, digits, '-'; not 'all'",
                ));
            }
        }
        for url in f.mirrors.values() {
            if !(url.starts_with("http://") || url.starts_with("file:///")) {
                return Err(SetError::BadMirror {
                    path: path.to_owned(),
                    url: url.clone(),
                });
            }
        }
        let mut packages = Vec::new();
        for entry in &f.packages {
            let groups = relation::parse_field(entry).map_err(|source| SetError::Package {
                path: path.to_owned(),
                entry: entry.clone(),
                source,
            })?;
            if groups.len() != 1 {
                return Err(SetError::Package {
                    path: path.to_owned(),
                    entry: entry.clone(),
                    source: RelationError::Trailing(entry.clone()),
                });
            }
            packages.extend(groups);
        }
        let local = f
            .local
            .iter()
            .map(|p| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    dir.join(p)
                }
            })
            .collect();
        Ok(PackageSet {
            name: f.name.unwrap_or_else(|| f.distribution.clone()),
            distribution: f.distribution,
            suites,
            components,
            architectures,
            base: f.base,
            recommends: f.recommends,
            packages,
            package_texts: f.packages,
            local,
            keyring: f.keyring.unwrap_or_else(|| DEBIAN_KEYRING.into()),
            mirrors: f.mirrors,
        })
    }

    /// The native architecture.
    pub fn native_arch(&self) -> &str {
        &self.architectures[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PackageSet, SetError> {
        PackageSet::parse(text, Path::new("set.toml"), Path::new("/sets"))
    }

    #[test]
    fn defaults_and_fields() {
        let s = parse("distribution = \"bookworm\"\npackages = [\"openssh-server\", \"nginx (>= 1.22) | apache2\"]\nlocal = [\"x.deb\", \"/abs/y.deb\"]\n").unwrap();
        assert_eq!(s.suites, ["bookworm"]);
        assert_eq!(s.components, ["main"]);
        assert_eq!(s.native_arch(), "amd64");
        assert_eq!(s.base, Base::Minbase);
        assert_eq!(s.packages.len(), 2);
        assert_eq!(s.packages[1].0.len(), 2);
        assert_eq!(
            s.local,
            [PathBuf::from("/sets/x.deb"), PathBuf::from("/abs/y.deb")]
        );
        assert_eq!(s.keyring, PathBuf::from(DEBIAN_KEYRING));
        let s = parse("distribution = \"bookworm\"\nbase = \"none\"\nsuites = [\"bookworm\", \"bookworm-security\"]\n[mirrors]\nbookworm-security = \"http://deb.debian.org/debian-security\"\n").unwrap();
        assert_eq!(s.base, Base::None);
        assert_eq!(s.mirrors.len(), 1);
    }

    #[test]
    fn bad_sets_say_why() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert!(e("distribution = \"../x\"").contains("distribution \"../x\" is not a valid name"));
        assert!(e("distribution = \"b\"\npackages = [\"Foo\"]").contains("package \"Foo\""));
        assert!(e("distribution = \"b\"\npackages = [\"a1, b1\"]").contains("package \"a1, b1\""));
        assert!(e("distribution = \"b\"\nbase = \"most\"").contains("unknown variant"));
        assert!(e("distribution = \"b\"\ncolour = 1").contains("unknown field"));
        assert!(e("distribution = \"b\"\narchitectures = []")
            .contains("architectures must not be empty"));
        assert!(e("distribution = \"b\"\narchitectures = [\"all\"]").contains("architecture"));
        assert!(e("distribution = \"b\"\n[mirrors]\nb = \"ftp://x\"").contains("only http://"));
        assert!(e("packages = []").contains("distribution"));
    }
}
