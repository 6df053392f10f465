//! Downloading a closure's `.deb` files into a content-addressed store:
//! several at once (a bounded number of workers), each retried, resumed
//! and verified against the index's SHA-256 before it enters the store.
//! Files already in the store are not fetched again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::fetch::{hash_file, FetchError, Fetcher};

/// A file to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// What to call it in messages (`name version`).
    pub label: String,
    /// Where it comes from.
    pub url: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// A directory of verified files named by their SHA-256.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created when missing).
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    /// Where a file with this SHA-256 is kept.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Whether the store holds `item` (by name and size; contents were
    /// verified when it entered).
    pub fn has(&self, item: &Item) -> bool {
        std::fs::metadata(self.path(&item.sha256)).is_ok_and(|m| m.len() == item.size)
    }

    /// Checks the stored copy of `item` byte for byte; a bad copy is
    /// removed.
    pub fn check(&self, item: &Item) -> Result<bool, FetchError> {
        let path = self.path(&item.sha256);
        let (sha, size) = hash_file(&path)?;
        if sha == item.sha256 && size == item.size {
            Ok(true)
        } else {
            let _ = std::fs::remove_file(&path);
            Ok(false)
        }
    }
}

/// What a download run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files fetched.
    pub fetched: usize,
    /// Bytes fetched.
    pub fetched_bytes: u64,
    /// Files the store already held.
    pub reused: usize,
}

/// Progress of a download run, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Files finished (fetched, reused or failed).
    pub done: usize,
    /// Files in all.
    pub total: usize,
    /// Bytes finished.
    pub bytes: u64,
    /// Bytes in all.
    pub total_bytes: u64,
}

/// Files that could not be downloaded.
#[derive(Debug, thiserror::Error)]
#[error("{} of {total} files could not be downloaded:\n{}", .failures.len(), list(.failures))]
pub struct DownloadError {
    /// Each failed file and why.
    pub failures: Vec<(String, FetchError)>,
    /// Files in the run.
    pub total: usize,
}

fn list(failures: &[(String, FetchError)]) -> String {
    failures
        .iter()
        .map(|(label, e)| format!("  {label}: {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Downloads every item missing from `store` with `jobs` workers; every
/// file the store already has is checked again. Fails, naming every file
/// that failed, if any did.
pub fn download(
    fetcher: &Fetcher,
    store: &Store,
    items: &[Item],
    jobs: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, DownloadError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let fetched = AtomicUsize::new(0);
    let fetched_bytes = AtomicU64::new(0);
    let failures: Mutex<Vec<(usize, String, FetchError)>> = Mutex::new(Vec::new());
    let total_bytes: u64 = items.iter().map(|i| i.size).sum();
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(item) = items.get(i) else { break };
        let outcome = (|| -> Result<bool, FetchError> {
            if store.has(item) && store.check(item)? {
                return Ok(false);
            }
            fetcher.fetch_verified(
                &item.url,
                &store.path(&item.sha256),
                item.size,
                &item.sha256,
            )?;
            Ok(true)
        })();
        match outcome {
            Ok(true) => {
                fetched.fetch_add(1, Ordering::SeqCst);
                fetched_bytes.fetch_add(item.size, Ordering::SeqCst);
            }
            Ok(false) => {}
            Err(e) => {
                failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, item.label.clone(), e))
            }
        }
        let d = done.fetch_add(1, Ordering::SeqCst) + 1;
        let b = bytes.fetch_add(item.size, Ordering::SeqCst) + item.size;
        progress(Progress {
            done: d,
            total: items.len(),
            bytes: b,
            total_bytes,
        });
    };
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, 64).min(items.len().max(1)) {
            s.spawn(worker);
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    if !failures.is_empty() {
        failures.sort_by_key(|(i, _, _)| *i);
        return Err(DownloadError {
            failures: failures.into_iter().map(|(_, l, e)| (l, e)).collect(),
            total: items.len(),
        });
    }
    let fetched = fetched.into_inner();
    Ok(Report {
        fetched,
        fetched_bytes: fetched_bytes.into_inner(),
        reused: items.len() - fetched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::sha256_hex;

    #[test]
    fn parallel_verified_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut items = Vec::new();
        for i in 0..20u8 {
            let data = vec![i; 1000 + i as usize];
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, &data).unwrap();
            items.push(Item {
                label: format!("f{i}"),
                url: format!("file://{}", p.display()),
                size: data.len() as u64,
                sha256: sha256_hex(&data),
            });
        }
        let store = Store::open(&dir.path().join("store")).unwrap();
        let f = Fetcher::new();
        let seen = AtomicUsize::new(0);
        let r = download(&f, &store, &items, 4, &|p| {
            seen.fetch_max(p.done, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!((r.fetched, r.reused), (20, 0));
        assert_eq!(seen.load(Ordering::SeqCst), 20);
        let r = download(&f, &store, &items, 4, &|_| {}).unwrap();
        assert_eq!((r.fetched, r.reused), (0, 20));
        // A corrupt stored copy is noticed and fetched again.
        std::fs::write(
            store.path(&items[3].sha256),
            vec![0u8; items[3].size as usize],
        )
        .unwrap();
        let r = download(&f, &store, &items, 2, &|_| {}).unwrap();
        assert_eq!(r.fetched, 1);
        // A source that changed fails, by name, and never enters the store.
        std::fs::write(dir.path().join("f5"), b"tampered").unwrap();
        std::fs::write(dir.path().join("f7"), b"tampered").unwrap();
        std::fs::remove_file(store.path(&items[5].sha256)).unwrap();
        std::fs::remove_file(store.path(&items[7].sha256)).unwrap();
        let e = download(&f, &store, &items, 3, &|_| {}).unwrap_err();
        assert_eq!(e.failures.len(), 2);
        assert_eq!(e.failures[0].0, "f5");
        assert!(
            e.to_string()
                .starts_with("2 of 20 files could not be downloaded"),
            "{e}"
        );
        assert!(!store.path(&items[5].sha256).exists());
    }
}
