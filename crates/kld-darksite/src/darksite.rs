//! A darksite directory: numbered publications, the `current` link to the
//! one in service, and kld's own state (the signing key, the package store,
//! the upstream index cache, what the last build was made from).
//!
//! ```text
//! DIR/current -> releases/3      the publication clients use
//! DIR/releases/2/                the previous one, kept for rollback
//! DIR/releases/3/{pool,dists,kld-darksite.gpg,kld-darksite.asc,manifest.json}
//! DIR/.kdarksite/                signing key (0600), store, index cache, build.json
//! ```
//!
//! A publication is written into `releases/.staging-PID-SEQ`, verified
//! there like [`crate::verify::verify`] would, renamed to `releases/N`, and
//! only then does `current` change, by renaming a new symbolic link over it
//! (one atomic step). The one that was current stays for
//! [`Darksite::rollback`]; older ones are removed.
//!
//! Everything that changes a darksite holds its lock
//! (`DIR/.kdarksite/lock`, see [`Darksite::lock`]): two builds, updates or
//! rollbacks of one darksite run one after the other, and the one that
//! waits is told who holds it. A staging directory left by a killed run is
//! removed only under the lock and only once its process is gone.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kld_fs::lock::Lock;
use serde::{Deserialize, Serialize};

use crate::download::Store;
use crate::publish::{self, Plan, PublishError};
use crate::sign::{self, Signer};
use crate::verify;
use crate::Error;

/// What a build was made from, kept so `update` can make it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    /// The package set file (absolute).
    pub set: PathBuf,
    /// The mirror URL.
    pub mirror: String,
    /// The signing key used.
    pub key: PathBuf,
    /// The `Date` of each upstream suite's Release it was built from: a
    /// later build refuses an older one (a replay) unless told otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub release_dates: BTreeMap<String, String>,
}

/// The darksite's lock, held: proof for the operations that need it.
#[derive(Debug)]
pub struct Locked {
    _lock: Lock,
}

/// A darksite directory.
#[derive(Debug, Clone)]
pub struct Darksite {
    root: PathBuf,
}

/// What a rollback does: from one publication to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollback {
    /// The publication in service before.
    pub from: u64,
    /// The one in service after.
    pub to: u64,
}

impl Darksite {
    /// The darksite in `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Darksite {
        Darksite { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// kld's state directory inside it.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".kdarksite")
    }

