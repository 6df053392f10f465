//! Whether a source disk is in use: mounted, swapped on, held by another
//! block device (device mapper, md, loop), a vdev of an imported pool, or
//! (for an image file) attached to a loop device. Images in use by a
//! running VM are refused by qemu-img's own locking, which kld never turns
//! off.

use std::path::{Path, PathBuf};

use kld_exec::Cmd;

use crate::error::{Error, Result};

/// The kernel names of a block device and its partitions (`vdb`, `vdb1`).
fn block_names(dev: &Path) -> Vec<String> {
    let Some(name) = dev.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let mut names = vec![name.clone()];
    let sys = PathBuf::from("/sys/class/block").join(&name);
    if let Ok(rd) = std::fs::read_dir(&sys) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&name) && e.path().join("partition").exists() {
                names.push(n);
            }
        }
    }
    names
}

fn canonical(p: &str) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

/// Paths named in `zpool status -P` (each vdev's device or file).
pub(crate) fn pool_vdev_paths() -> Vec<PathBuf> {
    let Ok(out) = Cmd::new("zpool").args(["status", "-P"]).run() else {
        // No zpool (no ZFS on this machine): nothing can be imported.
        return Vec::new();
    };
    out.stdout_str()
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .filter_map(canonical)
        .collect()
}

/// Refuses a source that is in use; says by what.
pub fn ensure_unused(source: &Path) -> Result<()> {
    let real = std::fs::canonicalize(source).map_err(Error::io("opening", source))?;
    let meta = std::fs::metadata(&real).map_err(Error::io("opening", source))?;
    let in_use = |why: String| {
        Err(Error::InUse {
            source_path: source.to_path_buf(),
            why,
        })
    };
    use std::os::unix::fs::FileTypeExt;
    let vdevs = pool_vdev_paths();
    if meta.file_type().is_block_device() {
        let names = block_names(&real);
        let devs: Vec<PathBuf> = names
            .iter()
            .map(|n| PathBuf::from("/dev").join(n))
            .collect();
        for n in &names {
            let holders = PathBuf::from("/sys/class/block").join(n).join("holders");
            if let Some(Ok(h)) = std::fs::read_dir(&holders)
                .ok()
                .and_then(|mut rd| rd.next())
            {
                return in_use(format!(
                    "/dev/{n} is held by /dev/{}",
                    h.file_name().to_string_lossy()
                ));
            }
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for l in mounts.lines() {
            let mut f = l.split(' ');
            if let (Some(dev), Some(at)) = (f.next(), f.next()) {
                if dev.starts_with('/') && canonical(dev).is_some_and(|d| devs.contains(&d)) {
                    return in_use(format!("{dev} is mounted at {at}"));
                }
            }
        }
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
        for l in swaps.lines().skip(1) {
            if let Some(dev) = l.split_whitespace().next() {
                if canonical(dev).is_some_and(|d| devs.contains(&d)) {
                    return in_use(format!("{dev} is in use as swap"));
                }
            }
        }
        if let Some(v) = vdevs.iter().find(|v| devs.contains(v)) {
            return in_use(format!(
                "{} is a vdev of an imported pool (zpool status -P)",
                v.display()
            ));
        }
    } else if meta.is_file() {
        if vdevs.contains(&real) {
            return in_use("it is a vdev of an imported pool (zpool status -P)".into());
        }
        if let Ok(rd) = std::fs::read_dir("/sys/block") {
            for e in rd.flatten() {
                let backing = e.path().join("loop/backing_file");
                if let Ok(b) = std::fs::read_to_string(&backing) {
                    if Path::new(b.trim()) == real {
                        return in_use(format!(
                            "it is attached to /dev/{}",
                            e.file_name().to_string_lossy()
                        ));
                    }
                }
            }
        }
    } else {
        return Err(Error::Io {
            what: "reading",
            path: source.to_path_buf(),
            source: std::io::Error::other("not a block device or an image file"),
        });
    }
    Ok(())
}
