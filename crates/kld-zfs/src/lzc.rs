//! The operations libzfs_core serves without starting a process: atomic
//! multi-dataset snapshots and batched snapshot destroys through libzetta,
//! and clones through `lzc_clone` with their properties in its nvlist,
//! which libzetta's high-level API lacks (its `libzetta-zfs-core-sys` layer
//! declares it; libnv builds the nvlist, libzfs's property table types the
//! values). Every `unsafe` call of kld is here.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

use libnv::nvpair::NvList;

use libzetta::zfs::{DestroyTiming, ZfsEngine, ZfsLzc};
use libzetta_zfs_core_sys as zfs_core_sys;

use crate::error::{Error, Result};
use crate::name::{DatasetName, SnapshotName};
use crate::props::Property;
use crate::zfs::CloneSpec;

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
pub(crate) fn clone(snap: &SnapshotName, target: &DatasetName) -> Result<()> {
    clone_with(&CloneSpec {
        snapshot: snap.clone(),
        target: target.clone(),
        props: Vec::new(),
    })
}

/// Makes every clone of `specs` at the same time, one thread each, so that
/// their sync tasks share transaction groups instead of waiting for one
/// each; the parents of all of them must exist. Every clone is attempted;
/// the first failure is returned (the clones that succeeded stay: the
/// caller's undo removes them).
pub(crate) fn clone_all(specs: &[CloneSpec]) -> Result<()> {
    if let [one] = specs {
        return clone_with(one);
    }
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let running: Vec<_> = specs
            .iter()
            .map(|spec| s.spawn(move || clone_with(spec)))
            .collect();
        running
            .into_iter()
            .zip(specs)
            .map(|(thread, spec)| {
                thread.join().unwrap_or_else(|_| {
                    Err(Error::Lzc {
                        call: format!("lzc_clone({}, {})", spec.target, spec.snapshot),
                        message: "the thread making it panicked".into(),
                    })
                })
            })
            .collect()
    });
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

/// Clones `spec.snapshot` as `spec.target` with `spec.props` set at birth
/// (not mounted), in one ioctl: the clone and its properties exist together
/// or not at all.
#[allow(unsafe_code)]
fn clone_with(spec: &CloneSpec) -> Result<()> {
    let (snap, target) = (&spec.snapshot, &spec.target);
    let call = format!("lzc_clone({target}, {snap})");
    engine(&call)?;
    let props = nvlist(&spec.props).map_err(|message| Error::Lzc {
        call: call.clone(),
        message,
    })?;
    // Names are checked newtypes: no interior NUL is possible.
    let fsname = CString::new(target.as_str()).expect("names hold no NUL");
    let origin = CString::new(snap.as_str()).expect("names hold no NUL");
    // SAFETY: libzfs_core is initialised (`engine` above). `int
    // lzc_clone(const char *fsname, const char *origin, nvlist_t *props)`
    // (OpenZFS 2.1 libzfs_core.h) reads the two NUL-terminated strings and
    // the props list, all of which outlive the call, and neither keeps nor
    // frees any of them; the nvlist_t of libnv and of the sys crate is the
    // same nvpair-sys type. libzfs_core's ioctls use per-call buffers, so
    // calls from several threads at once are safe.
    let errno =
        unsafe { zfs_core_sys::lzc_clone(fsname.as_ptr(), origin.as_ptr(), props.as_ptr()) };
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

/// The nvlist the kernel takes for properties (what `zfs clone -o` builds
/// through libzfs): user properties and string properties as strings,
/// numbers and index properties (`canmount=noauto`, `compression=zstd`) as
/// 64-bit numbers, translated through libzfs's own property table.
fn nvlist(props: &[Property]) -> std::result::Result<NvList, String> {
    let mut list = NvList::default();
    for p in props {
        let bad = |e: libnv::NvError| format!("cannot pass {p}: {e:?}");
        match typed(p.name(), p.value())? {
            Typed::Text => list.insert_string(p.name(), p.value()).map_err(bad)?,
            Typed::Number(n) => list.insert_u64(p.name(), n).map_err(bad)?,
        }
    }
    Ok(list)
}

/// How a property's value travels in an nvlist.
enum Typed {
    Text,
    Number(u64),
}

/// libzfs's property table (`zfs_prop.c`), the one `zfs` itself reads.
#[allow(unsafe_code)]
mod table {
    use std::ffi::{c_char, c_int, CString};
    use std::sync::Once;

    // Signatures as in OpenZFS 2.1's sys/fs/zfs.h and zfs_prop.h; the
    // enums zfs_prop_t and zprop_type_t are C ints.
    #[link(name = "zfs")]
    extern "C" {
        fn zfs_prop_init();
        fn zfs_name_to_prop(name: *const c_char) -> c_int;
        fn zfs_prop_get_type(prop: c_int) -> c_int;
        fn zfs_prop_string_to_index(prop: c_int, value: *const c_char, index: *mut u64) -> c_int;
    }

    /// zprop_type_t
    pub(super) const NUMBER: c_int = 0;
    pub(super) const STRING: c_int = 1;
    pub(super) const INDEX: c_int = 2;

    fn init() {
        static INIT: Once = Once::new();
        // SAFETY: `void zfs_prop_init(void)` fills libzfs's static property
        // table; `Once` makes it run once, before any lookup below reads it.
        INIT.call_once(|| unsafe { zfs_prop_init() });
    }

    /// The property's number and type, if libzfs knows it (and the loaded
    /// module supports it).
    pub(super) fn lookup(name: &str) -> Option<(c_int, c_int)> {
        init();
        let name = CString::new(name).ok()?;
        // SAFETY: `zfs_prop_t zfs_name_to_prop(const char *)` reads the
        // NUL-terminated name and the table `init` filled; it returns a
        // negative value (ZPROP_INVAL) for an unknown name.
        let prop = unsafe { zfs_name_to_prop(name.as_ptr()) };
        if prop < 0 {
            return None;
        }
        // SAFETY: `zprop_type_t zfs_prop_get_type(zfs_prop_t)` reads the
        // table entry of a valid property number, which `prop` is.
        Some((prop, unsafe { zfs_prop_get_type(prop) }))
    }

    /// The number an index property's value stands for.
    pub(super) fn index(prop: c_int, value: &str) -> Option<u64> {
        let value = CString::new(value).ok()?;
        let mut index = 0u64;
        // SAFETY: `int zfs_prop_string_to_index(zfs_prop_t, const char *,
        // uint64_t *)` reads the NUL-terminated value and writes one u64
        // through the pointer, which points to a live local; 0 means found.
        let found = unsafe { zfs_prop_string_to_index(prop, value.as_ptr(), &mut index) };
        (found == 0).then_some(index)
    }
}

fn typed(name: &str, value: &str) -> std::result::Result<Typed, String> {
    if name.contains(':') {
        return Ok(Typed::Text);
    }
    let (prop, kind) = table::lookup(name).ok_or_else(|| {
        format!("libzfs does not know the property {name} (is the zfs module loaded?)")
    })?;
    match kind {
        table::STRING => Ok(Typed::Text),
        table::NUMBER => match value {
            "none" if name.ends_with("_limit") => Ok(Typed::Number(u64::MAX)),
            "none" => Ok(Typed::Number(0)),
            v => crate::props::parse_zfs_size(v)
                .map(Typed::Number)
                .map_err(|e| format!("{name}={value}: {e}")),
        },
        table::INDEX => table::index(prop, value)
            .map(Typed::Number)
            .ok_or_else(|| format!("{name}={value}: not a value libzfs knows")),
        other => Err(format!("{name}: property type {other} is not known to kld")),
    }
}
