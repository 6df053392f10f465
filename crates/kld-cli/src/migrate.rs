//! kdir's dataset creation: all or nothing, checked after the fact, and the
//! `--migrate` of a non-empty directory into a new dataset (copy, verify,
//! swap), which an interrupted run picks up again.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kld_exec::Cmd;
use kld_fs::lock::{Lock, LockError};
use kld_zfs::mounts::{mounts_within, read_mounts};
use kld_zfs::name::DatasetName;
use kld_zfs::props::Property;
use kld_zfs::Zfs;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use sha2::{Digest, Sha256};

use crate::failure::Failure;

/// The user property that marks a dataset as the target of a migration in
/// progress; its value is the directory being migrated.
pub const MARKER: &str = "kld:kdir-migrate";

/// One dataset to create: its name and its own properties (the mountpoint
/// among them when it does not follow the name).
#[derive(Debug, Clone)]
pub struct Create {
    /// The dataset.
    pub name: DatasetName,
    /// Properties set at creation.
    pub props: Vec<Property>,
    /// The altroot of its pool, if the pool was imported under one.
    pub altroot: Option<PathBuf>,
}

/// The value to give `mountpoint` for a dataset to mount at `path` in a pool
/// with this altroot (ZFS puts the altroot in front of the value).
pub fn mountpoint_value(altroot: Option<&Path>, path: &Path) -> String {
    let relative = altroot
        .and_then(|a| path.strip_prefix(a).ok())
        .map(|rest| Path::new("/").join(rest));
    relative
        .unwrap_or_else(|| path.to_owned())
        .to_string_lossy()
        .into_owned()
}

/// Creates the datasets shallowest first; if one fails, destroys the ones
/// created before it and reports the failure.
pub fn create_all_or_nothing(zfs: &Zfs, creates: &[Create]) -> Result<(), Failure> {
    let mut made: Vec<&DatasetName> = Vec::new();
    for c in creates {
        if let Err(e) = zfs.create(&c.name, &c.props, false).run() {
            let mut undo = Vec::new();
            for done in made.iter().rev() {
                if let Err(u) = zfs.destroy(done, false).run() {
                    undo.push(format!("{done}: {u}"));
                }
            }
            let mut f = Failure::new(format!("creating {} failed: {e}", c.name));
            if !made.is_empty() {
                let names: Vec<String> = made.iter().map(|d| d.to_string()).collect();
                f = f.hint(if undo.is_empty() {
                    format!(
                        "nothing was left behind: {} destroyed again",
                        names.join(", ")
                    )
                } else {
                    format!("could not destroy again: {}", undo.join("; "))
                });
            }
            return Err(f);
        }
        made.push(&c.name);
    }
    Ok(())
}

/// Checks the new dataset really is mounted at `path`; destroys it if not.
pub fn verify_mounted(zfs: &Zfs, dataset: &DatasetName, path: &Path) -> Result<(), Failure> {
    let mountpoint = zfs.get_one(dataset.as_str(), "mountpoint")?;
    let mounted = zfs.get_one(dataset.as_str(), "mounted")?;
    if Path::new(&mountpoint) == path && mounted == "yes" {
        return Ok(());
    }
    let _ = zfs.destroy(dataset, false).run();
    Err(Failure::new(format!(
        "{dataset} ended up with mountpoint {mountpoint} (mounted: {mounted}), not {}; it was destroyed again",
        path.display()
    )))
}

/// Where the original directory waits while the swap happens.
fn old_path(path: &Path) -> PathBuf {
    sibling(path, ".kdir-old-")
}

/// Where the new dataset is mounted while the copy is made and checked.
fn temp_path(path: &Path) -> PathBuf {
    sibling(path, ".kdir-new-")
}

fn sibling(path: &Path, prefix: &str) -> PathBuf {
    let name = path.file_name().expect("not /").to_string_lossy();
    path.with_file_name(format!("{prefix}{name}"))
}

