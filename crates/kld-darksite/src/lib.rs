//! `kld_darksite`: darksites, signed offline APT mirrors for air-gapped
//! installs.
//!
//! A darksite holds the dependency closure of a package set, complete by
//! construction: [`set`] reads the set, [`upstream`] fetches each suite's
//! Release and indices and checks them against the archive keyring,
//! [`resolve`] computes the closure as apt would (and names whatever cannot
//! be satisfied), [`download`] fetches every `.deb` in parallel and checks
//! its SHA-256 before it enters the store, [`publish`] writes the APT
//! layout signed with the darksite's own key, and [`darksite`] swaps it in
//! atomically, keeping the previous one for rollback. [`verify`] checks a
//! published tree from scratch; [`serve`] serves it over HTTP.
//!
//! The parsers stand alone:
//!
//! ```
//! use kld_darksite::version::Version;
//! use kld_darksite::relation::parse_field;
//!
//! let a: Version = "1:2.36-9+deb12u4".parse().unwrap();
//! let b: Version = "2.37~rc1-1".parse().unwrap();
//! assert!(a > b); // the epoch wins
//! assert!(Version::parse("1.0~rc1").unwrap() < Version::parse("1.0").unwrap());
//!
//! let deps = parse_field("libc6 (>= 2.34), default-mta | mail-transport-agent").unwrap();
//! assert_eq!(deps[1].0[1].name, "mail-transport-agent");
//! ```
#![deny(missing_docs)]

use std::path::PathBuf;

pub mod build;
pub mod darksite;
pub mod deb822;
pub mod download;
pub mod fetch;
pub mod index;
pub mod local;
pub mod publish;
pub mod relation;
pub mod resolve;
pub mod serve;
pub mod set;
pub mod sign;
pub mod upstream;
pub mod verify;
pub mod version;

pub use darksite::Darksite;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

/// Why a darksite operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The package set is unusable.
    #[error(transparent)]
    Set(#[from] set::SetError),
    /// Upstream metadata could not be fetched or verified.
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    /// A local package could not be added.
    #[error(transparent)]
    Local(#[from] local::LocalError),
    /// The closure is incomplete.
    #[error("the package set cannot be satisfied ({}):\n{}", count(.0.len(), "problem"), .0.iter().map(|u| format!("  {u}")).collect::<Vec<_>>().join("\n"))]
    Unsatisfied(Vec<resolve::Unsatisfied>),
    /// Packages could not be downloaded.
    #[error(transparent)]
    Download(#[from] download::DownloadError),
    /// The publication could not be written.
    #[error(transparent)]
    Publish(publish::PublishError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] sign::SignError),
    /// A publication does not verify.
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    /// The darksite is locked by another run that could not be waited for.
    #[error(transparent)]
    Lock(#[from] kld_fs::lock::LockError),
    /// An upstream Release is older than the one the last build used.
    #[error("upstream suite {suite}'s Release is dated {date}, older than the {last} this darksite was last built from (a replayed or rolled-back mirror?); nothing was changed. To build from it all the same (a mirror restored from a backup), pass --allow-older")]
    OlderRelease {
        /// The suite.
        suite: String,
        /// Its Release's Date now.
        date: String,
        /// The Date the last build used.
        last: String,
    },
    /// The darksite directory's state is not what the operation needs.
    #[error("{0}")]
    State(String),
    /// A file operation failed.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `1 problem`, `2 problems`.
pub(crate) fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
