//! `kld_be`: boot environments on ZFS, built on kld-zfs.
//!
//! A boot environment is a child of the boot environment root (e.g.
//! `rpool/ROOT/debian`) with `mountpoint=/` and `canmount=noauto`; its own
//! children (e.g. `rpool/ROOT/debian/var`) travel with it, while datasets
//! outside the root (`rpool/home`, `rpool/var/log`) are shared by all.
//!
//! - [`BootEnvironments::locate`] finds the root (from the running system,
//!   a pool, or a name) and [`BootEnvironments::state`] reads everything:
//!   which boot environment runs, which boots next (`bootfs`), which a
//!   rollback returns to.
//! - Every mutation returns a [`Change`]: the exact steps, shown by
//!   `--dry-run`, and run all or nothing ([`Change::run`] undoes the steps
//!   before one that fails).
//!
//! ```no_run
//! use kld_be::{BeName, BootEnvironments, Locate, Source};
//! use kld_zfs::Zfs;
//!
//! let bes = BootEnvironments::locate(Zfs::new(), Locate::Running)?;
//! let name = BeName::new("pre-upgrade-20261201")?;
//! let change = bes.create(&name, &Source::Running)?;
//! print!("{change}"); // the steps, as --dry-run shows them
//! change.run()?;
//! bes.activate(&name)?.run()?;
//! for be in bes.state()?.environments {
//!     println!("{} active={} next={}", be.name, be.active, be.next_boot);
//! }
//! # Ok::<(), kld_be::Error>(())
//! ```
#![deny(missing_docs)]

mod activate;
mod change;
mod create;
mod destroy;
mod error;
mod journal;
mod mount;
mod name;
mod state;

pub use change::Change;
pub use create::{Source, SNAPSHOT_PREFIX};
pub use destroy::{PrunePolicy, PruneSelection};
pub use error::{Error, Result};
pub use journal::{Journal, JOURNAL_PROPERTY};
pub use kld_fs::lock::Lock;
pub use name::{BeName, MAX_LEN};
pub use state::{
    BootEnvironment, BootEnvironments, Dataset, Locate, SharedDataset, State, PREVIOUS_PROPERTY,
};