/// Takes the lock of kdir runs on `path` (root's, in /run/kld), so that
/// two runs on one directory never interleave; a second is refused, told
/// who holds it.
pub fn lock(path: &Path, purpose: &str) -> Result<Lock, Failure> {
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Lock::try_system(&format!("kdir-{hex}"), purpose).map_err(|e| match e {
        LockError::Busy { holder, .. } => Failure::new(format!(
            "another kdir of {} is running: held by {holder}",
            path.display()
        ))
        .hint("wait for it to finish; nothing was changed"),
        e => Failure::new(e),
    })
}

/// What [`recover`] found and did.
#[derive(Debug)]
pub enum Recovery {
    /// No interrupted migration of the path.
    Nothing,
    /// An interrupted migration had not swapped yet: it was undone (the
    /// original directory is in place, the partial copy destroyed).
    Undone(Vec<String>),
    /// An interrupted migration had swapped (the dataset, verified, is
    /// mounted at the path): it was finished.
    Finished(DatasetName, Vec<String>),
}

/// Picks up an interrupted migration of `path`, by the state ZFS and the
/// file system hold (the marker on the dataset, and where it is mounted):
///
/// - the dataset is mounted aside (`.kdir-new-NAME`): the swap had not
///   happened; the original goes back in place if it had been moved aside,
///   and the dataset, which holds only a copy, is destroyed;
/// - the dataset's mountpoint is the path: the copy had been verified and
///   nothing had changed in the original before the swap; the swap is
///   finished (mounted, the original `.kdir-old-NAME` removed without
///   crossing a mount point, the marker cleared).
///
/// Anything else is refused, saying where the data is.
pub fn recover(zfs: &Zfs, path: &Path) -> Result<Recovery, Failure> {
    let values = zfs.get(&[], &[MARKER], true)?;
    let Some(v) = values.iter().find(|v| v.value == path.to_string_lossy()) else {
        return Ok(Recovery::Nothing);
    };
    let dataset = DatasetName::new(v.name.as_str())?;
    let old = old_path(path);
    let temp = temp_path(path);
    let mountpoint = PathBuf::from(zfs.get_one(dataset.as_str(), "mountpoint")?);
    let mut done = Vec::new();
    if mountpoint == path {
        if zfs.get_one(dataset.as_str(), "mounted")? != "yes" {
            zfs.mount(&dataset).run().map_err(|e| {
                Failure::from(e).hint(format!(
                    "{dataset} holds the verified copy of {}, the original is in {}; mount it and run the same kdir --migrate again",
                    path.display(),
                    old.display()
                ))
            })?;
            done.push(format!("mounted {dataset} at {}", path.display()));
        }
        if exists(&old) {
            remove_original(&old)?;
            done.push(format!(
                "removed the original {} (its copy had been verified)",
                old.display()
            ));
        }
        let _ = std::fs::remove_dir(&temp);
        zfs.inherit(&dataset, MARKER, false)?.run()?;
        return Ok(Recovery::Finished(dataset, done));
    }
    if mountpoint != temp {
        return Err(Failure::new(format!(
            "{dataset} is marked as the migration of {} but is mounted at {}",
            path.display(),
            mountpoint.display()
        ))
        .hint(format!(
            "check where the data is, then `zfs inherit {MARKER} {dataset}` and run again"
        )));
    }
    match (exists(path), exists(&old)) {
        (false, true) => {
            std::fs::rename(&old, path)
                .map_err(|e| Failure::new(format!("cannot move {} back: {e}", old.display())))?;
            step("rename", &old, path);
            done.push(format!(
                "moved {} back to {}",
                old.display(),
                path.display()
            ));
        }
        (true, true) => {
            return Err(Failure::new(format!(
                "an interrupted migration left the original in {} and something new is at {}",
                old.display(),
                path.display()
            ))
            .hint(format!(
                "move what you need from {} into {}, remove {}, and run again",
                path.display(),
                old.display(),
                path.display()
            )))
        }
        (_, false) => {}
    }
    destroy_partial_copy(zfs, &dataset)?;
    let _ = std::fs::remove_dir(&temp);
    done.push(format!("destroyed the partial copy {dataset}"));
    Ok(Recovery::Undone(done))
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Reports a change made without kld-exec or kld-fs (a rename, a
/// removal) to the fault-injection hook.
fn step(what: &str, from: &Path, to: &Path) {
    kld_fs::fault::step(|| format!("{what} {} {}", from.display(), to.display()));
}

/// Destroys the dataset an interrupted migration copied into. A copy that
/// was killed can hold the mount for a moment after it died, so a busy
/// dataset is retried for a few seconds before giving up.
fn destroy_partial_copy(zfs: &Zfs, dataset: &DatasetName) -> Result<(), Failure> {
    let mut tries = 0;
    loop {
        match zfs.destroy(dataset, false).run() {
            Ok(()) => return Ok(()),
            Err(kld_zfs::Error::Command(e)) if e.stderr().contains("busy") && tries < 25 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => {
                return Err(Failure::from(e).hint(format!(
                    "{dataset} holds the partial copy of an interrupted migration; the original is untouched"
                )))
            }
        }
    }
}

/// Refuses to migrate a directory with a file system mounted inside it (or
/// on it): the copy would cross into it, and the removal of the original
/// would empty it.
pub fn check_no_mounts(path: &Path) -> Result<(), Failure> {
    let mounts = read_mounts()?;
    let inside = mounts_within(&mounts, path);
    if let Some(m) = inside.first() {
        return Err(Failure::new(format!(
            "{} is mounted at {}, inside {}",
            m.source,
            m.target.display(),
            path.display()
        ))
        .hint("kdir --migrate never crosses a mount point: unmount it (or migrate it on its own) and run again; nothing was changed"));
    }
    Ok(())
}

/// Refuses while a process holds something under `dir`: an open file, its
/// working or root directory, a mapped file. Its writes after the copy
/// would go to the original, which the migration removes.
pub fn check_not_in_use(dir: &Path) -> Result<(), Failure> {
    let users = users_of(dir);
    if users.is_empty() {
        return Ok(());
    }
    let mut shown: Vec<String> = users.iter().take(6).cloned().collect();
    if users.len() > shown.len() {
        shown.push(format!("and {} more", users.len() - shown.len()));
    }
    Err(
        Failure::new(format!("{} is in use: {}", dir.display(), shown.join("; ")))
            .hint("stop it (or them) and run again: what it writes after the copy would be lost; nothing was changed"),
    )
}

/// Every process (but this one) that holds something under `dir`, as
/// `held open by pid N (COMM): WHAT`.
pub fn users_of(dir: &Path) -> Vec<String> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = p.path();
        let comm = std::fs::read_to_string(base.join("comm"))
            .map(|c| {
                c.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
            })
            .unwrap_or_default();
        let mut held: Vec<String> = Vec::new();
        for (link, what) in [
            ("cwd", "working directory"),
            ("root", "root directory"),
            ("exe", "program"),
        ] {
            if let Ok(target) = std::fs::read_link(base.join(link)) {
                if target.starts_with(dir) {
                    held.push(format!("{what} {}", target.display()));
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if target.starts_with(dir) {
                        held.push(target.display().to_string());
                    }
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(base.join("maps")) {
            for line in maps.lines() {
                if let Some(file) = line.split_whitespace().nth(5) {
                    if Path::new(file).starts_with(dir) {
                        held.push(format!("mapped {file}"));
                    }
                }
            }
        }
        held.sort();
        held.dedup();
        if !held.is_empty() {
            out.push(format!(
                "held open by pid {pid} ({comm}): {}",
                held.join(", ")
            ));
        }
    }
    out
}

/// Removes the original directory moved aside, never crossing into
/// another file system: the mount table is checked first, and the walk
/// (by directory descriptor, not by path) refuses a directory on another
/// device.
fn remove_original(old: &Path) -> Result<(), Failure> {
    let fail = |e: String| {
        Failure::new(format!(
            "migrated, but removing the original {} failed: {e}",
            old.display()
        ))
        .hint(format!(
            "the data is in the new dataset; remove {} yourself once checked",
            old.display()
        ))
    };
    check_no_mounts(old).map_err(|_| fail("a file system is mounted inside it".into()))?;
    remove_tree(old).map_err(|e| fail(e.to_string()))?;
    kld_fs::fault::step(|| format!("remove {}", old.display()));
    Ok(())
}

/// Removes the directory `path` and everything in it, on its own device
/// only: a directory on another device (a mount point) stops the removal
/// with an error, and symbolic links are removed, never followed.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty())?;
    let dev = rustix::fs::fstat(&fd)?.st_dev;
    remove_contents(&fd, dev, path)?;
    drop(fd);
    std::fs::remove_dir(path)
}

fn remove_contents(dir: &OwnedFd, dev: u64, shown: &Path) -> std::io::Result<()> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        names.push(name.to_owned());
    }
    for name in names {
        let st = rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let here = shown.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let sub = rustix::fs::openat(dir, name.as_c_str(), flags, Mode::empty())?;
            if st.st_dev != dev || rustix::fs::fstat(&sub)?.st_dev != dev {
                return Err(std::io::Error::other(format!(
                    "{} is another file system; not crossed",
                    here.display()
                )));
            }
            remove_contents(&sub, dev, &here)?;
            drop(sub);
            rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)?;
        } else {
            rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty())?;
        }
    }
    Ok(())
}

