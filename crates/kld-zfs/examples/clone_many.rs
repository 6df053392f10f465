//! Clones one snapshot N times through kld-zfs: with libzfs_core, one
//! `lzc_clone` call each and no process at all (`cargo xtask bench` times it
//! against a `zfs clone` loop).
//!
//! Usage: `clone_many POOL/DATASET@SNAP PREFIX N` creates PREFIX0 ... PREFIX<N-1>.

use kld_zfs::name::{DatasetName, SnapshotName};
use kld_zfs::Zfs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [snap, prefix, count] = &args[..] else {
        return Err("usage: clone_many SNAPSHOT PREFIX N".into());
    };
    let snap = SnapshotName::new(snap.as_str())?;
    let targets = (0..count.parse::<usize>()?)
        .map(|i| DatasetName::new(format!("{prefix}{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    Zfs::new().clone_unmounted(&snap, &targets).run()?;
    Ok(())
}
