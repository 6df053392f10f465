//! Fetching files from a mirror (`http://` or `file://`): retried, resumed
//! where a partial download is left, and verified against a SHA-256 before
//! a file takes its final name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Why a file could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server answered with an error status.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The connection failed (after retries).
    #[error("{url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// A URL scheme kld does not fetch from.
    #[error("{0}: only http:// and file:// URLs are supported (apt checks integrity through signatures, so plain HTTP is what Debian mirrors serve)")]
    Scheme(String),
    /// A local file could not be read or written.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server sent more than the signed metadata (or the cap on an
    /// unsigned file) allows; the download was stopped there.
    #[error("{url}: expected at most {expected} bytes ({what}), got more: stopped at {got}")]
    TooLarge {
        /// The URL.
        url: String,
        /// Where the limit comes from (`the size the signed index gives`,
        /// `the cap on this kind of file`).
        what: &'static str,
        /// The most that was allowed.
        expected: u64,
        /// What had been read when the download stopped.
        got: u64,
    },
    /// The file arrived but is not the one the index describes.
    #[error("{url}: expected {expected_size} bytes with SHA-256 {expected}, got {got_size} bytes with SHA-256 {got}")]
    Mismatch {
        /// The URL.
        url: String,
        /// The SHA-256 the index gives.
        expected: String,
        /// The size the index gives.
        expected_size: u64,
        /// The SHA-256 of what arrived.
        got: String,
        /// The size of what arrived.
        got_size: u64,
    },
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::Transport { .. } => true,
            _ => false,
        }
    }
}

/// The most an `InRelease`, `Release` or `Release.gpg` may be: it is read
/// into memory before its signature is checked (Debian's are about
/// 150 kB; Ubuntu's under 300 kB).
pub const MAX_RELEASE: u64 = 8 << 20;

/// Fetches files; cheap to share between threads.
///
/// Every body has a whole-transfer deadline (not a per-read one): a base
/// allowance plus its size at the minimum rate, and no read may wait longer
/// than the idle timeout. A file is never read past the size the signed
/// metadata gives it.
#[derive(Debug, Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
    attempts: u32,
    backoff: Duration,
    idle: Duration,
    base: Duration,
    min_rate: u64,
}

impl Default for Fetcher {
    fn default() -> Self {
        Fetcher::new()
    }
}

impl Fetcher {
    /// Three attempts per file, a connect timeout of 20 s, 60 s for the
    /// response head, and for each body 60 s plus its size at 64 KiB/s,
    /// with no read waiting more than 30 s.
    pub fn new() -> Fetcher {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build()
            .into();
        Fetcher {
            agent,
            attempts: 3,
            backoff: Duration::from_millis(500),
            idle: Duration::from_secs(30),
            base: Duration::from_secs(60),
            min_rate: 64 << 10,
        }
    }

    /// Sets the body timeouts: no read waits longer than `idle`, and a body
    /// of N bytes must arrive within `base` + N / `min_rate` seconds.
    pub fn timeouts(mut self, idle: Duration, base: Duration, min_rate: u64) -> Fetcher {
        self.idle = idle;
        self.base = base;
        self.min_rate = min_rate.max(1);
        self
    }

    /// The whole-transfer deadline for a body of at most `size` bytes.
    pub fn body_deadline(&self, size: u64) -> Duration {
        self.base + Duration::from_secs_f64(size as f64 / self.min_rate as f64)
    }

    /// How many times a file is tried (at least once).
    pub fn attempts(mut self, n: u32) -> Fetcher {
        self.attempts = n.max(1);
        self
    }

    /// Fetches a whole (small) file into memory, at most `limit` bytes
    /// (more is [`FetchError::TooLarge`], and reading stops there);
    /// `Ok(None)` when the server has no such file (HTTP 404, or no such
    /// local file).
    pub fn get_optional(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        self.retry(|| match self.open(url, 0, limit)? {
            None => Ok(None),
            Some((reader, _)) => {
                let mut buf = Vec::new();
                reader
                    .take(limit + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| transport(url, e))?;
                if buf.len() as u64 > limit {
                    return Err(FetchError::TooLarge {
                        url: url.to_owned(),
                        what: "the cap on this kind of file",
                        expected: limit,
                        got: buf.len() as u64,
                    });
                }
                Ok(Some(buf))
            }
        })
    }

