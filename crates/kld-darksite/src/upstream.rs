//! Upstream metadata: each suite's `InRelease` (or `Release` and
//! `Release.gpg`) checked against the archive keyring, then the `Packages`
//! index of every component and architecture checked against the hashes
//! the signed Release lists. Indices are cached by hash, so an update
//! fetches only what changed.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::fetch::{FetchError, Fetcher};
use crate::index::{IndexError, PackagesIndex, Release};
use crate::resolve::Source;
use crate::set::PackageSet;
use crate::sign::{self, SignError};

/// Why upstream metadata is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Fetching failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A signature does not verify.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// An index does not parse.
    #[error("{url}: {source}")]
    Index {
        /// Where it came from.
        url: String,
        /// Why.
        source: IndexError,
    },
    /// The suite has neither InRelease nor Release.
    #[error(
        "{0}: no InRelease or Release: is the mirror URL right, and does it carry this suite?"
    )]
    NoRelease(String),
    /// The Release is for another suite than asked (a replayed file).
    #[error("{url}: this Release is for suite {suite:?} / codename {codename:?}, not {wanted:?}")]
    WrongSuite {
        /// The URL.
        url: String,
        /// Its Suite field.
        suite: String,
        /// Its Codename field.
        codename: String,
        /// The suite asked for.
        wanted: String,
    },
    /// The Release's `Valid-Until` has passed (a stale or frozen mirror), or
    /// does not parse.
    #[error("{url}: this Release was valid until {valid_until}, which has passed (a stale or frozen mirror serving an old, validly signed file): use an up-to-date mirror")]
    Expired {
        /// The URL.
        url: String,
        /// Its Valid-Until field.
        valid_until: String,
    },
    /// A date field of the Release does not parse.
    #[error("{url}: cannot read its {field} field {value:?}")]
    BadDate {
        /// The URL.
        url: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The Release lists no index for a component and architecture.
    #[error("{url}: lists no Packages index for {component}/binary-{arch}")]
    NoIndex {
        /// The Release's URL.
        url: String,
        /// The component.
        component: String,
        /// The architecture.
        arch: String,
    },
    /// An index could not be decompressed or is not UTF-8.
    #[error("{url}: cannot decompress: {message}")]
    Decompress {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The cache directory.
    #[error("cache {}: {source}", .path.display())]
    Cache {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One upstream suite as fetched.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite name asked for.
    pub name: String,
    /// The mirror it came from.
    pub url: String,
    /// Its verified Release.
    pub release: Release,
    /// The fingerprint of the key that signed it.
    pub signed_by: String,
}

/// The mirror URL of each suite of `set`: its own from `[mirrors]`, else
/// `mirror`.
pub fn suite_url<'a>(set: &'a PackageSet, mirror: &'a str, suite: &str) -> &'a str {
    set.mirrors.get(suite).map(String::as_str).unwrap_or(mirror)
}

/// Fetches and verifies every suite of `set` and its indices; `cache` keeps
/// indices by hash between runs.
pub fn fetch(
    set: &PackageSet,
    mirror: &str,
    fetcher: &Fetcher,
    cache: &Path,
) -> Result<(Vec<Suite>, Vec<Source>), UpstreamError> {
    std::fs::create_dir_all(cache).map_err(|source| UpstreamError::Cache {
        path: cache.to_owned(),
        source,
    })?;
    let mut suites = Vec::new();
    let mut sources = Vec::new();
    for name in &set.suites {
        let base = suite_url(set, mirror, name)
            .trim_end_matches('/')
            .to_owned();
        let dists = format!("{base}/dists/{name}");
        let (text, signed_by, url) = release(fetcher, &dists, &set.keyring)?;
        let release = Release::parse(&text).map_err(|source| UpstreamError::Index {
            url: url.clone(),
            source,
        })?;
        let suite_field = release.suite.clone().unwrap_or_default();
        let codename = release.codename.clone().unwrap_or_default();
        if suite_field != *name && codename != *name {
            return Err(UpstreamError::WrongSuite {
                url,
                suite: suite_field,
                codename,
                wanted: name.clone(),
            });
        }
        check_valid_until(&release, &url, now())?;
        for component in &set.components {
            for arch in &set.architectures {
                let index = packages(fetcher, &dists, &url, &release, component, arch, cache)?;
                sources.push(Source {
                    suite: name.clone(),
                    component: component.clone(),
                    arch: arch.clone(),
                    not_automatic: release.not_automatic,
                    base_url: base.clone(),
                    index,
                    local_files: Vec::new(),
                });
            }
        }
        suites.push(Suite {
            name: name.clone(),
            url: base,
            release,
            signed_by,
        });
    }
    Ok((suites, sources))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Refuses a Release whose `Valid-Until` (if it has one) is before `now`
/// (seconds since the epoch), as apt does.
pub fn check_valid_until(release: &Release, url: &str, now: i64) -> Result<(), UpstreamError> {
    let Some(until) = &release.valid_until else {
        return Ok(());
    };
    let t = crate::publish::date_unix(until).ok_or_else(|| UpstreamError::BadDate {
        url: url.to_owned(),
        field: "Valid-Until",
        value: until.clone(),
    })?;
    if t < now {
        return Err(UpstreamError::Expired {
            url: url.to_owned(),
            valid_until: until.clone(),
        });
    }
    Ok(())
}

/// The verified Release text of a suite, its signer, and the URL it came
/// from.
fn release(
    fetcher: &Fetcher,
    dists: &str,
    keyring: &Path,
) -> Result<(String, String, String), UpstreamError> {
    let url = format!("{dists}/InRelease");
    let text_of = |bytes: Vec<u8>, url: &str| {
        String::from_utf8(bytes).map_err(|e| UpstreamError::Decompress {
            url: url.to_owned(),
            message: e.to_string(),
        })
    };
    let cap = crate::fetch::MAX_RELEASE;
    if let Some(signed) = fetcher.get_optional(&url, cap)? {
        let (text, fpr) = sign::verify_inline(keyring, &signed, &url)?;
        return Ok((text_of(text, &url)?, fpr, url));
    }
    let url = format!("{dists}/Release");
    let Some(text) = fetcher.get_optional(&url, cap)? else {
        return Err(UpstreamError::NoRelease(dists.to_owned()));
    };
    let sig = fetcher.get(&format!("{url}.gpg"), cap)?;
    let fpr = sign::verify_detached(keyring, &sig, &text, &url)?;
    Ok((text_of(text, &url)?, fpr, url))
}

fn packages(
    fetcher: &Fetcher,
    dists: &str,
    release_url: &str,
    release: &Release,
    component: &str,
    arch: &str,
    cache: &Path,
) -> Result<PackagesIndex, UpstreamError> {
    let stem = format!("{component}/binary-{arch}/Packages");
    let chosen = ["gz", "xz", ""].iter().find_map(|ext| {
        let path = if ext.is_empty() {
            stem.clone()
        } else {
            format!("{stem}.{ext}")
        };
        release.file(&path).map(|f| (f.clone(), *ext))
    });
    let Some((file, ext)) = chosen else {
        return Err(UpstreamError::NoIndex {
            url: release_url.to_owned(),
            component: component.to_owned(),
            arch: arch.to_owned(),
        });
    };
    let url = format!("{dists}/{}", file.path);
    let cached = cache.join(format!(
        "{}.{}",
        file.sha256,
        if ext.is_empty() { "txt" } else { ext }
    ));
    if !cached.exists() {
        fetcher.fetch_verified(&url, &cached, file.size, &file.sha256)?;
    }
    // The decompressed text is cached too (next to the verified file it
    // came from): decompressing 12 MB costs more than the rest of a
    // resolve.
    let plain = cache.join(format!("{}.Packages", file.sha256));
    let text = match std::fs::read_to_string(&plain) {
        Ok(text) if ext.is_empty() || !text.is_empty() => text,
        _ => {
            let raw = std::fs::read(&cached).map_err(|source| UpstreamError::Cache {
                path: cached.clone(),
                source,
            })?;
            let text = decompress(&raw, ext).map_err(|message| UpstreamError::Decompress {
                url: url.clone(),
                message,
            })?;
            if !ext.is_empty() {
                let tmp = cache.join(format!("{}.Packages.tmp", file.sha256));
                if std::fs::write(&tmp, &text).is_ok() {
                    let _ = std::fs::rename(&tmp, &plain);
                }
            }
            text
        }
    };
    PackagesIndex::parse(text).map_err(|source| UpstreamError::Index { url, source })
}

/// Decompresses an index (`gz`, `xz` or `""` for none) into text.
pub fn decompress(raw: &[u8], ext: &str) -> Result<String, String> {
    let bytes = match ext {
        "gz" => {
            let mut out = Vec::with_capacity(raw.len() * 5);
            flate2::read::MultiGzDecoder::new(raw)
                .read_to_end(&mut out)
                .map_err(|e| e.to_string())?;
            out
        }
        "xz" => {
            kld_exec::Cmd::new("xz")
                .args(["-d", "-c"])
                .stdin_bytes(raw.to_vec())
                .run()
                .map_err(|e| e.to_string())?
                .stdout
        }
        _ => raw.to_vec(),
    };
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}