    /// The lock file every change holds.
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir().join("lock")
    }

    /// Takes the darksite's lock for `purpose` (`kdarksite update DIR`),
    /// waiting for the holder if there is one; `waiting` is told who it is
    /// before the wait. The state directory is made (`0700`) if missing.
    pub fn lock(&self, purpose: &str, waiting: impl FnOnce(&str)) -> Result<Locked, Error> {
        let dir = self.state_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::Io {
                what: "cannot create",
                path: dir.clone(),
                source,
            })?;
        let lock = Lock::acquire(&self.lock_path(), purpose, waiting)?;
        Ok(Locked { _lock: lock })
    }

    /// The store of verified packages.
    pub fn store(&self) -> Result<Store, Error> {
        let dir = self.state_dir().join("store");
        Store::open(&dir).map_err(|source| Error::Io {
            what: "cannot create the package store",
            path: dir,
            source,
        })
    }

    /// Where upstream indices are cached.
    pub fn index_cache(&self) -> PathBuf {
        self.state_dir().join("indices")
    }

    /// The signing key kept when none is given.
    pub fn default_key(&self) -> PathBuf {
        self.state_dir().join("signing-key.asc")
    }

    /// The record of the last build, if any.
    pub fn record(&self) -> Result<Option<BuildRecord>, Error> {
        let path = self.state_dir().join("build.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                what: "cannot read",
                path,
                source,
            }),
        }
    }

    /// Saves the record of a build.
    pub fn save_record(&self, record: &BuildRecord) -> Result<(), Error> {
        let path = self.state_dir().join("build.json");
        let text = serde_json::to_string_pretty(record).expect("serialisable") + "\n";
        publish::write_synced(&path, text.as_bytes())?;
        Ok(())
    }

    /// The signing key at `path`, made (ed25519, 0600) if it is this
    /// darksite's default key and does not exist yet. Returns the signer and
    /// whether a new key was made.
    pub fn signer(&self, path: &Path) -> Result<(Signer, bool), Error> {
        let mut made = false;
        if !path.exists() && path == self.default_key() {
            std::fs::create_dir_all(self.state_dir()).map_err(|source| Error::Io {
                what: "cannot create",
                path: self.state_dir(),
                source,
            })?;
            sign::generate_key(path, "kld darksite signing key")?;
            made = true;
        }
        Ok((Signer::open(path)?, made))
    }

    /// The publications, by number, ascending.
    pub fn releases(&self) -> Vec<u64> {
        let mut v: Vec<u64> = std::fs::read_dir(self.root.join("releases"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The publication in service.
    pub fn current(&self) -> Option<u64> {
        let target = std::fs::read_link(self.root.join("current")).ok()?;
        target.file_name()?.to_str()?.parse().ok()
    }

    /// The directory of publication `n`.
    pub fn release_dir(&self, n: u64) -> PathBuf {
        self.root.join("releases").join(n.to_string())
    }

    /// The number the next publication gets.
    pub fn next_release(&self) -> u64 {
        self.releases().last().map_or(1, |n| n + 1)
    }

    /// Publishes `plan` from `store` (under the darksite's lock): staged,
    /// verified, swapped in; the publication it replaces is kept, older
    /// ones removed. Returns the new publication's number. On any error the
    /// publication in service is untouched.
    pub fn publish(
        &self,
        _locked: &Locked,
        plan: &Plan,
        store: &Store,
        signer: &Signer,
    ) -> Result<u64, Error> {
        let releases = self.root.join("releases");
        std::fs::create_dir_all(&releases).map_err(|source| Error::Io {
            what: "cannot create",
            path: releases.clone(),
            source,
        })?;
        self.sweep_staging();
        let n = self.next_release();
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let staging = releases.join(format!(
            ".staging-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&staging).map_err(|source| Error::Io {
            what: "cannot create",
            path: staging.clone(),
            source,
        })?;
        let staged = publish::stage(plan, store, signer, &staging)
            .map_err(Error::from)
            .and_then(|()| {
                verify::verify(&staging, Some(&staging.join(publish::KEY_FILE)))
                    .map_err(Error::from)
            });
        if let Err(e) = staged {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        let dir = self.release_dir(n);
        if std::fs::symlink_metadata(&dir).is_ok() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(Error::State(format!(
                "{} exists already: a publication is never replaced in place",
                dir.display()
            )));
        }
        std::fs::rename(&staging, &dir).map_err(|source| Error::Io {
            what: "cannot rename the staged publication to",
            path: dir.clone(),
            source,
        })?;
        sync_dir(&releases);
        kld_fs::fault::step(|| format!("rename the staged publication to {}", dir.display()));
        let previous = self.current();
        self.point_current(n)?;
        for old in self.releases() {
            if old != n && Some(old) != previous {
                let _ = std::fs::remove_dir_all(self.release_dir(old));
                kld_fs::fault::step(|| format!("remove publication {old}"));
            }
        }
        Ok(n)
    }

    /// Removes the staging directories of runs that were killed: only
    /// under the lock (so no other run is writing one) and only those whose
    /// process is gone.
    fn sweep_staging(&self) {
        let releases = self.root.join("releases");
        for e in std::fs::read_dir(&releases).into_iter().flatten().flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(".staging-"))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<i32>().ok())
            else {
                continue;
            };
            if !process_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Makes `current` name publication `n`, atomically.
    fn point_current(&self, n: u64) -> Result<(), Error> {
        let tmp = self
            .root
            .join(format!(".current.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("releases/{n}"), &tmp).map_err(|source| Error::Io {
            what: "cannot create the link",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, self.root.join("current")).map_err(|source| Error::Io {
            what: "cannot replace",
            path: self.root.join("current"),
            source,
        })?;
        sync_dir(&self.root);
        kld_fs::fault::step(|| format!("point current at releases/{n}"));
        Ok(())
    }

    /// What [`rollback`](Self::rollback) would do.
    pub fn plan_rollback(&self) -> Result<Rollback, Error> {
        let from = self.current().ok_or_else(|| {
            Error::State(format!(
                "{} has no current publication",
                self.root.display()
            ))
        })?;
        let to = self
            .releases()
            .into_iter()
            .filter(|n| *n < from)
            .max()
            .ok_or_else(|| {
                Error::State(format!(
                    "publication {from} is the oldest kept: there is nothing to roll back to"
                ))
            })?;
        Ok(Rollback { from, to })
    }

    /// Puts the previous publication back in service (atomically), after
    /// checking that it still verifies; under the darksite's lock (`waiting`
    /// is told who holds it, if anyone does, before the wait).
    pub fn rollback(&self, waiting: impl FnOnce(&str)) -> Result<Rollback, Error> {
        let _locked = self.lock(
            &format!("kdarksite rollback {}", self.root.display()),
            waiting,
        )?;
        let r = self.plan_rollback()?;
        let dir = self.release_dir(r.to);
        verify::verify(&dir, Some(&dir.join(publish::KEY_FILE)))?;
        self.point_current(r.to)?;
        Ok(r)
    }
}

/// Whether a process with this PID exists (in this PID namespace).
fn process_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

impl From<PublishError> for Error {
    fn from(e: PublishError) -> Error {
        Error::Publish(e)
    }
}
