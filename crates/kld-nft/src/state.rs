//! kld's state directory for nftables: what was applied, what to go back
//! to, what loads at boot, and a change awaiting confirmation. Every file is
//! written atomically (temporary file in the same directory, fsync, rename,
//! fsync of the directory).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kld/nft";

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// A change applied with a confirmation deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Identifies this change (a later apply has another).
    pub token: String,
    /// Seconds since the epoch after which the change is reverted.
    pub deadline: u64,
    /// The kernel boot it was applied in (a reboot loads the boot ruleset,
    /// which never holds an unconfirmed change).
    pub boot_id: String,
}

/// The journal of an apply in progress (`apply.json`): written before the
/// new ruleset is loaded, marked committed once it is loaded and verified,
/// removed when the state files say so. Found by a later run, it says
/// what to do: an apply that was not committed is undone (the table as it
/// was before it is loaded again), a committed one is finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The apply's token (its watcher's, with a deadline).
    pub token: String,
    /// The kernel boot it ran in.
    pub boot_id: String,
    /// With `--confirm`: when the change reverts unless confirmed.
    pub deadline: Option<u64>,
    /// The new ruleset was loaded and verified.
    pub committed: bool,
}

/// The files of the state directory.
pub(crate) const APPLIED: &str = "applied.nft";
pub(crate) const PREVIOUS: &str = "previous.nft";
pub(crate) const BOOT: &str = "boot.nft";
/// What an apply in progress will make `previous.nft` and `applied.nft`.
pub(crate) const STAGED_PREVIOUS: &str = "previous.nft.new";
pub(crate) const STAGED_APPLIED: &str = "applied.nft.new";
const PENDING: &str = "pending.json";
const JOURNAL: &str = "apply.json";
const LOCK: &str = "lock";
/// The mode of every state file (rules are not secret; the boot unit and
/// administrators read them).
const MODE: u32 = 0o644;

/// The lock on the state directory, held while a change is made.
pub(crate) type Lock = kld_fs::lock::Lock;

impl StateDir {
    /// The state kept in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where `name` is kept.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn err(&self, path: &Path, source: std::io::Error) -> Error {
        Error::State {
            path: path.to_owned(),
            source,
        }
    }

    /// Takes the directory's lock for `purpose` (waits for another knft to
    /// finish; the lock file names the holder).
    pub(crate) fn lock(&self, purpose: &str) -> Result<Lock, Error> {
        fs::create_dir_all(&self.dir).map_err(|e| self.err(&self.dir, e))?;
        Ok(kld_fs::lock::Lock::acquire(
            &self.file(LOCK),
            purpose,
            |_| {},
        )?)
    }

    /// The text of `name`, if it exists.
    pub(crate) fn read(&self, name: &str) -> Result<Option<String>, Error> {
        let path = self.file(name);
        match fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(&path, e)),
        }
    }

    /// Writes `name` atomically and durably ([`kld_fs::replace`]).
    pub(crate) fn write(&self, name: &str, text: &str) -> Result<(), Error> {
        fs::create_dir_all(&self.dir).map_err(|e| self.err(&self.dir, e))?;
        let path = self.file(name);
        kld_fs::replace(&path, text.as_bytes(), MODE).map_err(|e| self.err(&path, e))
    }

    /// Renames `from` to `to` durably (one fault-injection step).
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        let (a, b) = (self.file(from), self.file(to));
        fs::rename(&a, &b)
            .and_then(|()| kld_fs::sync_dir(&self.dir))
            .map_err(|e| self.err(&b, e))?;
        kld_fs::fault::step(|| format!("rename {} {}", a.display(), b.display()));
        Ok(())
    }

    /// Removes `name` if it exists (durably: one fault-injection step).
    pub(crate) fn remove(&self, name: &str) -> Result<(), Error> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => {
                kld_fs::sync_dir(&self.dir).map_err(|e| self.err(&self.dir, e))?;
                kld_fs::fault::step(|| format!("remove {}", path.display()));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(&path, e)),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        let Some(text) = self.read(name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            self.err(
                &self.file(name),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// The change awaiting confirmation, if any (in any boot).
    pub fn pending(&self) -> Result<Option<Pending>, Error> {
        self.json(PENDING)
    }

    /// The journal of an apply that has not finished, if any.
    pub fn journal(&self) -> Result<Option<Journal>, Error> {
        self.json(JOURNAL)
    }

    pub(crate) fn set_journal(&self, j: &Journal) -> Result<(), Error> {
        let text = serde_json::to_string(j).expect("a Journal serialises");
        self.write(JOURNAL, &(text + "\n"))
    }

    pub(crate) fn clear_journal(&self) -> Result<(), Error> {
        self.remove(JOURNAL)
    }

    pub(crate) fn set_pending(&self, p: &Pending) -> Result<(), Error> {
        let text = serde_json::to_string(p).expect("a Pending serialises");
        self.write(PENDING, &(text + "\n"))
    }

    pub(crate) fn clear_pending(&self) -> Result<(), Error> {
        self.remove(PENDING)
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub(crate) fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A token that tells one apply from the next.
pub(crate) fn token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().join("nft"));
        assert_eq!(s.read(APPLIED).unwrap(), None);
        s.write(APPLIED, "one").unwrap();
        s.write(APPLIED, "two").unwrap();
        assert_eq!(s.read(APPLIED).unwrap().as_deref(), Some("two"));
        let names: Vec<_> = fs::read_dir(s.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
        s.remove(APPLIED).unwrap();
        s.remove(APPLIED).unwrap();
        assert_eq!(s.read(APPLIED).unwrap(), None);
        let p = Pending {
            token: token(),
            deadline: now() + 5,
            boot_id: boot_id(),
        };
        let _lock = s.lock("a test").unwrap();
        s.set_pending(&p).unwrap();
        assert_eq!(s.pending().unwrap(), Some(p));
        s.clear_pending().unwrap();
        assert_eq!(s.pending().unwrap(), None);
    }
}