    /// Fetches a whole file of at most `limit` bytes into memory; a missing
    /// file is an error.
    pub fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.get_optional(url, limit)?
            .ok_or_else(|| FetchError::Status {
                url: url.to_owned(),
                status: 404,
            })
    }

    /// Fetches `url` to `dest`, which it reaches only once its size and
    /// SHA-256 match. A partial download is kept in `dest` + `.part` and
    /// resumed by the next call (an HTTP range request).
    pub fn fetch_verified(
        &self,
        url: &str,
        dest: &Path,
        size: u64,
        sha256: &str,
    ) -> Result<(), FetchError> {
        let part = part_path(dest);
        let mut restarted = false;
        self.retry(|| loop {
            let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            // Hashed as it arrives (and what a resumed download already
            // had, first): the file is not read again.
            let (got, got_size) = if have < size {
                match self.append(url, &part, have, size) {
                    Err(e @ FetchError::TooLarge { .. }) => {
                        let _ = fs::remove_file(&part);
                        return Err(e);
                    }
                    other => other?,
                }
            } else {
                hash_file(&part)?
            };
            if got == sha256 && got_size == size {
                fs::rename(&part, dest).map_err(|source| FetchError::Io {
                    what: "cannot move into place",
                    path: dest.to_owned(),
                    source,
                })?;
                kld_fs::fault::step(|| format!("fetched {}", dest.display()));
                return Ok(());
            }
            let _ = fs::remove_file(&part);
            // A partial file from an earlier run may have been bad: start
            // over once from nothing before calling the file corrupt.
            if have > 0 && !restarted {
                restarted = true;
                continue;
            }
            return Err(FetchError::Mismatch {
                url: url.to_owned(),
                expected: sha256.to_owned(),
                expected_size: size,
                got,
                got_size,
            });
        })
    }

    /// Appends what the server has of `url` from byte `offset` to `part`,
    /// stopping with [`FetchError::TooLarge`] as soon as the whole file
    /// would exceed `size`; returns the SHA-256 and size of the whole file.
    fn append(
        &self,
        url: &str,
        part: &Path,
        offset: u64,
        size: u64,
    ) -> Result<(String, u64), FetchError> {
        let (mut reader, resumed) =
            self.open(url, offset, size)?
                .ok_or_else(|| FetchError::Status {
                    url: url.to_owned(),
                    status: 404,
                })?;
        let mut file = if resumed {
            OpenOptions::new().append(true).open(part)
        } else {
            File::create(part)
        }
        .map_err(|source| FetchError::Io {
            what: "cannot write",
            path: part.to_owned(),
            source,
        })?;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        if resumed {
            let mut prefix = File::open(part).map_err(|source| FetchError::Io {
                what: "cannot read",
                path: part.to_owned(),
                source,
            })?;
            total = std::io::copy(&mut prefix, &mut hasher).map_err(|source| FetchError::Io {
                what: "cannot read",
                path: part.to_owned(),
                source,
            })?;
        }
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| transport(url, e))?;
            if n == 0 {
                break;
            }
            if total + n as u64 > size {
                return Err(FetchError::TooLarge {
                    url: url.to_owned(),
                    what: "the size the signed index gives",
                    expected: size,
                    got: total + n as u64,
                });
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            file.write_all(&buf[..n]).map_err(|source| FetchError::Io {
                what: "cannot write",
                path: part.to_owned(),
                source,
            })?;
        }
        file.sync_all().map_err(|source| FetchError::Io {
            what: "cannot write",
            path: part.to_owned(),
            source,
        })?;
        Ok((hex(&hasher.finalize()), total))
    }

    /// Opens `url` from byte `offset`, for a file of at most `size` bytes
    /// (which sets the body's deadline); the flag says whether the stream
    /// starts there (else it starts at 0). `None` for a missing file.
    #[allow(clippy::type_complexity)]
    fn open(
        &self,
        url: &str,
        offset: u64,
        size: u64,
    ) -> Result<Option<(Box<dyn Read + Send>, bool)>, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            let mut f = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(source) => {
                    return Err(FetchError::Io {
                        what: "cannot read",
                        path: path.into(),
                        source,
                    })
                }
            };
            if offset > 0 {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(offset))
                    .map_err(|source| FetchError::Io {
                        what: "cannot read",
                        path: path.into(),
                        source,
                    })?;
            }
            return Ok(Some((Box::new(f), offset > 0)));
        }
        if !url.starts_with("http://") {
            return Err(FetchError::Scheme(url.to_owned()));
        }
        let mut req = self
            .agent
            .get(url)
            .config()
            .timeout_per_read(Some(self.idle))
            .timeout_recv_body(Some(self.body_deadline(size.saturating_sub(offset))))
            .build();
        if offset > 0 {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        let resp = req.call().map_err(|e| FetchError::Transport {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        // A length announced beyond the limit is refused before the body.
        let announced = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(len) = announced {
            let whole = if status == 206 { offset + len } else { len };
            if matches!(status, 200 | 206) && whole > size {
                return Err(FetchError::TooLarge {
                    url: url.to_owned(),
                    what: "the server announced more in Content-Length",
                    expected: size,
                    got: whole,
                });
            }
        }
        match status {
            200 => Ok(Some((Box::new(resp.into_body().into_reader()), false))),
            206 if offset > 0 => Ok(Some((Box::new(resp.into_body().into_reader()), true))),
            404 | 410 => Ok(None),
            _ => Err(FetchError::Status {
                url: url.to_owned(),
                status,
            }),
        }
    }

    fn retry<T>(&self, mut f: impl FnMut() -> Result<T, FetchError>) -> Result<T, FetchError> {
        let mut attempt = 1;
        loop {
            match f() {
                Err(e) if e.retryable() && attempt < self.attempts => {
                    std::thread::sleep(self.backoff * attempt);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn transport(url: &str, e: std::io::Error) -> FetchError {
    FetchError::Transport {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// Where a download to `dest` is kept until it is verified.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// The SHA-256 (lower-case hex) and size of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64), FetchError> {
    let io = |source| FetchError::Io {
        what: "cannot read",
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((hex(&h.finalize()), n_total))
}

/// The SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_verified_and_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.deb");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &data).unwrap();
        let sha = sha256_hex(&data);
        let url = format!("file://{}", src.display());
        let f = Fetcher::new();
        let dest = dir.path().join("dest.deb");
        // A partial download left by an earlier run is continued.
        fs::write(part_path(&dest), &data[..1234]).unwrap();
        f.fetch_verified(&url, &dest, data.len() as u64, &sha)
            .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), data);
        assert!(!part_path(&dest).exists());
        // A wrong partial file is thrown away and the file fetched again.
        let dest2 = dir.path().join("dest2.deb");
        fs::write(part_path(&dest2), b"garbage").unwrap();
        f.fetch_verified(&url, &dest2, data.len() as u64, &sha)
            .unwrap();
        assert_eq!(fs::read(&dest2).unwrap(), data);
        // A file that does not match never takes its name.
        let dest3 = dir.path().join("dest3.deb");
        let e = f
            .fetch_verified(&url, &dest3, data.len() as u64, &"0".repeat(64))
            .unwrap_err();
        assert!(matches!(e, FetchError::Mismatch { .. }), "{e}");
        assert!(!dest3.exists() && !part_path(&dest3).exists());
        assert!(f
            .get_optional("file:///nonexistent/x", 10)
            .unwrap()
            .is_none());
        // Over HTTP, a partial download is resumed with a range request: the
        // kept prefix differs from the server's, so only a resumed download
        // can give the expected bytes.
        let server = crate::serve::Server::bind(dir.path(), "127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || server.run());
        let url = format!("http://{addr}/src.deb");
        let dest4 = dir.path().join("sub/dest4.deb");
        fs::create_dir_all(dest4.parent().unwrap()).unwrap();
        fs::write(part_path(&dest4), &data[..40_000]).unwrap();
        f.fetch_verified(&url, &dest4, data.len() as u64, &sha)
            .unwrap();
        assert_eq!(fs::read(&dest4).unwrap(), data);
        assert_eq!(
            f.get_optional(&format!("http://{addr}/missing"), 10)
                .unwrap(),
            None
        );
        assert_eq!(
            f.get(&format!("http://{addr}/src.deb"), 100_000).unwrap(),
            data
        );
        assert!(matches!(
            f.get(&format!("http://{addr}/src.deb"), 99_999),
            Err(FetchError::TooLarge { .. })
        ));
        assert!(matches!(f.get("ftp://x/y", 1), Err(FetchError::Scheme(_))));
    }
}
