//! Publishing a darksite: the standard APT layout (`pool/`,
//! `dists/SUITE/COMPONENT/binary-ARCH/Packages{,.gz,.xz}`, `Release`,
//! `InRelease`, `Release.gpg`), the darksite's public key and a manifest,
//! written into a staging directory. [`crate::darksite`] swaps it in.
//!
//! The output depends only on the packages chosen and the upstream Release
//! dates: the same set over the same indices gives the same bytes
//! (signatures aside, which carry their own time).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::download::Store;
use crate::fetch::sha256_hex;
use crate::resolve::{Resolution, Universe};
use crate::sign::{SignError, Signer};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Writing the tree failed.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Compressing an index failed.
    #[error("cannot compress {path}: {source}")]
    Compress {
        /// The index.
        path: String,
        /// Why.
        source: kld_exec::Error,
    },
    /// Two different packages would have the same pool path.
    #[error("two different files would be published as {0}")]
    Collision(String),
    /// The store lacks a file the plan needs (download first).
    #[error("the store has no verified copy of {0}")]
    NotInStore(String),
}

/// The name of the public key file at the top of a publication (binary,
/// for `signed-by=` and gpgv); the armored copy ends in `.asc`.
pub const KEY_FILE: &str = "kld-darksite.gpg";
/// The armored public key.
pub const KEY_FILE_ASC: &str = "kld-darksite.asc";
/// The manifest of a publication.
pub const MANIFEST: &str = "manifest.json";

/// One package to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// The component it is published in.
    pub component: String,
    /// The upstream suite it came from (`local` for local files).
    pub suite: String,
    /// Path below the publication's root.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: String,
    /// Its index paragraph.
    #[serde(skip)]
    pub stanza: String,
}

/// Everything a publication holds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The suite published (`Suite` and `Codename`).
    pub distribution: String,
    /// `Label`.
    pub label: String,
    /// `Date`: the newest upstream Release date, so that the same inputs
    /// give the same bytes.
    pub date: String,
    /// The architectures.
    pub architectures: Vec<String>,
    /// The packages, sorted by name, architecture and version.
    pub entries: Vec<Entry>,
}

impl Plan {
    /// The plan for a resolution.
    pub fn new(
        u: &Universe,
        r: &Resolution,
        distribution: &str,
        label: &str,
        architectures: &[String],
        date: &str,
    ) -> Plan {
        let mut entries: Vec<Entry> = r
            .packages
            .iter()
            .map(|(id, _)| {
                let p = u.pkg(*id);
                let src = u.source(*id);
                let mut stanza = u.stanza(*id).trim_end().to_owned();
                stanza.push('\n');
                Entry {
                    name: p.name.clone(),
                    version: p.version.to_string(),
                    arch: p.arch.clone(),
                    component: src.component.clone(),
                    suite: src.suite.clone(),
                    filename: p.filename.clone(),
                    size: p.size,
                    sha256: p.sha256.clone(),
                    stanza,
                }
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.name, &a.arch, &a.version, &a.filename).cmp(&(
                &b.name,
                &b.arch,
                &b.version,
                &b.filename,
            ))
        });
        Plan {
            distribution: distribution.to_owned(),
            label: label.to_owned(),
            date: date.to_owned(),
            architectures: architectures.to_vec(),
            entries,
        }
    }

    /// The components that hold packages, sorted.
    pub fn components(&self) -> Vec<String> {
        let mut c: Vec<String> = self.entries.iter().map(|e| e.component.clone()).collect();
        c.sort();
        c.dedup();
        c
    }

    /// The total size of the packages.
    pub fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
    let path = path.to_owned();
    move |source| PublishError::Io { what, path, source }
}

/// Replaces `path` with `bytes` (`0644`), atomically and durably: a new
/// inode renamed into place, never a write through an existing one (which
/// may be a hard link of a stored package).
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    kld_fs::replace(path, bytes, 0o644).map_err(io("cannot write", path))
}

