//! The ZFS queries several checks share, each run at most once per report
//! however many checks ask (a check that asks while another runs it waits
//! for that answer).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kld_zfs::parse::PoolStatus;
use kld_zfs::{Depth, Kind, Zfs};

use super::Failed;

/// One snapshot, as the snapshot and replication checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Snap {
    /// The part after `@`.
    pub name: String,
    /// When it was taken (for a received snapshot: on the sender).
    pub creation: u64,
    /// Its GUID, the same on every copy of it.
    pub guid: u64,
}

/// Pool capacity from `zpool list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PoolSpace {
    /// The pool.
    pub name: String,
    /// Percent allocated.
    pub capacity: u64,
    /// Bytes.
    pub size: u64,
    /// Bytes.
    pub allocated: u64,
}

/// File systems and volumes, each with its snapshots oldest first.
pub(super) type Datasets = BTreeMap<String, Vec<Snap>>;

/// Queries shared between checks, run on first use.
pub(super) struct Sources {
    /// How checks reach ZFS.
    pub zfs: Zfs,
    /// The report's clock, seconds since the epoch.
    pub now: u64,
    status: OnceLock<Result<Vec<PoolStatus>, Failed>>,
    space: OnceLock<Result<Vec<PoolSpace>, Failed>>,
    datasets: OnceLock<Result<Datasets, Failed>>,
}

impl Sources {
    pub(super) fn new(now: u64) -> Sources {
        Sources {
            zfs: Zfs::commands_only(),
            now,
            status: OnceLock::new(),
            space: OnceLock::new(),
            datasets: OnceLock::new(),
        }
    }

    /// `zpool status` of every pool.
    pub(super) fn pool_status(&self) -> Result<&[PoolStatus], Failed> {
        self.status
            .get_or_init(|| {
                zfs_available()?;
                self.zfs
                    .pools_status()
                    .map_err(|e| Failed::Error(e.to_string()))
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// `zpool list` of every pool.
    pub(super) fn pool_space(&self) -> Result<&[PoolSpace], Failed> {
        self.space
            .get_or_init(|| {
                zfs_available()?;
                let rows = self
                    .zfs
                    .pools(&["size", "alloc", "cap"])
                    .map_err(|e| Failed::Error(e.to_string()))?;
                rows.iter()
                    .map(|row| {
                        let number = |col: &str| {
                            row.number(col)
                                .map_err(|e| Failed::Error(e.to_string()))
                                .map(Option::unwrap_or_default)
                        };
                        Ok(PoolSpace {
                            name: row.get("name").unwrap_or_default().to_owned(),
                            capacity: number("cap")?,
                            size: number("size")?,
                            allocated: number("alloc")?,
                        })
                    })
                    .collect()
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// Every file system and volume with its snapshots (two `zfs list`s).
    pub(super) fn datasets(&self) -> Result<&Datasets, Failed> {
        self.datasets
            .get_or_init(|| {
                zfs_available()?;
                let error = |e: kld_zfs::Error| Failed::Error(e.to_string());
                let (datasets, snapshots) = std::thread::scope(|scope| {
                    let datasets = scope.spawn(|| {
                        self.zfs.list(
                            &[],
                            &[Kind::Filesystem, Kind::Volume],
                            &["name"],
                            Depth::All,
                        )
                    });
                    let snapshots =
                        self.zfs
                            .list(&[], &[Kind::Snapshot], &["creation", "guid"], Depth::All);
                    (datasets.join().expect("zfs list thread"), snapshots)
                });
                let mut map: Datasets = datasets
                    .map_err(error)?
                    .iter()
                    .map(|row| (row.get("name").unwrap_or_default().to_owned(), Vec::new()))
                    .collect();
                for row in snapshots.map_err(error)? {
                    let full = row.get("name").unwrap_or_default();
                    let Some((dataset, name)) = full.split_once('@') else {
                        continue;
                    };
                    let number = |col: &str| {
                        row.number(col)
                            .map_err(|e| Failed::Error(e.to_string()))
                            .map(Option::unwrap_or_default)
                    };
                    let snap = Snap {
                        name: name.to_owned(),
                        creation: number("creation")?,
                        guid: number("guid")?,
                    };
                    map.entry(dataset.to_owned()).or_default().push(snap);
                }
                for snaps in map.values_mut() {
                    snaps.sort_by_key(|s| s.creation);
                }
                Ok(map)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// ZFS is a missing data source when its tools or its kernel module are
/// absent.
fn zfs_available() -> Result<(), Failed> {
    if !std::path::Path::new("/dev/zfs").exists() {
        return Err(Failed::Missing(
            "ZFS is not loaded here (no /dev/zfs)".into(),
        ));
    }
    Ok(())
}
