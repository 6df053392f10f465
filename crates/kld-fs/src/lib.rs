//! The file primitives every kld crate shares, with one set of guarantees:
//!
//! - [`replace`]: atomic replacement of a file (a temporary file in the same
//!   directory, created with its final mode, fsynced, renamed over the old
//!   one, the directory fsynced): a reader sees the old bytes or the new,
//!   never a mix, and a crash keeps one of the two.
//! - [`secret`]: files created `0600` from their first byte, and private
//!   working directories (`0700`) that a later run sweeps up if a killed
//!   one left them behind.
//! - [`lock`]: exclusive locks in a directory only root (or the owner) can
//!   write, that name their holder to whoever is kept waiting.
//! - [`fault`]: the fault-injection hook: every write here and every
//!   program `kld-exec` runs is one *step*; tests stop a command after its
//!   Nth step with `SIGKILL` and check what the next run does.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("state.toml");
//! kld_fs::replace(&path, b"a = 1\n", 0o644)?;
//! assert_eq!(std::fs::read(&path)?, b"a = 1\n");
//!
//! let lock = kld_fs::lock::Lock::try_acquire(&dir.path().join("job.lock"), "an example")?;
//! let again = kld_fs::lock::Lock::try_acquire(&dir.path().join("job.lock"), "a second run");
//! assert!(again.unwrap_err().to_string().contains("an example"));
//! drop(lock);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod atomic;
pub mod fault;
pub mod lock;
pub mod secret;

pub use atomic::{replace, replace_with, sync_dir};