/// Puts the stored file `from` at `to` in a staging tree: a hard link, or
/// where the file system refuses one, a copy into a new file renamed into
/// place. Never writes into an existing file: `to` may not exist (two
/// entries with one path were merged before), so one that does is an
/// error, not a file to overwrite.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), PublishError> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(PublishError::Io {
            what: "refusing to overwrite",
            path: to.to_owned(),
            source: e,
        }),
        Err(_) => {
            let mut src = fs::File::open(from).map_err(io("cannot read", from))?;
            kld_fs::replace_with(to, 0o644, |f| std::io::copy(&mut src, f).map(|_| ()))
                .map_err(io("cannot copy into the pool", to))
        }
    }
}

/// Writes the publication of `plan` into the empty directory `dir`.
pub fn stage(plan: &Plan, store: &Store, signer: &Signer, dir: &Path) -> Result<(), PublishError> {
    // The pool: hard links into the store (copies across file systems).
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for e in &plan.entries {
        if let Some(old) = seen.insert(&e.filename, &e.sha256) {
            if old != e.sha256 {
                return Err(PublishError::Collision(e.filename.clone()));
            }
            continue;
        }
        let from = store.path(&e.sha256);
        if !fs::metadata(&from).is_ok_and(|m| m.len() == e.size) {
            return Err(PublishError::NotInStore(format!(
                "{} {}",
                e.name, e.version
            )));
        }
        let to = dir.join(&e.filename);
        let parent = to.parent().unwrap_or(dir);
        fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        link_or_copy(&from, &to)?;
    }
    // The indices.
    let dists = dir.join("dists").join(&plan.distribution);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for component in plan.components() {
        for arch in &plan.architectures {
            let mut text = String::new();
            for e in plan
                .entries
                .iter()
                .filter(|e| e.component == component && (e.arch == *arch || e.arch == "all"))
            {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&e.stanza);
            }
            let base = format!("{component}/binary-{arch}/Packages");
            let bytes = text.into_bytes();
            files.push((format!("{base}.gz"), gzip(&bytes)));
            files.push((
                format!("{base}.xz"),
                xz(&bytes).map_err(|source| PublishError::Compress {
                    path: base.clone(),
                    source,
                })?,
            ));
            files.push((base, bytes));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, bytes) in &files {
        write_synced(&dists.join(path), bytes)?;
    }
    let release = release_text(plan, &files);
    write_synced(&dists.join("Release"), release.as_bytes())?;
    write_synced(
        &dists.join("InRelease"),
        &signer.clearsign(release.as_bytes())?,
    )?;
    write_synced(
        &dists.join("Release.gpg"),
        &signer.detach_sign(release.as_bytes())?,
    )?;
    write_synced(&dir.join(KEY_FILE), &signer.public_key(false)?)?;
    write_synced(&dir.join(KEY_FILE_ASC), &signer.public_key(true)?)?;
    write_synced(&dir.join(MANIFEST), manifest(plan).as_bytes())?;
    Ok(())
}

/// The Release file for `plan` and its index files.
pub fn release_text(plan: &Plan, files: &[(String, Vec<u8>)]) -> String {
    let mut s = String::new();
    s.push_str("Origin: kld darksite\n");
    s.push_str(&format!("Label: {}\n", plan.label));
    s.push_str(&format!("Suite: {}\n", plan.distribution));
    s.push_str(&format!("Codename: {}\n", plan.distribution));
    s.push_str(&format!("Date: {}\n", plan.date));
    s.push_str(&format!(
        "Architectures: {}\n",
        plan.architectures.join(" ")
    ));
    s.push_str(&format!("Components: {}\n", plan.components().join(" ")));
    s.push_str(&format!(
        "Description: kld darksite {}: {} packages\n",
        plan.label,
        plan.entries.len()
    ));
    s.push_str("SHA256:\n");
    let width = files
        .iter()
        .map(|(_, b)| b.len().to_string().len())
        .max()
        .unwrap_or(1);
    for (path, bytes) in files {
        s.push_str(&format!(
            " {} {:>width$} {path}\n",
            sha256_hex(bytes),
            bytes.len()
        ));
    }
    s
}

fn manifest(plan: &Plan) -> String {
    let doc = serde_json::json!({
        "apiVersion": "kld/v1",
        "kind": "DarksiteManifest",
        "distribution": plan.distribution,
        "label": plan.label,
        "date": plan.date,
        "architectures": plan.architectures,
        "packages": plan.entries,
    });
    serde_json::to_string_pretty(&doc).expect("JSON values serialise") + "\n"
}

