//! The error of every kld-be operation.

/// Why a boot-environment operation failed or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name was invalid; nothing ran.
    #[error("invalid boot environment name {name:?}: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The boot environment root could not be found.
    #[error("cannot find the boot environment root: {0}")]
    NoRoot(String),
    /// No boot environment has this name.
    #[error("no boot environment {name} under {root}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The boot environment root searched.
        root: String,
    },
    /// The operation would break the system or destroy what was not named;
    /// nothing ran.
    #[error("{0}")]
    Refused(String),
    /// Another kbe run holds the pool's lock; nothing ran.
    #[error("another kbe command is changing pool {pool}: its lock is held by {holder}")]
    Busy {
        /// The pool.
        pool: String,
        /// Who holds the lock (`pid N (kbe create b)`).
        holder: String,
    },
    /// A ZFS query or a single step failed.
    #[error(transparent)]
    Zfs(#[from] kld_zfs::Error),
    /// A step of a multi-step change failed; the steps before it were
    /// undone (those whose undoing failed are listed).
    #[error("{step}: {cause}{}", undo_note(.undone, .not_undone))]
    Failed {
        /// The step that failed, as it would be shown by `--dry-run`.
        step: String,
        /// Why it failed.
        cause: Box<kld_zfs::Error>,
        /// How many earlier steps were undone.
        undone: usize,
        /// Undo steps that failed themselves, with why: what is left over.
        not_undone: Vec<String>,
    },
}

fn undo_note(undone: &usize, not_undone: &[String]) -> String {
    let mut note = match undone {
        0 => String::from("; nothing had changed"),
        n => format!("; the {n} step(s) before it were undone"),
    };
    if !not_undone.is_empty() {
        note.push_str(&format!(
            ", except (left over, remove by hand): {}",
            not_undone.join("; ")
        ));
    }
    note
}

impl From<kld_zfs::name::NameError> for Error {
    fn from(e: kld_zfs::name::NameError) -> Error {
        Error::Zfs(e.into())
    }
}

/// The result of a kld-be operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<kld_zfs::props::PropertyError> for Error {
    fn from(e: kld_zfs::props::PropertyError) -> Error {
        Error::Zfs(e.into())
    }
}
