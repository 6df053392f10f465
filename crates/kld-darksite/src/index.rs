//! APT repository metadata: `Release` files (what a suite holds, with the
//! hashes of its indices) and `Packages` indices (one paragraph per binary
//! package).

use std::ops::Range;

use crate::deb822::{self, Deb822Error};
use crate::version::{Version, VersionError};

/// Why a `Release` file or `Packages` index is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Not deb822.
    #[error(transparent)]
    Syntax(#[from] Deb822Error),
    /// A Release file that is not one paragraph.
    #[error("a Release file holds exactly one paragraph, found {0}")]
    ReleaseParagraphs(usize),
    /// A required field is missing.
    #[error("line {line}: field {field} is missing{}", package.as_ref().map(|p| format!(" (package {p})")).unwrap_or_default())]
    Missing {
        /// The field.
        field: &'static str,
        /// The line the paragraph starts on.
        line: usize,
        /// The package, when known.
        package: Option<String>,
    },
    /// A field whose value does not parse.
    #[error("line {line}: field {field}: bad value {value:?}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// The line the paragraph starts on.
        line: usize,
        /// The value found.
        value: String,
    },
    /// A version that does not parse.
    #[error("line {line}: package {package}: {source}")]
    Version {
        /// The package.
        package: String,
        /// The line the paragraph starts on.
        line: usize,
        /// Why.
        source: VersionError,
    },
}

/// One file a Release lists: its path below `dists/SUITE/`, size and
/// SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// Path relative to the Release file's directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// A parsed `Release` file (the content of `InRelease` once its signature
/// is checked).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Release {
    /// `Origin`.
    pub origin: Option<String>,
    /// `Label`.
    pub label: Option<String>,
    /// `Suite` (e.g. `stable`).
    pub suite: Option<String>,
    /// `Codename` (e.g. `bookworm`).
    pub codename: Option<String>,
    /// `Date`, as written.
    pub date: Option<String>,
    /// `Valid-Until`, as written: after it, the Release is stale.
    pub valid_until: Option<String>,
    /// `Architectures`.
    pub architectures: Vec<String>,
    /// `Components`.
    pub components: Vec<String>,
    /// `NotAutomatic: yes` (backports, experimental): never a candidate by
    /// default.
    pub not_automatic: bool,
    /// The `SHA256` list.
    pub sha256: Vec<FileHash>,
}

impl Release {
    /// Parses a Release file.
    pub fn parse(text: &str) -> Result<Release, IndexError> {
        let ps = deb822::parse(text)?;
        let [p] = &ps[..] else {
            return Err(IndexError::ReleaseParagraphs(ps.len()));
        };
        let list = |f: &str| -> Vec<String> {
            p.get(f)
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let mut sha256 = Vec::new();
        for line in p.lines("SHA256") {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let bad = || IndexError::BadValue {
                field: "SHA256",
                line: p.line,
                value: line.to_owned(),
            };
            let [hash, size, path] = parts[..] else {
                return Err(bad());
            };
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            sha256.push(FileHash {
                path: path.to_owned(),
                size: size.parse().map_err(|_| bad())?,
                sha256: hash.to_ascii_lowercase(),
            });
        }
        Ok(Release {
            origin: p.get("Origin").map(str::to_owned),
            label: p.get("Label").map(str::to_owned),
            suite: p.get("Suite").map(str::to_owned),
            codename: p.get("Codename").map(str::to_owned),
            date: p.get("Date").map(str::to_owned),
            valid_until: p.get("Valid-Until").map(str::to_owned),
            architectures: list("Architectures"),
            components: list("Components"),
            not_automatic: p.get("NotAutomatic") == Some("yes"),
            sha256,
        })
    }

    /// The entry for `path`, if listed.
    pub fn file(&self, path: &str) -> Option<&FileHash> {
        self.sha256.iter().find(|f| f.path == path)
    }
}

/// How a package may be installed alongside other architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MultiArch {
    /// No field: only satisfies dependencies of its own architecture.
    #[default]
    No,
    /// `same`: co-installable for several architectures.
    Same,
    /// `foreign`: satisfies dependencies of any architecture.
    Foreign,
    /// `allowed`: satisfies `name:any` dependencies of any architecture.
    Allowed,
}

