//! Local `.deb` files added to a darksite: their control data read with
//! `dpkg-deb`, their size and SHA-256 computed, and an index paragraph
//! made for each as `dpkg-scanpackages` would.

use std::path::{Path, PathBuf};

use kld_exec::Cmd;

use crate::deb822;
use crate::fetch::hash_file;
use crate::index::PackagesIndex;
use crate::resolve::Source;

/// Why a local package cannot be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The file does not exist.
    #[error("local package {} does not exist", .0.display())]
    Missing(PathBuf),
    /// `dpkg-deb` could not read it.
    #[error("local package {}: not a readable .deb: {source}", .path.display())]
    NotADeb {
        /// The file.
        path: PathBuf,
        /// What dpkg-deb said.
        source: kld_exec::Error,
    },
    /// Its control data is unusable.
    #[error("local package {}: {message}", .path.display())]
    Control {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The pool path Debian would give a package: `pool/COMPONENT/PREFIX/SOURCE/FILE`
/// with PREFIX `libx` for `libx...` sources and the first letter otherwise.
/// (Any text is taken: it never panics; [`valid_name`] is what callers
/// check names with first.)
pub fn pool_path(component: &str, source: &str, file: &str) -> String {
    let chars = if source.starts_with("lib") && source.chars().count() > 3 {
        4
    } else {
        1
    };
    let end = source
        .char_indices()
        .nth(chars)
        .map_or(source.len(), |(i, _)| i);
    let prefix = &source[..end];
    format!("pool/{component}/{prefix}/{source}/{file}")
}

/// Whether `name` is a package (or source package) name as Debian policy
/// has it: at least two characters of `a-z`, `0-9`, `+`, `-`, `.`,
/// starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c))
}

/// Whether `s` can be part of a file name in the pool (a version or an
/// architecture): ASCII letters, digits and `.+~:-_` only.
fn valid_file_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".+~:-_".contains(&c))
}

/// An index of the given `.deb` files, as a source of the `local` suite.
pub fn source(paths: &[PathBuf], component: &str, arch: &str) -> Result<Source, LocalError> {
    let mut text = String::new();
    for path in paths {
        if !path.is_file() {
            return Err(LocalError::Missing(path.clone()));
        }
        let stanza = stanza(path, component)?;
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&stanza);
    }
    let index = PackagesIndex::parse(text).map_err(|e| LocalError::Control {
        path: paths.first().cloned().unwrap_or_default(),
        message: e.to_string(),
    })?;
    Ok(Source {
        suite: "local".into(),
        component: component.into(),
        arch: arch.into(),
        not_automatic: false,
        base_url: String::new(),
        index,
        local_files: paths.to_vec(),
    })
}

fn stanza(path: &Path, component: &str) -> Result<String, LocalError> {
    let control = Cmd::new("dpkg-deb")
        .arg("-f")
        .arg(path)
        .run()
        .map_err(|source| LocalError::NotADeb {
            path: path.to_owned(),
            source,
        })?
        .stdout_str();
    let bad = |message: String| LocalError::Control {
        path: path.to_owned(),
        message,
    };
    let ps = deb822::parse(&control).map_err(|e| bad(e.to_string()))?;
    let [p] = &ps[..] else {
        return Err(bad(format!("{} control paragraphs", ps.len())));
    };
    let name = p
        .get("Package")
        .ok_or_else(|| bad("no Package field".into()))?;
    let version = p
        .get("Version")
        .ok_or_else(|| bad("no Version field".into()))?;
    let arch = p
        .get("Architecture")
        .ok_or_else(|| bad("no Architecture field".into()))?;
    let source = p
        .get("Source")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or(name);
    for (field, value, ok) in [
        ("Package", name, valid_name(name)),
        ("Source", source, valid_name(source)),
        ("Version", version, valid_file_part(version)),
        ("Architecture", arch, valid_file_part(arch)),
    ] {
        if !ok {
            return Err(bad(format!(
                "its {field} field {value:?} is not a valid Debian {}",
                if field == "Version" || field == "Architecture" {
                    "value (ASCII letters, digits and .+~:- only)"
                } else {
                    "package name (a-z, 0-9, +, -, . only)"
                }
            )));
        }
    }
    let file = format!(
        "{name}_{}_{arch}.deb",
        version.split_once(':').map_or(version, |(_, v)| v)
    );
    let (sha256, size) = hash_file(path).map_err(|e| bad(e.to_string()))?;
    let mut s = p.to_stanza();
    for f in ["Filename", "Size", "SHA256", "MD5sum", "SHA1"] {
        if s.get(f).is_some() {
            return Err(bad(format!("control file has a {f} field")));
        }
    }
    if s.get("Priority").is_none() {
        s.set("Priority", "optional");
    }
    s.set("Filename", pool_path(component, source, &file));
    s.set("Size", size.to_string());
    s.set("SHA256", sha256);
    Ok(s.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_paths() {
        assert_eq!(
            pool_path("main", "openssh", "x.deb"),
            "pool/main/o/openssh/x.deb"
        );
        assert_eq!(
            pool_path("main", "libzfs", "y.deb"),
            "pool/main/libz/libzfs/y.deb"
        );
        assert_eq!(pool_path("main", "lib", "y.deb"), "pool/main/l/lib/y.deb");
        // Never a panic on a name that is not ASCII (checked names are).
        assert_eq!(
            pool_path("main", "libé", "y.deb"),
            "pool/main/libé/libé/y.deb"
        );
        assert_eq!(pool_path("main", "é", "y.deb"), "pool/main/é/é/y.deb");
        assert!(valid_name("libzfs4linux") && valid_name("g++"));
        assert!(
            !valid_name("libé") && !valid_name("a") && !valid_name("../x") && !valid_name("Ab")
        );
    }
}
