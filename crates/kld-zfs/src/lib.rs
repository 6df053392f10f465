//! `kld_zfs`: ZFS names, property assignments and output parsers.
//!
//! What exists today is the pure layer every ZFS operation stands on:
//!
//! - [`name`]: pool, dataset, snapshot and bookmark names that can only hold
//!   what OpenZFS accepts, so a hostile or mistaken name is refused before
//!   any program runs;
//! - [`props`]: `name=value` property assignments checked where OpenZFS fixes
//!   the values, and user properties (`module:name`);
//! - [`parse`]: parsers for `zfs list/get -H -p`, `zpool list/get -H -p` and
//!   `zpool status`, tested against output captured from OpenZFS 2.1.
//!
//! Operations that run `zfs`/`zpool` (and libzetta) build on these and are
//! not part of the crate yet.
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
pub mod send;
mod zfs;

pub use error::{Error, Result};
pub use plan::{Plan, Step};
pub use zfs::{Depth, Kind, Snapshot, Zfs, DATASETS};
