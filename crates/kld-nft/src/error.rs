//! The one error type of this crate.

use std::path::PathBuf;

use crate::live::{Difference, ReadError};
use crate::parse::FileError;

/// Why a kld-nft operation failed. In every case but [`Error::Unverified`]
/// the live ruleset was left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The zone file has mistakes.
    #[error(transparent)]
    File(#[from] FileError),
    /// The zone file could not be read.
    #[error("cannot read the zone file {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// `nft -c` refused the rendered ruleset (a kld bug, or a kernel that
    /// lacks something the ruleset uses).
    #[error("nft refused the rendered ruleset: {0}")]
    Rejected(kld_exec::Error),
    /// Running `nft` failed.
    #[error(transparent)]
    Nft(#[from] kld_exec::Error),
    /// nft's JSON listing could not be read.
    #[error(transparent)]
    ReadBack(#[from] ReadError),
    /// After loading, the live table was not what was meant; the previous
    /// ruleset was loaded again.
    #[error("the live table is not what was loaded, so the previous ruleset was restored:\n{}", list(.0))]
    Unverified(Vec<Difference>),
    /// After a rollback, the live table did not list as saved.
    #[error("after restoring, table inet kld does not list as it was saved")]
    RestoreMismatch,
    /// The state directory could not be read or written.
    #[error("state file {path}: {source}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The state directory's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] kld_fs::lock::LockError),
    /// The process that reverts an unconfirmed change could not be
    /// started, so nothing was loaded.
    #[error("cannot start the process that reverts the change unless confirmed, so nothing was applied: {0}")]
    Watcher(String),
    /// An interrupted apply's journal names files that are not there.
    #[error("an interrupted apply left {journal} but not {missing}: run `knft rollback` after checking `nft list table inet kld`")]
    Journal {
        /// The journal.
        journal: PathBuf,
        /// The file it needs.
        missing: PathBuf,
    },
    /// A change applied with a deadline awaits confirmation.
    #[error(
        "a change applied with --confirm awaits confirmation (it reverts in {seconds_left} s)"
    )]
    Pending {
        /// Seconds until it reverts.
        seconds_left: u64,
    },
    /// `confirm` found nothing awaiting confirmation.
    #[error("no change awaits confirmation")]
    NothingPending,
    /// `rollback` found no previous ruleset.
    #[error("there is no previous ruleset to roll back to")]
    NoPrevious,
    /// kld's table does not exist.
    #[error("table inet kld does not exist (nothing applied yet)")]
    NoTable,
    /// A set named on the command line is not one of the zone file's sets.
    #[error("table inet kld has no set {0:?}")]
    UnknownSet(String),
    /// An element does not fit its set.
    #[error("{element:?} cannot go in set {set}: {why}")]
    Element {
        /// The set.
        set: String,
        /// The element given.
        element: String,
        /// Why not.
        why: String,
    },
}

fn list(d: &[Difference]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// Whether the error is the user's input (a zone file's mistakes, an
    /// unknown set, a bad element), as opposed to a failure of the system.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::File(_) | Error::UnknownSet(_) | Error::Element { .. }
        )
    }
}
