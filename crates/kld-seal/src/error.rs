//! The one error type of this crate.

use std::path::PathBuf;

/// Why sealing, auditing, exporting or uploading failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done ("removing", "reading", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An external program failed.
    #[error(transparent)]
    Exec(#[from] kld_exec::Error),
    /// The root to seal is not a directory holding a system.
    #[error("{}: not a system root (no etc/ directory)", .0.display())]
    NotARoot(PathBuf),
    /// The root to seal is the running system's own root.
    #[error("{}: this is the running system's root; kld never seals the system it runs on", .0.display())]
    RunningSystem(PathBuf),
    /// A source disk is in use and must not be read or sealed.
    #[error("{}: in use: {why}", source_path.display())]
    InUse {
        /// The source.
        source_path: PathBuf,
        /// What uses it.
        why: String,
    },
    /// A killed seal left its temporary pool imported from the source, and
    /// it could not be exported.
    #[error("pool {pool}, left imported from {} by a killed seal (pid {pid}), cannot be exported: {why}", source_path.display())]
    StalePool {
        /// The temporary pool.
        pool: String,
        /// The killed process.
        pid: u32,
        /// The source.
        source_path: PathBuf,
        /// What `zpool export` said.
        why: String,
    },
    /// The disk holds no importable ZFS pool.
    #[error("{}: no importable ZFS pool on it", .0.display())]
    NoPool(PathBuf),
    /// The pool has no boot environment to seal.
    #[error("pool {0}: no boot environment (the pool's bootfs is not set)")]
    NoBootfs(String),
    /// An export name would be read as an option or a path.
    #[error("invalid export name `{0}`: use letters, digits, `.`, `_` and `-`, not starting with `.` or `-`")]
    Name(String),
    /// An output already exists; kld never overwrites one.
    #[error("{}: already exists", .0.display())]
    Exists(PathBuf),
    /// Something could not be parsed.
    #[error("cannot parse {what}: {why}")]
    Parse {
        /// What was parsed.
        what: String,
        /// Why not.
        why: String,
    },
    /// An export did not verify; nothing was left under the final name.
    #[error("{}: verification failed: {why}", path.display())]
    Verify {
        /// The temporary output that failed.
        path: PathBuf,
        /// What did not match.
        why: String,
    },
    /// An upload destination is malformed.
    #[error("invalid upload destination `{0}`: expected USER@HOST:PATH")]
    Destination(String),
    /// The remote copy's checksum differs from the local one.
    #[error("{remote}: remote SHA-256 {got} differs from the local {want}")]
    RemoteChecksum {
        /// The remote file.
        remote: String,
        /// The local checksum.
        want: String,
        /// The remote one.
        got: String,
    },
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    /// Whether the error is the caller's input (a usage error), not a
    /// failure of the system.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Name(_) | Error::Destination(_) | Error::NotARoot(_) | Error::RunningSystem(_)
        )
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
