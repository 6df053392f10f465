//! Reading a system tree without ever leaving it: a path inside the root is
//! only used when none of its directories is a symbolic link (an image's
//! `/var/log -> /var/log` link must not reach the host's files).

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

/// A system root directory.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    root: PathBuf,
}

/// A directory entry: its host path and metadata (of the entry itself, not
/// of what a link points to).
#[derive(Debug)]
pub(crate) struct Entry {
    pub path: PathBuf,
    pub meta: Metadata,
}

impl Entry {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn is_file(&self) -> bool {
        self.meta.file_type().is_file()
    }

    pub fn is_dir(&self) -> bool {
        self.meta.file_type().is_dir()
    }
}

impl Tree {
    pub fn new(root: &Path) -> Tree {
        Tree {
            root: root.to_path_buf(),
        }
    }

    /// The host path of `inside` (`/etc/machine-id`), if every directory on
    /// the way is a real directory. The last component may be anything.
    pub fn path(&self, inside: &str) -> Option<PathBuf> {
        let mut p = self.root.clone();
        let parts: Vec<Component<'_>> = Path::new(inside)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        for (i, c) in parts.iter().enumerate() {
            p.push(c);
            if i + 1 < parts.len() {
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.file_type().is_dir() => {}
                    _ => return None,
                }
            }
        }
        Some(p)
    }

    /// The entry at `inside`, if it exists (links not followed).
    pub fn entry(&self, inside: &str) -> Option<Entry> {
        let path = self.path(inside)?;
        let meta = std::fs::symlink_metadata(&path).ok()?;
        Some(Entry { path, meta })
    }

    /// The entries of the directory at `inside` (empty when it is not a
    /// real directory), sorted by name.
    pub fn list(&self, inside: &str) -> Vec<Entry> {
        match self.entry(inside) {
            Some(e) if e.is_dir() => list_dir(&e.path),
            _ => Vec::new(),
        }
    }

    /// Every entry below the directory at `inside`, depth first, without
    /// following links (mounted file systems below it are included: a ZFS
    /// system's `/var/log` is a dataset of its own).
    pub fn walk(&self, inside: &str) -> Vec<Entry> {
        let mut out = Vec::new();
        if let Some(e) = self.entry(inside).filter(Entry::is_dir) {
            walk(&e.path, &mut out);
        }
        out
    }

    /// Home directories: `/root` and every real directory in `/home`, as
    /// paths inside the tree.
    pub fn homes(&self) -> Vec<String> {
        let mut homes = Vec::new();
        if self.entry("/root").is_some_and(|e| e.is_dir()) {
            homes.push("/root".to_owned());
        }
        for e in self.list("/home") {
            if e.is_dir() {
                homes.push(format!("/home/{}", e.name()));
            }
        }
        homes
    }
}

pub(crate) fn list_dir(dir: &Path) -> Vec<Entry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<Entry> = read
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).ok()?;
            Some(Entry { path, meta })
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

fn walk(dir: &Path, out: &mut Vec<Entry>) {
    for e in list_dir(dir) {
        let descend = e.is_dir();
        let path = e.path.clone();
        out.push(e);
        if descend {
            walk(&path, out);
        }
    }
}