/// gzip at level 9 with no file name and time 0: the same bytes each time.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// xz at level 9, single-threaded: the same bytes each time.
pub fn xz(bytes: &[u8]) -> Result<Vec<u8>, kld_exec::Error> {
    Ok(kld_exec::Cmd::new("xz")
        .args(["-9", "-T1", "-c", "-q"])
        .stdin_bytes(bytes.to_vec())
        .run()?
        .stdout)
}

/// The sort key of an RFC 2822 date as Release files write it (`Sat, 10
/// Aug 2024 09:57:52 UTC`); `None` when it does not parse.
pub fn date_key(date: &str) -> Option<(u32, u32, u32, String)> {
    let words: Vec<&str> = date.split_whitespace().collect();
    let words = if words.first().is_some_and(|w| w.ends_with(',')) {
        &words[1..]
    } else {
        &words[..]
    };
    let [day, month, year, time, ..] = words else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as u32 + 1;
    Some((year.parse().ok()?, m, day.parse().ok()?, (*time).to_owned()))
}

/// The seconds since the epoch of an RFC 2822 date as Release files write
/// it (`Sat, 10 Aug 2024 09:57:52 UTC`, or with `+0000`, `GMT`, `Z`);
/// `None` when it does not parse.
pub fn date_unix(date: &str) -> Option<i64> {
    let (y, m, d, time) = date_key(date)?;
    let zone = {
        let words: Vec<&str> = date.split_whitespace().collect();
        let i = usize::from(words.first().is_some_and(|w| w.ends_with(','))) + 4;
        words.get(i).copied().unwrap_or("UTC")
    };
    let offset: i64 = match zone {
        "UTC" | "GMT" | "Z" | "UT" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let h: i64 = z[1..3].parse().ok()?;
            let mi: i64 = z[3..5].parse().ok()?;
            let v = h * 3600 + mi * 60;
            if z.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let mut hms = time.split(':');
    let hh: i64 = hms.next()?.parse().ok()?;
    let mm: i64 = hms.next()?.parse().ok()?;
    let ss: i64 = hms.next().unwrap_or("0").parse().ok()?;
    if m == 0 || m > 12 || d == 0 || d > 31 || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, d) = (i64::from(y), i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// The newest of several Release dates (the first that parses if none
/// compare).
pub fn newest_date<'a>(dates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    dates
        .into_iter()
        .filter_map(|d| date_key(d).map(|k| (k, d)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, d)| d.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            newest_date([
                "Sat, 10 Aug 2024 09:57:52 UTC",
                "Sun, 11 Aug 2024 08:00:00 UTC",
                "junk"
            ])
            .as_deref(),
            Some("Sun, 11 Aug 2024 08:00:00 UTC")
        );
        assert!(date_key("10 Zzz 2024 09:57:52").is_none());
        assert_eq!(date_unix("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            date_unix("Sat, 10 Aug 2024 09:57:52 UTC"),
            Some(1_723_283_872)
        );
        assert_eq!(
            date_unix("Sat, 10 Aug 2024 11:57:52 +0200"),
            Some(1_723_283_872)
        );
        assert_eq!(
            date_unix("Tue, 29 Feb 2000 00:00:00 UTC"),
            Some(951_782_400)
        );
        assert_eq!(date_unix("Sat, 10 Aug 2024 09:57:52 XYZ"), None);
    }

    #[test]
    fn compression_is_deterministic() {
        let data = b"Package: a\nVersion: 1\n".repeat(100);
        assert_eq!(gzip(&data), gzip(&data));
        assert_eq!(xz(&data).unwrap(), xz(&data).unwrap());
        assert_eq!(
            crate::upstream::decompress(&gzip(&data), "gz")
                .unwrap()
                .as_bytes(),
            &data[..]
        );
        assert_eq!(
            crate::upstream::decompress(&xz(&data).unwrap(), "xz")
                .unwrap()
                .as_bytes(),
            &data[..]
        );
    }
}
