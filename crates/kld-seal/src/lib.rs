//! `kld_seal`: sealing an installed system for cloning, and exporting disks
//! as verified golden images.
//!
//! - [`plan`] looks at a root tree and lists the exact changes of the chosen
//!   [`Op`]s; [`Plan::apply`] makes them. [`seal_disk`] does the same to the
//!   ZFS system on a disk, every dataset of it mounted under a temporary
//!   altroot and pool name.
//! - [`audit`] scans a tree for what a sealed image must not carry.
//! - [`Export`] writes a disk as qcow2 (kld's own writer, hashed as it
//!   writes) or, with `qemu-img`, as vmdk, vhd, ova or raw; each output is
//!   verified and checksummed before it gets its final name.
//! - [`Upload`] copies outputs over SSH with the host key checked and the
//!   remote checksum verified.
//!
//! ```no_run
//! use kld_seal::{audit, plan, Op};
//! let root = std::path::Path::new("/mnt/golden");
//! let plan = plan(root, Op::DEFAULT)?;
//! print!("{plan}"); // what --dry-run shows
//! plan.apply()?;
//! assert!(audit(root)?.is_empty());
//! # Ok::<(), kld_seal::Error>(())
//! ```
#![deny(missing_docs)]

mod audit;
pub mod cloudinit;
mod disk;
mod error;
mod export;
pub mod hash;
mod inuse;
mod ops;
pub mod ovf;
mod plan;
mod progress;
mod qcow2;
mod rules;
mod scan;
pub mod secrets;
mod tree;
mod upload;

pub use audit::{audit, Finding, Kind};
pub use disk::{
    parse_importable, release_own, release_stale, seal_disk, system_datasets, DiskReport, DiskSeal,
    Importable, Released,
};
pub use error::{Error, Result};
pub use export::{
    check_name, copy_raw, info, parse_info, verify_ova, DiskInfo, Export, Exported, Format,
};
pub use inuse::ensure_unused;
pub use ops::{select, Op, UnknownOp};
pub use plan::{ensure_not_running_root, Action, Plan, Step};
pub use progress::Progress;
pub use rules::{plan, SSH_HOSTKEYS_UNIT, SSH_HOSTKEYS_UNIT_NAME};
pub use upload::{Destination, Upload};
