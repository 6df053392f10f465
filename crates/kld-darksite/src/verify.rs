//! Verifying a published darksite from scratch: the signatures of
//! `InRelease` and `Release.gpg`, every index against `Release`, every
//! pool file against its index, and no file in the pool that no index
//! lists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fetch::hash_file;
use crate::index::{PackagesIndex, Release};
use crate::publish::KEY_FILE;
use crate::sign::{self, SignError};

/// Why a darksite does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `dists/` (or no `current` publication) there.
    #[error("{} is not a published darksite (no dists/ directory)", .0.display())]
    NotADarksite(PathBuf),
    /// A signature is missing or bad.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Hashes, sizes or files that do not match.
    #[error("{} does not verify ({}):\n{}", .root.display(), crate::count(.problems.len(), "problem"), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Problems {
        /// The publication checked.
        root: PathBuf,
        /// Each problem.
        problems: Vec<String>,
    },
}

/// What a verification checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The publication checked (after following `current`).
    pub root: PathBuf,
    /// Its suites.
    pub suites: Vec<String>,
    /// Packages checked.
    pub packages: usize,
    /// Files hashed.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// The fingerprint of the key that signed it.
    pub signed_by: String,
}

/// The publication a path names: `DIR/current` when DIR is a darksite
/// directory, else DIR itself.
pub fn publication_root(path: &Path) -> PathBuf {
    let current = path.join("current");
    if current.exists() {
        current.canonicalize().unwrap_or(current)
    } else {
        path.to_owned()
    }
}

/// Verifies the publication at `path` (a darksite directory or one
/// publication) against `keyring`, by default the public key it carries.
pub fn verify(path: &Path, keyring: Option<&Path>) -> Result<VerifyReport, VerifyError> {
    let root = publication_root(path);
    let dists = root.join("dists");
    let mut suites: Vec<String> = std::fs::read_dir(&dists)
        .map_err(|_| VerifyError::NotADarksite(path.to_owned()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    suites.sort();
    if suites.is_empty() {
        return Err(VerifyError::NotADarksite(path.to_owned()));
    }
    let keyring = keyring
        .map(Path::to_owned)
        .unwrap_or_else(|| root.join(KEY_FILE));
    let mut problems = Vec::new();
    let mut report = VerifyReport {
        root: root.clone(),
        suites: suites.clone(),
        packages: 0,
        files: 0,
        bytes: 0,
        signed_by: String::new(),
    };
    let mut referenced = BTreeSet::new();
    let mut pool: Vec<(String, u64, String, String)> = Vec::new();
    for suite in &suites {
        let dir = dists.join(suite);
        let read = |name: &str| std::fs::read(dir.join(name));
        let (Ok(release), Ok(inrelease), Ok(detached)) =
            (read("Release"), read("InRelease"), read("Release.gpg"))
        else {
            problems.push(format!(
                "dists/{suite}: Release, InRelease and Release.gpg must all exist"
            ));
            continue;
        };
        let (signed, fpr) =
            sign::verify_inline(&keyring, &inrelease, &format!("dists/{suite}/InRelease"))?;
        sign::verify_detached(
            &keyring,
            &detached,
            &release,
            &format!("dists/{suite}/Release.gpg"),
        )?;
        report.signed_by = fpr;
        let release_text = String::from_utf8_lossy(&release).into_owned();
        let parsed = match Release::parse(&release_text) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("dists/{suite}/Release: {e}"));
                continue;
            }
        };
        let inline = Release::parse(&String::from_utf8_lossy(&signed)).ok();
        if inline.as_ref() != Some(&parsed) {
            problems.push(format!("dists/{suite}: InRelease and Release differ"));
        }
        for f in &parsed.sha256 {
            let path = dir.join(&f.path);
            match hash_file(&path) {
                Ok((sha, size)) if sha == f.sha256 && size == f.size => {
                    report.files += 1;
                    report.bytes += size;
                }
                Ok((sha, size)) => problems.push(format!(
                    "dists/{suite}/{}: {size} bytes with SHA-256 {sha}, Release says {} bytes with {}",
                    f.path, f.size, f.sha256
                )),
                Err(_) => problems.push(format!("dists/{suite}/{}: listed in Release but missing", f.path)),
            }
            if !f.path.ends_with("/Packages") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let index = match PackagesIndex::parse(text) {
                Ok(i) => i,
                Err(e) => {
                    problems.push(format!("dists/{suite}/{}: {e}", f.path));
                    continue;
                }
            };
            for p in &index.packages {
                if referenced.insert(p.filename.clone()) {
                    report.packages += 1;
                    pool.push((
                        p.filename.clone(),
                        p.size,
                        p.sha256.clone(),
                        format!("{} {}", p.name, p.version),
                    ));
                }
            }
        }
    }
    // The pool files, hashed on a few threads.
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let results: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let chunks: Vec<_> = pool.chunks(pool.len().div_ceil(threads).max(1)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let root = &root;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(filename, size, sha256, label)| match hash_file(&root.join(filename)) {
                            Ok((sha, got)) if sha == *sha256 && got == *size => Ok(got),
                            Ok((sha, got)) => Err(format!(
                                "{filename}: {got} bytes with SHA-256 {sha}, the index says {size} bytes with {sha256} ({label})"
                            )),
                            Err(_) => Err(format!("{filename}: missing ({label})")),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for r in results {
        match r {
            Ok(size) => {
                report.files += 1;
                report.bytes += size;
            }
            Err(p) => problems.push(p),
        }
    }
    let mut stray = Vec::new();
    walk(&root.join("pool"), &root, &mut stray);
    for f in stray {
        if !referenced.contains(&f) {
            problems.push(format!("{f}: in the pool but in no index"));
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(VerifyError::Problems { root, problems })
    }
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, root, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}
