//! A writer for the `newc` cpio format, the one the Linux kernel unpacks as
//! an initramfs. Archives are built in memory from explicit entries, so the
//! result depends only on what was added (no staging directory, no host
//! timestamps or owners).

use std::collections::BTreeSet;

const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// An archive being built. Parent directories are added automatically, and a
/// path added twice keeps its first entry.
#[derive(Debug, Default)]
pub struct Archive {
    bytes: Vec<u8>,
    paths: BTreeSet<String>,
    next_ino: u32,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Archive::default()
    }

    /// Whether `path` (without a leading `/`) is already in the archive.
    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(path.trim_start_matches('/'))
    }

    /// Every path in the archive, in order, without a leading `/`.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.contains(path) {
            return;
        }
        self.parents(path);
        self.entry(path, S_IFDIR | 0o755, b"");
    }

    /// Adds a regular file with the given permission bits (and its parents).
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let path = path.trim_start_matches('/');
        if self.contains(path) {
            return;
        }
        self.parents(path);
        self.entry(path, S_IFREG | (mode & 0o7777), data);
    }

    /// Adds a symbolic link at `path` pointing to `target` (and its parents).
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/');
        if self.contains(path) {
            return;
        }
        self.parents(path);
        self.entry(path, S_IFLNK | 0o777, target.as_bytes());
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(TRAILER, 0, 0, 0);
        self.bytes
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        self.header(path, mode, nlink, data.len());
        self.bytes.extend_from_slice(data);
        self.pad();
        self.paths.insert(path.to_owned());
    }

    fn header(&mut self, name: &str, mode: u32, nlink: u32, size: usize) {
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(size).expect("initramfs members are far below 4 GiB"),
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            u32::try_from(name.len() + 1).expect("short names"),
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kld_exec::Cmd;
    use proptest::prelude::*;

    /// GNU cpio is the oracle: what it extracts is what was added.
    fn extract(archive: Vec<u8>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        Cmd::new("cpio")
            .args(["-i", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin_bytes(archive)
            .run()
            .unwrap();
        dir
    }

    #[test]
    fn files_links_and_parents_come_back() {
        let mut a = Archive::new();
        a.file("/usr/sbin/tool", 0o755, b"#!/bin/sh\n");
        a.symlink("/sbin/tool", "../usr/sbin/tool");
        a.file("etc/empty", 0o644, b"");
        let dir = extract(a.finish());
        let tool = dir.path().join("usr/sbin/tool");
        assert_eq!(std::fs::read(&tool).unwrap(), b"#!/bin/sh\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&tool).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("sbin/tool"))
                .unwrap()
                .to_str(),
            Some("../usr/sbin/tool")
        );
        assert!(dir.path().join("etc/empty").exists());
    }

    #[test]
    fn first_entry_for_a_path_wins() {
        let mut a = Archive::new();
        a.file("x", 0o644, b"first");
        a.file("/x", 0o644, b"second");
        let dir = extract(a.finish());
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"first");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_files_round_trip(files in proptest::collection::btree_map("[a-z]{1,8}(/[a-z]{1,8}){0,2}", proptest::collection::vec(any::<u8>(), 0..300), 1..6)) {
            // A path cannot be both a file and a directory.
            let files: Vec<_> = files.iter().filter(|(p, _)| !files.keys().any(|q| q.starts_with(&format!("{p}/")))).collect();
            let mut a = Archive::new();
            for (path, data) in &files {
                a.file(path, 0o600, data);
            }
            let dir = extract(a.finish());
            for (path, data) in files {
                prop_assert_eq!(&std::fs::read(dir.path().join(path)).unwrap(), data);
            }
        }
    }
}
