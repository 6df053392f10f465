//! kdir's dataset creation: all or nothing, checked after the fact, and the
//! `--migrate` of a non-empty directory into a new dataset (copy, verify,
//! swap), which an interrupted run picks up again.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kld_exec::Cmd;
use kld_zfs::name::DatasetName;
use kld_zfs::props::Property;
use kld_zfs::Zfs;
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

/// Finishes the clean-up of an interrupted migration of `path`: the
/// original directory goes back in place if it had been moved aside, and
/// the partial copy's dataset is destroyed. Returns what it did.
pub fn recover(zfs: &Zfs, path: &Path) -> Result<Vec<String>, Failure> {
    let mut done = Vec::new();
    let values = zfs.get(&[], &[MARKER], true)?;
    for v in values.iter().filter(|v| v.value == path.to_string_lossy()) {
        let old = old_path(path);
        if !path.exists() && old.exists() {
            std::fs::rename(&old, path)
                .map_err(|e| Failure::new(format!("cannot move {} back: {e}", old.display())))?;
            done.push(format!(
                "moved {} back to {}",
                old.display(),
                path.display()
            ));
        }
        let dataset = DatasetName::new(v.name.as_str())?;
        destroy_partial_copy(zfs, &dataset)?;
        let _ = std::fs::remove_dir(temp_path(path));
        done.push(format!("destroyed the partial copy {dataset}"));
    }
    Ok(done)
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
                    "{dataset} holds the partial copy of an interrupted migration; if it is busy, another \
                     kdir --migrate may still be running"
                )))
            }
        }
    }
}

/// Moves the contents of the non-empty directory `path` into the last of
/// `creates` (the others are intermediate datasets): create it mounted
/// aside, copy, verify the copy file by file, move the original aside,
/// mount the dataset at `path`, and only then remove the original.
pub fn migrate(zfs: &Zfs, creates: &[Create], path: &Path, dry_run: bool) -> Result<(), Failure> {
    let (leaf, parents) = creates.split_last().expect("at least the leaf");
    let temp = temp_path(path);
    let old = old_path(path);
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
        println!("zfs inherit {MARKER} {}", leaf.name);
        println!("rm -r {}", old.display());
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
    compare_trees(path, &temp)
        .map_err(|e| Failure::new(format!("the copy differs: {e}")).hint(KEPT))?;
    std::fs::rename(path, &old)
        .map_err(|e| Failure::new(format!("cannot move {} aside: {e}", path.display())))?;
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
    if let Err(e) = remount
        .run()
        .map_err(Failure::from)
        .and_then(|()| verify_mounted(zfs, &leaf.name, path))
    {
        let _ = std::fs::rename(&old, path);
        return Err(e.hint("the original directory was moved back"));
    }
    zfs.inherit(&leaf.name, MARKER, false)?.run()?;
    let _ = std::fs::remove_dir(&temp);
    std::fs::remove_dir_all(&old).map_err(|e| {
        Failure::new(format!(
            "migrated, but removing the original {} failed: {e}",
            old.display()
        ))
    })?;
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

/// Compares two trees entry by entry: the same names, types, permissions,
/// owners, file contents and link targets.
pub fn compare_trees(a: &Path, b: &Path) -> Result<(), String> {
    let left = walk(a)?;
    let right = walk(b)?;
    for (rel, entry) in &left {
        match right.get(rel) {
            None => return Err(format!("{} is missing from the copy", rel.display())),
            Some(other) if other != entry => return Err(format!("{} differs", rel.display())),
            Some(_) => {}
        }
    }
    if let Some(extra) = right.keys().find(|k| !left.contains_key(*k)) {
        return Err(format!("{} is only in the copy", extra.display()));
    }
    Ok(())
}

fn walk(root: &Path) -> Result<BTreeMap<PathBuf, Entry>, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let full = root.join(&rel);
        let meta =
            std::fs::symlink_metadata(&full).map_err(|e| format!("{}: {e}", full.display()))?;
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
                sha256: hash(&full)?,
            }
        } else {
            Entry::Other {
                mode,
                rdev: meta.rdev(),
            }
        };
        // The roots themselves may differ in mode (a dataset's root is new).
        if !rel.as_os_str().is_empty() {
            out.insert(rel, entry);
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
        compare_trees(a.path(), b.path()).unwrap();

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
