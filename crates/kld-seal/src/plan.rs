//! A seal as a list of exact file operations: planned by looking at the
//! tree, printed by `--dry-run`, applied in order.

use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ops::Op;

/// One change to one file of the tree. Paths are absolute on the host (the
/// root joined with the path inside it); none passes through a symbolic
/// link inside the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Remove a file or a symbolic link (never what it points to).
    Remove(PathBuf),
    /// Remove a directory and everything in it.
    RemoveTree(PathBuf),
    /// Empty a regular file, keeping its owner and mode.
    Truncate(PathBuf),
    /// Replace (or create) a file with this text and mode, atomically.
    Write {
        /// The file.
        path: PathBuf,
        /// Its new contents.
        text: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Replace (or create) a symbolic link.
    Symlink {
        /// The link.
        path: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
}

/// An [`Action`] and the operation it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The operation.
    pub op: Op,
    /// The change.
    pub action: Action,
}

/// Everything a seal will do to one tree, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The root the paths are in.
    pub root: PathBuf,
    /// The operations that were planned (some may have nothing to do).
    pub ops: Vec<Op>,
    /// The changes.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Applies every step in order. A step whose file has gone already is
    /// not an error; anything else stops the seal and says which step.
    ///
    /// Refuses ([`Error::RunningSystem`]) a root that is the running
    /// system's own root, however it is named (`/`, `../` from `/tmp`, a
    /// symbolic link to `/`, a bind mount of `/`), before changing
    /// anything. Each step is one fault-injection step
    /// ([`kld_fs::fault`]); a seal stopped part-way is finished by running
    /// it again (every step is planned from what the tree holds).
    pub fn apply(&self) -> Result<()> {
        ensure_not_running_root(&self.root)?;
        for step in &self.steps {
            apply(&step.action)?;
        }
        Ok(())
    }

    /// How many steps belong to `op`.
    pub fn count(&self, op: Op) -> usize {
        self.steps.iter().filter(|s| s.op == op).count()
    }

    /// The path as seen inside the tree (`/etc/machine-id`).
    pub fn inside(&self, path: &Path) -> PathBuf {
        Path::new("/").join(path.strip_prefix(&self.root).unwrap_or(path))
    }
}

impl fmt::Display for Plan {
    /// One line per step: `OP\tVERB\tPATH[\tDETAIL]`, paths inside the tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            let (verb, path, detail) = match &s.action {
                Action::Remove(p) => ("remove", p, String::new()),
                Action::RemoveTree(p) => ("remove-tree", p, String::new()),
                Action::Truncate(p) => ("truncate", p, String::new()),
                Action::Write { path, text, mode } => {
                    ("write", path, format!("\t{mode:04o} {} bytes", text.len()))
                }
                Action::Symlink { path, target } => {
                    ("symlink", path, format!("\t-> {}", target.display()))
                }
            };
            writeln!(
                f,
                "{}\t{verb}\t{}{detail}",
                s.op,
                self.inside(path).display()
            )?;
        }
        Ok(())
    }
}

/// Refuses `root` if it is the root of the running system: the same file
/// system object (device and inode, symbolic links followed) as `/` or as
/// init's root (`/proc/1/root`, for a process in a chroot). A seal deletes
/// host keys, private keys and temporary files: done to the running
/// system it breaks it and its secrets are gone. Seal a system offline
/// instead: its disk mounted elsewhere, or the disk itself.
pub fn ensure_not_running_root(root: &Path) -> Result<()> {
    let target = std::fs::canonicalize(root)
        .and_then(|p| std::fs::metadata(&p))
        .map_err(Error::io("resolving", root))?;
    let same = |other: &str| {
        std::fs::metadata(other).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
    };
    if same("/") || same("/proc/1/root") {
        return Err(Error::RunningSystem(root.to_path_buf()));
    }
    Ok(())
}

fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn apply(action: &Action) -> Result<()> {
    let verb = match action {
        Action::Remove(_) => "remove",
        Action::RemoveTree(_) => "remove-tree",
        Action::Truncate(_) => "truncate",
        // kld_fs::replace reports its own step.
        Action::Write { .. } => return change(action),
        Action::Symlink { .. } => "symlink",
    };
    change(action)?;
    kld_fs::fault::step(|| format!("seal {verb} {}", action.path().display()));
    Ok(())
}

impl Action {
    /// The file the action changes.
    pub fn path(&self) -> &Path {
        match self {
            Action::Remove(p) | Action::RemoveTree(p) | Action::Truncate(p) => p,
            Action::Write { path, .. } | Action::Symlink { path, .. } => path,
        }
    }
}

fn change(action: &Action) -> Result<()> {
    match action {
        Action::Remove(p) => match std::fs::remove_file(p) {
            Err(e) if !gone(&e) => Err(Error::io("removing", p)(e)),
            _ => Ok(()),
        },
        Action::RemoveTree(p) => match std::fs::remove_dir_all(p) {
            Err(e) if !gone(&e) => Err(Error::io("removing", p)(e)),
            _ => Ok(()),
        },
        Action::Truncate(p) => {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(p);
            match opened {
                Ok(f) => f.set_len(0).map_err(Error::io("truncating", p)),
                Err(e) if gone(&e) => Ok(()),
                Err(e) => Err(Error::io("truncating", p)(e)),
            }
        }
        Action::Write { path, text, mode } => write_atomic(path, text.as_bytes(), *mode),
        Action::Symlink { path, target } => {
            let tmp = temp_name(path);
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(target, &tmp).map_err(Error::io("linking", &tmp))?;
            std::fs::rename(&tmp, path).map_err(Error::io("linking", path))
        }
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(
        ".{}.kld-seal-{}",
        name.unwrap_or_default(),
        std::process::id()
    ))
}

/// Replaces `path` with `bytes` atomically and durably (through
/// [`kld_fs::replace`]: created with `mode` from the first byte, synced,
/// renamed, the directory synced), creating its directory if needed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    }
    kld_fs::replace(path, bytes, mode).map_err(Error::io("writing", path))
}
