//! Atomic replacement of a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fault;

/// Replaces `path` with `bytes`, atomically and durably; the new file has
/// `mode` from its first byte (the umask does not apply).
///
/// A reader sees the old contents or the new, never a part; after a crash
/// the file holds one of the two. A temporary file left by a process killed
/// part-way (`.NAME.kld-PID-N` beside `path`) is removed by the next
/// replacement of the same file once its process is gone.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace_with(path, mode, |f| f.write_all(bytes))
}

/// Like [`replace`], with the new contents written by `write` into the
/// temporary file (for contents produced piece by piece).
pub fn replace_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with no file name")
        })?
        .to_string_lossy()
        .into_owned();
    sweep_temporaries(dir, &name);
    let tmp = temp_path(dir, &name);
    let result = (|| {
        let mut f = create_new(&tmp, mode)?;
        write(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    fault::step(|| format!("replace {}", path.display()));
    Ok(())
}

/// Makes the directory entries of `dir` durable (after a rename or a new
/// file in it).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `path`, which must not exist, with exactly `mode`.
pub(crate) fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    // The umask may have taken bits away.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(f)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

const MARK: &str = ".kld-";

fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}{MARK}{}-{n}", std::process::id()))
}

/// Removes `.NAME.kld-PID-N` files of processes that no longer run.
fn sweep_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}{MARK}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::secret::process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_with_the_mode_asked_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace(&path, b"one", 0o644).unwrap();
        replace(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace(&path, b"old", 0o644).unwrap();
        let err = replace_with(&path, 0o644, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn leftovers_of_dead_processes_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // PID 0x7fffffff is beyond pid_max: never alive.
        let dead = dir.path().join(".f.kld-2147483647-0");
        let live = dir.path().join(format!(".f.kld-{}-99", std::process::id()));
        let other = dir.path().join(".g.kld-2147483647-0");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        replace(&path, b"new", 0o644).unwrap();
        assert!(!dead.exists());
        assert!(
            live.exists(),
            "a running process's temporary is not touched"
        );
        assert!(other.exists(), "another file's temporary is not touched");
    }

    #[test]
    fn a_symlink_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let tmp = dir.path().join("t");
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        assert!(create_new(&tmp, 0o600).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