/// Moves the contents of the non-empty directory `path` into the last of
/// `creates` (the others are intermediate datasets).
///
/// The order makes every kill point recoverable by [`recover`] and never
/// leaves the only copy hidden: refuse a directory with anything mounted
/// inside or any process using it; create the dataset mounted aside,
/// marked; copy; verify the copy file by file; check again that nothing
/// uses the directory; move the original aside (from then on no path
/// reaches it); check that nothing in it changed since it was verified
/// (each entry's change time) and that nothing holds it open, else move it
/// back and stop; mount the dataset at the path (the swap: from here the
/// migration is finished, not undone); remove the original without
/// crossing a mount point; clear the marker.
pub fn migrate(zfs: &Zfs, creates: &[Create], path: &Path, dry_run: bool) -> Result<(), Failure> {
    let (leaf, parents) = creates.split_last().expect("at least the leaf");
    let temp = temp_path(path);
    let old = old_path(path);
    check_no_mounts(path)?;
    check_not_in_use(path)?;
    let mut aside = leaf.clone();
    aside.props.retain(|p| p.name() != "mountpoint");
    aside.props.push(Property::new(
        "mountpoint",
        &mountpoint_value(leaf.altroot.as_deref(), &temp),
    )?);
    aside
        .props
        .push(Property::new(MARKER, &path.to_string_lossy())?);
    let inherits = !leaf.props.iter().any(|p| p.name() == "mountpoint");
    if dry_run {
        for c in parents.iter().chain([&aside]) {
            print!("{}", zfs.create(&c.name, &c.props, false));
        }
        println!("cp -a {}/. {}/", path.display(), temp.display());
        println!(
            "verify every file of {} against {}",
            temp.display(),
            path.display()
        );
        println!("mv {} {}", path.display(), old.display());
        println!(
            "check that nothing in {} changed or is open since it was verified",
            old.display()
        );
        println!(
            "zfs {} {}",
            if inherits {
                "inherit mountpoint".to_owned()
            } else {
                format!(
                    "set mountpoint={}",
                    mountpoint_value(leaf.altroot.as_deref(), path)
                )
            },
            leaf.name
        );
        println!("rm -r {} (never crossing a mount point)", old.display());
        println!("zfs inherit {MARKER} {}", leaf.name);
        return Ok(());
    }
    let mut all: Vec<Create> = parents.to_vec();
    all.push(aside);
    create_all_or_nothing(zfs, &all)?;
    Cmd::new("cp")
        .arg("-a")
        .arg(format!("{}/.", path.display()))
        .arg(format!("{}/", temp.display()))
        .run()
        .map_err(|e| Failure::new(format!("copying into {} failed: {e}", leaf.name)).hint(KEPT))?;
    let verified = compare_trees(path, &temp)
        .map_err(|e| Failure::new(format!("the copy differs: {e}")).hint(KEPT))?;
    check_not_in_use(path).map_err(|f| f.context("after the copy"))?;
    std::fs::rename(path, &old)
        .map_err(|e| Failure::new(format!("cannot move {} aside: {e}", path.display())))?;
    step("rename", path, &old);
    let changed = match stamps(&old) {
        Ok(now) => changed_since(&verified, &now),
        Err(e) => Some(e),
    };
    let in_use = users_of(&old);
    if changed.is_some() || !in_use.is_empty() {
        let why = changed.unwrap_or_else(|| format!("in use: {}", in_use.join("; ")));
        std::fs::rename(&old, path).map_err(|e| {
            Failure::new(format!(
                "{} changed during the migration ({why}), and moving it back from {} failed: {e}",
                path.display(),
                old.display()
            ))
        })?;
        step("rename", &old, path);
        let _ = destroy_partial_copy(zfs, &leaf.name);
        return Err(Failure::new(format!(
            "{} changed during the migration: {why}",
            path.display()
        ))
        .hint("stop what writes there and run again; the original is back in place"));
    }
    let remount = if inherits {
        zfs.inherit(&leaf.name, "mountpoint", false)?
    } else {
        zfs.set(
            &leaf.name,
            &[Property::new(
                "mountpoint",
                &mountpoint_value(leaf.altroot.as_deref(), path),
            )?],
        )
    };
    if let Err(e) = remount.run() {
        // The mountpoint did not change: still before the swap.
        if std::fs::rename(&old, path).is_ok() {
            step("rename", &old, path);
        }
        return Err(Failure::from(e).hint(format!(
            "the original directory was moved back; run the same kdir --migrate again (it destroys the copy {} first)",
            leaf.name
        )));
    }
    let mounted = zfs.get_one(leaf.name.as_str(), "mounted")?;
    if mounted != "yes" {
        return Err(Failure::new(format!(
            "{} was not mounted at {} after the swap",
            leaf.name,
            path.display()
        ))
        .hint(format!(
            "its verified copy is in {}, the original in {}: `zfs mount {}` and run the same kdir --migrate again to finish",
            leaf.name,
            old.display(),
            leaf.name
        )));
    }
    remove_original(&old)?;
    let _ = std::fs::remove_dir(&temp);
    zfs.inherit(&leaf.name, MARKER, false)?.run()?;
    for c in creates {
        println!("{}", c.name);
    }
    Ok(())
}

