//! The operations libzfs_core serves without starting a process, through
//! libzetta: atomic multi-dataset snapshots and batched snapshot destroys.

use std::path::PathBuf;
use std::sync::OnceLock;

use libzetta::zfs::{DestroyTiming, ZfsEngine, ZfsLzc};

use crate::error::{Error, Result};
use crate::name::SnapshotName;

fn engine(call: &str) -> Result<&'static ZfsLzc> {
    static ENGINE: OnceLock<std::result::Result<ZfsLzc, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| ZfsLzc::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Lzc {
            call: call.to_owned(),
            message: format!(
                "cannot open libzfs_core (is the zfs module loaded and /dev/zfs present?): {e}"
            ),
        })
}

fn paths(snaps: &[SnapshotName]) -> Vec<PathBuf> {
    snaps.iter().map(|s| PathBuf::from(s.as_str())).collect()
}

fn describe(call: &str, snaps: &[SnapshotName]) -> String {
    let names: Vec<&str> = snaps.iter().map(SnapshotName::as_str).collect();
    format!("{call}({})", names.join(", "))
}

/// Takes all `snaps` in one transaction group: all or none.
pub(crate) fn snapshot(snaps: &[SnapshotName]) -> Result<()> {
    let call = describe("lzc_snapshot", snaps);
    engine(&call)?
        .snapshot(&paths(snaps), None)
        .map_err(|e| Error::Lzc {
            call,
            message: e.to_string(),
        })
}

/// Destroys `snaps` (all of one pool) in one transaction group.
pub(crate) fn destroy_snapshots(snaps: &[SnapshotName]) -> Result<()> {
    let call = describe("lzc_destroy_snaps", snaps);
    engine(&call)?
        .destroy_snapshots(&paths(snaps), DestroyTiming::RightNow)
        .map_err(|e| Error::Lzc {
            call,
            message: e.to_string(),
        })
}
