//! Exclusive locks that name their holder.
//!
//! A lock is an advisory `flock` on a file; the kernel drops it when its
//! holder exits, however it exits, so a killed run never leaves a stale
//! lock. The holder writes its PID and purpose into the file, which a
//! second run quotes when it is refused: `held by pid 812 (kbe create
//! rpool/ROOT/b)`.
//!
//! System-wide locks live in [`runtime_dir`](crate::secret::runtime_dir)
//! (`/run/kld`, root-only), so that no other user can take them to block
//! kld. A lock that guards one directory (a darksite, a state directory)
//! lives inside that directory, whose own permissions guard it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error("{path} is held by {holder}")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as the holder wrote it (`pid 812 (kbe create ...)`).
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive lock, held until this value is dropped (or the process
/// ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock at `path` for `purpose` (a few words: the command and
    /// what it works on), or fails at once with [`LockError::Busy`] naming
    /// the holder.
    pub fn try_acquire(path: &Path, purpose: &str) -> Result<Lock, LockError> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Lock::held(file, path, purpose),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy {
                path: path.to_owned(),
                holder: holder(&file),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Takes the lock at `path` for `purpose`, waiting for the holder if
    /// there is one; `waiting` is called once, with the holder, before the
    /// wait begins (to tell a person why nothing happens).
    pub fn acquire(
        path: &Path,
        purpose: &str,
        waiting: impl FnOnce(&str),
    ) -> Result<Lock, LockError> {
        match Lock::try_acquire(path, purpose) {
            Err(LockError::Busy { holder, .. }) => {
                waiting(&holder);
                let file = open(path)?;
                file.lock().map_err(|source| LockError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                Lock::held(file, path, purpose)
            }
            other => other,
        }
    }

    /// Takes the system-wide lock `NAME.lock` in
    /// [`runtime_dir`](crate::secret::runtime_dir), failing at once if it
    /// is held.
    pub fn try_system(name: &str, purpose: &str) -> Result<Lock, LockError> {
        let dir = crate::secret::runtime_dir().map_err(|source| LockError::Io {
            path: PathBuf::from(name),
            source,
        })?;
        Lock::try_acquire(&dir.join(format!("{name}.lock")), purpose)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn held(mut file: File, path: &Path, purpose: &str) -> Result<Lock, LockError> {
        let line = format!(
            "pid {} ({})\n",
            std::process::id(),
            purpose.replace('\n', " ")
        );
        let io = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)?;
        Ok(Lock {
            file,
            path: path.to_owned(),
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // The next holder writes its own line; an empty file says "free".
        let _ = self.file.set_len(0);
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_owned(),
            source,
        })
}

fn holder(file: &File) -> String {
    let mut text = String::new();
    let _ = file.take(512).read_to_string(&mut text);
    let line = text.lines().next().unwrap_or("").trim();
    let printable: String = line.chars().filter(|c| !c.is_control()).collect();
    if printable.is_empty() {
        "another process".to_owned()
    } else {
        printable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::try_acquire(&path, "kbe create rpool/ROOT/b").unwrap();
        let err = Lock::try_acquire(&path, "kbe destroy").unwrap_err();
        let want = format!("pid {} (kbe create rpool/ROOT/b)", std::process::id());
        match &err {
            LockError::Busy { holder, .. } => assert_eq!(holder, &want),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().ends_with(&want), "{err}");
        drop(held);
        Lock::try_acquire(&path, "kbe destroy").unwrap();
    }

    #[test]
    fn a_waiter_gets_the_lock_once_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::try_acquire(&path, "first").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let lock = Lock::acquire(&p, "second", |h| tx.send(h.to_owned()).unwrap()).unwrap();
            std::fs::read_to_string(lock.path()).unwrap()
        });
        let holder = rx.recv().unwrap();
        assert!(holder.ends_with("(first)"), "{holder}");
        drop(held);
        assert!(waiter.join().unwrap().ends_with("(second)\n"));
    }

    #[test]
    fn a_symlinked_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, b"data").unwrap();
        let path = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(
            Lock::try_acquire(&path, "x"),
            Err(LockError::Io { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
    }
}