const KEPT: &str =
    "the original directory is untouched; run the same kdir --migrate again to retry";

/// What a tree entry is, for comparison: type, mode, owner and content.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        sha256: Vec<u8>,
    },
    Link(PathBuf),
    Other {
        mode: u32,
        rdev: u64,
    },
}

/// When each entry of a tree last changed (change and modification times,
/// size, inode), by path relative to the tree's root.
pub type Stamps = BTreeMap<PathBuf, [i64; 6]>;

/// Compares two trees entry by entry: the same names, types, permissions,
/// owners, file contents and link targets. Returns the stamps of `a`'s
/// entries, each read before its content was (so a change after the
/// comparison shows in a later [`stamps`]).
pub fn compare_trees(a: &Path, b: &Path) -> Result<Stamps, String> {
    let left = walk(a, true)?;
    let right = walk(b, true)?;
    for (rel, (entry, _)) in &left {
        match right.get(rel) {
            None => return Err(format!("{} is missing from the copy", rel.display())),
            Some((other, _)) if other != entry => return Err(format!("{} differs", rel.display())),
            Some(_) => {}
        }
    }
    if let Some(extra) = right.keys().find(|k| !left.contains_key(*k)) {
        return Err(format!("{} is only in the copy", extra.display()));
    }
    Ok(left.into_iter().map(|(k, (_, s))| (k, s)).collect())
}