/// One binary package of a `Packages` index. The text fields are copied
/// out; the whole paragraph stays in [`PackagesIndex::text`].
#[derive(Debug, Clone)]
pub struct Package {
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: Version,
    /// `Architecture` (`all` included).
    pub arch: String,
    /// `Multi-Arch`.
    pub multi_arch: MultiArch,
    /// `Essential: yes`.
    pub essential: bool,
    /// `Priority` (`required`, `important`, `standard`, `optional`, ...).
    pub priority: Option<String>,
    /// `Pre-Depends`, unparsed.
    pub pre_depends: Option<String>,
    /// `Depends`, unparsed.
    pub depends: Option<String>,
    /// `Recommends`, unparsed.
    pub recommends: Option<String>,
    /// `Provides`, unparsed.
    pub provides: Option<String>,
    /// `Filename`: the path below the mirror's root.
    pub filename: String,
    /// `Size` in bytes.
    pub size: u64,
    /// `SHA256`, lower-case hex.
    pub sha256: String,
    /// Where the paragraph lies in the index text.
    pub stanza: Range<usize>,
}

/// A parsed `Packages` index: its text and its packages.
#[derive(Debug, Clone)]
pub struct PackagesIndex {
    /// The whole index.
    pub text: String,
    /// Its packages, in order.
    pub packages: Vec<Package>,
}

impl PackagesIndex {
    /// Parses a `Packages` index. Every package must have `Package`,
    /// `Version`, `Architecture`, `Filename`, `Size` and `SHA256`.
    pub fn parse(text: String) -> Result<PackagesIndex, IndexError> {
        let mut packages = Vec::new();
        {
            let base = text.as_ptr() as usize;
            for p in deb822::parse(&text)? {
                packages.push(package(&p, p.text.as_ptr() as usize - base)?);
            }
        }
        Ok(PackagesIndex { text, packages })
    }

    /// The paragraph of package `i`, as it appears in the index (newline
    /// at its end included when there is one).
    pub fn stanza(&self, i: usize) -> &str {
        &self.text[self.packages[i].stanza.clone()]
    }
}

