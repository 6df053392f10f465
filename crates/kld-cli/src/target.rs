//! TARGET arguments: a dataset name, or a path inside a mounted dataset.
//! An argument that begins with `/`, `./` or `../` (or is `.` or `..`) is a
//! path; anything else is a dataset name.

use std::path::Path;

use kld_zfs::mounts::{dataset_holding, read_mounts};
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

/// Resolves TARGET to an existing dataset.
pub fn resolve(zfs: &Zfs, arg: &str) -> Result<DatasetName, Failure> {
    if is_path(arg) {
        let mounts = read_mounts()?;
        return dataset_holding(&mounts, Path::new(arg))
            .map(|(ds, _)| ds)
            .ok_or_else(|| {
                Failure::new(format!("{arg} is not on a ZFS dataset"))
                    .hint("name a dataset, or a path inside a mounted one")
            });
    }
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
}