/// The stamps of a tree's entries (metadata only, nothing read).
pub fn stamps(root: &Path) -> Result<Stamps, String> {
    Ok(walk(root, false)?
        .into_iter()
        .map(|(k, (_, s))| (k, s))
        .collect())
}

/// The first entry that appeared, disappeared or changed between two
/// stamp sets, if any.
pub fn changed_since(before: &Stamps, now: &Stamps) -> Option<String> {
    for (rel, stamp) in before {
        match now.get(rel) {
            None => return Some(format!("{} was removed", rel.display())),
            Some(s) if s != stamp => return Some(format!("{} was changed", rel.display())),
            Some(_) => {}
        }
    }
    now.keys()
        .find(|k| !before.contains_key(*k))
        .map(|k| format!("{} was created", k.display()))
}

fn walk(root: &Path, contents: bool) -> Result<BTreeMap<PathBuf, (Entry, [i64; 6])>, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let full = root.join(&rel);
        let meta =
            std::fs::symlink_metadata(&full).map_err(|e| format!("{}: {e}", full.display()))?;
        let stamp = [
            meta.ctime(),
            meta.ctime_nsec(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.size() as i64,
            meta.ino() as i64,
        ];
        let (mode, uid, gid) = (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid());
        let entry = if meta.file_type().is_symlink() {
            Entry::Link(std::fs::read_link(&full).map_err(|e| format!("{}: {e}", full.display()))?)
        } else if meta.is_dir() {
            for child in std::fs::read_dir(&full).map_err(|e| format!("{}: {e}", full.display()))? {
                let child = child.map_err(|e| format!("{}: {e}", full.display()))?;
                todo.push(rel.join(child.file_name()));
            }
            Entry::Dir { mode, uid, gid }
        } else if meta.is_file() {
            Entry::File {
                mode,
                uid,
                gid,
                sha256: if contents { hash(&full)? } else { Vec::new() },
            }
        } else {
            Entry::Other {
                mode,
                rdev: meta.rdev(),
            }
        };
        // The roots themselves may differ in mode (a dataset's root is new).
        if !rel.as_os_str().is_empty() {
            out.insert(rel, (entry, stamp));
        }
    }
    Ok(out)
}

