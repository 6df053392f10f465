//! `kld_zfs`: ZFS datasets, snapshots, bookmarks, clones, properties,
//! send/receive, space accounting and pool status.
//!
//! - [`name`]: pool, dataset, snapshot and bookmark names that can only hold
//!   what OpenZFS accepts, so a hostile or mistaken name is refused before
//!   any program runs;
//! - [`props`]: `name=value` property assignments checked where OpenZFS fixes
//!   the values, and user properties (`module:name`);
//! - [`parse`], [`diff`], [`mounts`]: parsers for `zfs`/`zpool` output and the
//!   mount table, tested against output captured from OpenZFS 2.1;
//! - [`Zfs`]: queries that run at once, and mutations that return a [`Plan`]
//!   to print (`--dry-run`) or run; libzfs_core (through libzetta) serves
//!   snapshots, batched destroys and clones without a process per call, the
//!   `zfs`/`zpool` commands serve the rest.
//!
//! ```
//! use kld_zfs::name::DatasetName;
//! use kld_zfs::props::Property;
//!
//! let home = DatasetName::new("rpool/home")?;
//! let snap = home.snapshot("manual-20260101-120000")?;
//! assert_eq!(snap.to_string(), "rpool/home@manual-20260101-120000");
//! assert!(DatasetName::new("rpool/home;reboot").is_err());
//!
//! let p = Property::parse("recordsize=16K")?;
//! assert_eq!((p.name(), p.value()), ("recordsize", "16K"));
//! assert!(Property::parse("recordsize=100K").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod diff;
mod error;
mod lzc;
pub mod mounts;
pub mod name;
pub mod parse;
mod plan;
mod program;
pub mod props;
pub mod scan;
pub mod send;
mod zfs;

pub use error::{Error, Result};
pub use plan::{Plan, Step};
pub use zfs::{CloneSpec, Depth, Kind, Snapshot, Zfs, DATASETS};
