//! Secret files and private working directories.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fault;

/// Creates `path`, which must not exist, readable and writable by its
/// owner only (`0600`) from the first byte; a symlink there is refused.
pub fn create(path: &Path) -> std::io::Result<File> {
    let f = crate::atomic::create_new(path, 0o600)?;
    fault::step(|| format!("create {}", path.display()));
    Ok(f)
}

/// Replaces `path` atomically with `bytes`, `0600` from the first byte.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::replace(path, bytes, 0o600)
}

/// The directory for kld's locks and private working files: `/run/kld` for
/// root, `$XDG_RUNTIME_DIR/kld` (or the temporary directory's `kld-UID`)
/// for anyone else. It is created `0700`; one that is a symlink, belongs to
/// someone else or that others may write is refused, as something planted.
pub fn runtime_dir() -> std::io::Result<PathBuf> {
    let uid = rustix::process::geteuid();
    let dir = if uid.is_root() {
        PathBuf::from("/run/kld")
    } else if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(run).join("kld")
    } else {
        std::env::temp_dir().join(format!("kld-{}", uid.as_raw()))
    };
    private_dir(&dir)?;
    Ok(dir)
}

/// Makes sure `dir` exists as a directory that only this user can write
/// (created `0700` if missing); refuses a symlink, another owner, or write
/// access for group or others.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::geteuid().as_raw();
    let why = if !meta.is_dir() {
        Some("it is not a directory (a symlink?)".to_owned())
    } else if meta.uid() != me {
        Some(format!("it belongs to uid {}, not {me}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "others may write to it (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("refusing {} as a private directory: {why}", dir.display()),
        )),
        None => Ok(()),
    }
}

/// A private working directory (`0700`), removed with all it holds when
/// dropped. Named `.kld-TAG-PID` in its parent, so that [`sweep`] in a
/// later run can remove what a killed process left.
///
/// [`sweep`]: PrivateDir::sweep
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `PARENT/.kld-TAG-PID` (`PARENT` must already be private, see
    /// [`private_dir`]); one of this PID's that a reused PID left is
    /// replaced.
    pub fn create(parent: &Path, tag: &str) -> std::io::Result<PrivateDir> {
        let path = parent.join(format!(".kld-{tag}-{}", std::process::id()));
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        fault::step(|| format!("mkdir {}", path.display()));
        Ok(PrivateDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes every `PARENT/.kld-TAG-PID` whose process no longer runs,
    /// calling `before` on each first (to stop what may still use it, such
    /// as an agent); returns the directories removed.
    pub fn sweep(parent: &Path, tag: &str, mut before: impl FnMut(&Path)) -> Vec<PathBuf> {
        let prefix = format!(".kld-{tag}-");
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(parent) else {
            return removed;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if process_alive(pid) {
                continue;
            }
            let path = entry.path();
            before(&path);
            if std::fs::remove_dir_all(&path).is_ok() {
                removed.push(path);
            }
        }
        removed
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Whether a process with this PID exists (in this PID namespace).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // It exists but is not ours to signal.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_0600_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(create(&path).is_err(), "an existing file is not reused");
    }

    #[test]
    fn private_dirs_refuse_what_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir(&open).unwrap_err();
        assert!(err.to_string().contains("others may write"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(private_dir(&link).is_err());
        let fresh = dir.path().join("fresh");
        private_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn work_dirs_go_on_drop_and_dead_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let work = PrivateDir::create(dir.path(), "gpg").unwrap();
        std::fs::write(work.path().join("secring"), b"k").unwrap();
        let path = work.path().to_owned();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        let stale = dir.path().join(".kld-gpg-2147483647");
        std::fs::create_dir(&stale).unwrap();
        let mut seen = Vec::new();
        let removed = PrivateDir::sweep(dir.path(), "gpg", |p| seen.push(p.to_owned()));
        assert_eq!(removed, vec![stale.clone()]);
        assert_eq!(seen, vec![stale]);
        assert!(path.exists(), "a live process's directory stays");
        drop(work);
        assert!(!path.exists());
    }
}