fn hash(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_compare_by_content_type_and_mode() {
        let a = tempfile::tempdir().unwrap();
        std::fs::create_dir(a.path().join("d")).unwrap();
        std::fs::write(a.path().join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("d/f", a.path().join("l")).unwrap();
        let b = tempfile::tempdir().unwrap();
        Cmd::new("cp")
            .arg("-a")
            .arg(format!("{}/.", a.path().display()))
            .arg(b.path())
            .run()
            .unwrap();
        let verified = compare_trees(a.path(), b.path()).unwrap();
        assert_eq!(changed_since(&verified, &stamps(a.path()).unwrap()), None);

        std::fs::write(b.path().join("d/f"), "y").unwrap();
        assert!(compare_trees(a.path(), b.path())
            .unwrap_err()
            .contains("d/f differs"));
        std::fs::write(b.path().join("d/f"), "x").unwrap();
        std::fs::set_permissions(b.path().join("d/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(compare_trees(a.path(), b.path()).is_err());
        let original = std::fs::metadata(a.path().join("d/f"))
            .unwrap()
            .permissions();
        std::fs::set_permissions(b.path().join("d/f"), original).unwrap();
        std::fs::remove_file(b.path().join("l")).unwrap();
        assert!(compare_trees(a.path(), b.path())
            .unwrap_err()
            .contains("l is missing"));
    }

    #[test]
    fn a_write_after_the_comparison_shows_in_the_stamps() {
        let a = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("log"), "start\n").unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("log"), "start\n").unwrap();
        let verified = compare_trees(a.path(), b.path()).unwrap();
        // Held open from before, written after: same size is no excuse.
        let mut held = std::fs::OpenOptions::new()
            .write(true)
            .open(a.path().join("log"))
            .unwrap();
        std::io::Write::write_all(&mut held, b"START\n").unwrap();
        let said = changed_since(&verified, &stamps(a.path()).unwrap()).unwrap();
        assert_eq!(said, "log was changed");
        std::fs::write(a.path().join("new"), "").unwrap();
        assert!(changed_since(&verified, &stamps(a.path()).unwrap()).is_some());
    }

    #[test]
    fn remove_tree_removes_links_not_their_targets() {
        let keep = tempfile::tempdir().unwrap();
        std::fs::write(keep.path().join("precious"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("old");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "y").unwrap();
        std::os::unix::fs::symlink(keep.path(), root.join("a/link")).unwrap();
        std::os::unix::fs::symlink(keep.path().join("precious"), root.join("flink")).unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        assert_eq!(std::fs::read(keep.path().join("precious")).unwrap(), b"x");
    }

    #[test]
    fn siblings() {
        assert_eq!(
            old_path(Path::new("/srv/db")),
            Path::new("/srv/.kdir-old-db")
        );
        assert_eq!(
            temp_path(Path::new("/srv/db")),
            Path::new("/srv/.kdir-new-db")
        );
    }
}