fn package(p: &deb822::Paragraph<'_>, start: usize) -> Result<Package, IndexError> {
    // One pass over the fields (an index has 60,000 paragraphs).
    let mut f: [Option<&str>; 12] = [None; 12];
    const NAMES: [&str; 12] = [
        "Package",
        "Version",
        "Architecture",
        "Multi-Arch",
        "Essential",
        "Priority",
        "Pre-Depends",
        "Depends",
        "Recommends",
        "Provides",
        "Filename",
        "Size",
    ];
    let mut sha = None;
    for field in &p.fields {
        if field.name.eq_ignore_ascii_case("SHA256") {
            sha = Some(field.raw.trim());
            continue;
        }
        if let Some(i) = NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(field.name))
        {
            f[i] = Some(field.raw.trim());
        }
    }
    let name = f[0].ok_or(IndexError::Missing {
        field: "Package",
        line: p.line,
        package: None,
    })?;
    fn need<'a>(
        v: Option<&'a str>,
        field: &'static str,
        name: &str,
        line: usize,
    ) -> Result<&'a str, IndexError> {
        v.ok_or_else(|| IndexError::Missing {
            field,
            line,
            package: Some(name.to_owned()),
        })
    }
    let need = |v, field| need(v, field, name, p.line);
    let version = Version::parse(need(f[1], "Version")?).map_err(|source| IndexError::Version {
        package: name.to_owned(),
        line: p.line,
        source,
    })?;
    let size_text = need(f[11], "Size")?;
    let size = size_text.parse().map_err(|_| IndexError::BadValue {
        field: "Size",
        line: p.line,
        value: size_text.to_owned(),
    })?;
    let sha = need(sha, "SHA256")?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IndexError::BadValue {
            field: "SHA256",
            line: p.line,
            value: sha.to_owned(),
        });
    }
    let filename = need(f[10], "Filename")?;
    if filename.split('/').any(|c| c == ".." || c.is_empty()) || filename.starts_with('/') {
        return Err(IndexError::BadValue {
            field: "Filename",
            line: p.line,
            value: filename.to_owned(),
        });
    }
    let multi_arch = match f[3] {
        None | Some("no") => MultiArch::No,
        Some("same") => MultiArch::Same,
        Some("foreign") => MultiArch::Foreign,
        Some("allowed") => MultiArch::Allowed,
        Some(other) => {
            return Err(IndexError::BadValue {
                field: "Multi-Arch",
                line: p.line,
                value: other.to_owned(),
            })
        }
    };
    let owned = |v: Option<&str>| v.map(str::to_owned);
    Ok(Package {
        name: name.to_owned(),
        version,
        arch: need(f[2], "Architecture")?.to_owned(),
        multi_arch,
        essential: f[4] == Some("yes"),
        priority: owned(f[5]),
        pre_depends: owned(f[6]),
        depends: owned(f[7]),
        recommends: owned(f[8]),
        provides: owned(f[9]),
        filename: filename.to_owned(),
        size,
        sha256: sha.to_ascii_lowercase(),
        stanza: start..start + p.text.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RELEASE: &str = "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 10 Aug 2024 09:57:52 UTC\nArchitectures: all amd64 arm64\nComponents: main contrib\nSHA256:\n 515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages\n 6777ea16514725f9427f48c240d92e0a6b8496138e37a1491d8597e66774e309 12084798 main/binary-amd64/Packages.gz\n";

    pub(crate) const PACKAGES: &str = "Package: a\nVersion: 1.0-1\nArchitecture: amd64\nMulti-Arch: foreign\nPriority: required\nEssential: yes\nDepends: b (>= 2), c | d\nFilename: pool/main/a/a/a_1.0-1_amd64.deb\nSize: 100\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n\nPackage: b\nVersion: 2\nArchitecture: all\nProvides: bee (= 2)\nFilename: pool/main/b/b/b_2_all.deb\nSize: 5\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n";

    #[test]
    fn release() {
        let r = Release::parse(RELEASE).unwrap();
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.components, ["main", "contrib"]);
        assert_eq!(r.sha256.len(), 2);
        assert_eq!(
            r.file("main/binary-amd64/Packages.gz").unwrap().size,
            12084798
        );
        assert!(!r.not_automatic);
        assert!(Release::parse("SHA256:\n xyz 1 a\n").is_err());
        assert!(matches!(
            Release::parse("A: 1\n\nB: 2\n"),
            Err(IndexError::ReleaseParagraphs(2))
        ));
    }

    #[test]
    fn packages() {
        let idx = PackagesIndex::parse(PACKAGES.to_owned()).unwrap();
        assert_eq!(idx.packages.len(), 2);
        let a = &idx.packages[0];
        assert!(a.essential);
        assert_eq!(a.multi_arch, MultiArch::Foreign);
        assert_eq!(a.depends.as_deref(), Some("b (>= 2), c | d"));
        assert!(idx.stanza(0).starts_with("Package: a\n"));
        assert!(idx.stanza(0).ends_with("0000\n"));
        assert!(idx.stanza(1).starts_with("Package: b\n"));
        assert_eq!(idx.packages[1].provides.as_deref(), Some("bee (= 2)"));
    }

    #[test]
    fn packages_errors() {
        let missing = PACKAGES.replace("Size: 5\n", "");
        let e = PackagesIndex::parse(missing).unwrap_err();
        assert!(
            e.to_string().contains("field Size is missing (package b)"),
            "{e}"
        );
        let bad = PACKAGES.replace("pool/main/b/b/b_2_all.deb", "../../etc/passwd");
        assert!(matches!(
            PackagesIndex::parse(bad),
            Err(IndexError::BadValue {
                field: "Filename",
                ..
            })
        ));
        let bad = PACKAGES.replace("Version: 2", "Version: -");
        assert!(matches!(
            PackagesIndex::parse(bad),
            Err(IndexError::Version { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(s in "(?s)[ -~\\n]{0,400}") {
            let _ = PackagesIndex::parse(s.clone());
            let _ = Release::parse(&s);
        }

        #[test]
        fn mutations_never_panic(pos in 0usize..600, byte in 0u8..128) {
            let mut b = PACKAGES.as_bytes().to_vec();
            let i = pos % b.len();
            b[i] = byte;
            if let Ok(s) = String::from_utf8(b) {
                let _ = PackagesIndex::parse(s);
            }
        }
    }
}
