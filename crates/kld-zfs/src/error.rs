//! The error of every kld-zfs operation.

use crate::name::NameError;
use crate::parse::ParseError;
use crate::props::PropertyError;

/// Why a ZFS operation failed or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name was invalid; nothing ran.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A property assignment was invalid; nothing ran.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// `zfs` or `zpool` ran and failed: the command, status and stderr.
    #[error(transparent)]
    Command(#[from] kld_exec::Error),
    /// A libzfs_core call failed.
    #[error("{call} failed: {message}")]
    Lzc {
        /// The call and its arguments, e.g. `lzc_snapshot(tank/a@x, tank/b@x)`.
        call: String,
        /// What libzfs_core reported, per name where it said.
        message: String,
    },
    /// Output of `zfs`/`zpool` did not have the expected shape.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A dataset, snapshot or pool does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The operation would do something it must not (destroy data not
    /// named, overwrite a snapshot, ...); nothing ran.
    #[error("{0}")]
    Refused(String),
    /// Reading the mount table or a local file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The result of a kld-zfs operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
