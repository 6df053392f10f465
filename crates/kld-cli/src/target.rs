//! TARGET arguments: a dataset name, or a path inside a mounted dataset.
//! An argument that begins with `/`, `./` or `../` (or is `.` or `..`) is a
//! path; anything else is a dataset name.
//!
//! A path is resolved by what it really is, not by how it is spelled: it
//! must exist, every symbolic link in it is followed, and the dataset is the
//! one whose mount (in the kernel's mount table) holds the real path, on
//! the same device. So `/tank/pglink`, a link to `/tank/pg`, is `tank/pg`,
//! and a typo is an error rather than the enclosing dataset.
//! [`resolve_exact`] serves what destroys (rollback, destroy, prune): a
//! path there must be the dataset's mountpoint itself.

use std::path::Path;

use kld_zfs::mounts::{locate, read_mounts, Located};
use kld_zfs::name::DatasetName;
use kld_zfs::Zfs;

use crate::failure::Failure;

/// Whether an argument is read as a path rather than a dataset name.
pub fn is_path(arg: &str) -> bool {
    arg.starts_with('/')
        || arg.starts_with("./")
        || arg.starts_with("../")
        || arg == "."
        || arg == ".."
}

/// Resolves TARGET to an existing dataset: a dataset name, or an existing
/// path anywhere inside a mounted dataset.
pub fn resolve(zfs: &Zfs, arg: &str) -> Result<DatasetName, Failure> {
    if is_path(arg) {
        return Ok(located(arg)?.dataset);
    }
    named(zfs, arg)
}

/// Resolves TARGET for an operation that destroys or rewinds: a dataset
/// name, or the path of a dataset's mountpoint (a path inside a dataset is
/// refused, naming the dataset it is in, so that nobody rolls back
/// `tank` by pointing at a directory of it).
pub fn resolve_exact(zfs: &Zfs, arg: &str) -> Result<DatasetName, Failure> {
    if !is_path(arg) {
        return named(zfs, arg);
    }
    let at = located(arg)?;
    if !at.is_mountpoint() {
        let real = if Path::new(arg) == at.path {
            String::new()
        } else {
            format!(" ({})", at.path.display())
        };
        return Err(Failure::new(format!(
            "{arg}{real} is inside {} (mounted at {}), not its mountpoint",
            at.dataset,
            at.mountpoint.display()
        ))
        .hint(format!(
            "name the dataset to act on it: {} (or its mountpoint {})",
            at.dataset,
            at.mountpoint.display()
        )));
    }
    Ok(at.dataset)
}

fn located(arg: &str) -> Result<Located, Failure> {
    let mounts = read_mounts()?;
    match locate(&mounts, Path::new(arg)) {
        Ok(Some(at)) => Ok(at),
        Ok(None) => Err(Failure::new(format!("{arg} is not on a ZFS dataset"))
            .hint("name a dataset, or a path inside a mounted one")),
        Err(kld_zfs::Error::NotFound(_)) => Err(Failure::new(format!("{arg} does not exist"))
            .hint("name an existing path, or the dataset itself")),
        Err(e) => Err(e.into()),
    }
}

fn named(zfs: &Zfs, arg: &str) -> Result<DatasetName, Failure> {
    let ds = DatasetName::new(arg)?;
    if !zfs.exists(ds.as_str())? {
        return Err(Failure::new(format!("dataset {ds} does not exist"))
            .hint("`zfs list` shows the datasets"));
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        for p in ["/", "/srv/db", "./x", "../x", ".", ".."] {
            assert!(is_path(p), "{p}");
        }
        for n in ["rpool", "rpool/home", "data"] {
            assert!(!is_path(n), "{n}");
        }
    }

    #[test]
    fn a_path_that_does_not_exist_is_refused() {
        let zfs = Zfs::new();
        let e = resolve(&zfs, "/nonexistent-kld-test/x").unwrap_err();
        assert!(format!("{e:?}").contains("does not exist"), "{e:?}");
        let e = resolve_exact(&zfs, "/nonexistent-kld-test/x").unwrap_err();
        assert!(format!("{e:?}").contains("does not exist"), "{e:?}");
    }
}
