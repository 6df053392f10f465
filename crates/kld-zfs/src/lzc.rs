//! The operations libzfs_core serves without starting a process: atomic
//! multi-dataset snapshots and batched snapshot destroys through libzetta,
//! and clones through `lzc_clone`, which libzetta's high-level API lacks
//! (its `libzetta-zfs-core-sys` layer declares it; the one `unsafe` call of
//! kld is here).

use std::path::PathBuf;
use std::sync::OnceLock;

use libzetta::zfs::{DestroyTiming, ZfsEngine, ZfsLzc};
use libzetta_zfs_core_sys as zfs_core_sys;

use crate::error::{Error, Result};
use crate::name::{DatasetName, SnapshotName};

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
    let done = engine(&call)?
        .snapshot(&paths(snaps), None)
        .map_err(|e| Error::Lzc {
            call: call.clone(),
            message: e.to_string(),
        });
    step(call);
    done
}

/// One step of the fault-injection hook (the call was made, whatever it
/// returned).
fn step(call: String) {
    kld_fs::fault::step(|| call);
}

/// Destroys `snaps` (all of one pool) in one transaction group.
pub(crate) fn destroy_snapshots(snaps: &[SnapshotName]) -> Result<()> {
    let call = describe("lzc_destroy_snaps", snaps);
    let done = engine(&call)?
        .destroy_snapshots(&paths(snaps), DestroyTiming::RightNow)
        .map_err(|e| Error::Lzc {
            call: call.clone(),
            message: e.to_string(),
        });
    step(call);
    done
}

/// Clones `snap` as `target` (not mounted), in one ioctl.
#[allow(unsafe_code)]
pub(crate) fn clone(snap: &SnapshotName, target: &DatasetName) -> Result<()> {
    let call = format!("lzc_clone({target}, {snap})");
    engine(&call)?;
    // Names are checked newtypes: no interior NUL is possible.
    let fsname = std::ffi::CString::new(target.as_str()).expect("names hold no NUL");
    let origin = std::ffi::CString::new(snap.as_str()).expect("names hold no NUL");
    // SAFETY: libzfs_core is initialised (`engine` above). `lzc_clone(const
    // char *fsname, const char *origin, nvlist_t *props)` (OpenZFS 2.1
    // libzfs_core.h) reads the two NUL-terminated strings, which outlive the
    // call, and accepts NULL props.
    let errno =
        unsafe { zfs_core_sys::lzc_clone(fsname.as_ptr(), origin.as_ptr(), std::ptr::null_mut()) };
    step(call.clone());
    if errno == 0 {
        Ok(())
    } else {
        Err(Error::Lzc {
            call,
            message: std::io::Error::from_raw_os_error(errno).to_string(),
        })
    }
}
