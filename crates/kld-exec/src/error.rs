//! The one error type of this crate.

use std::process::ExitStatus;

/// How many bytes of a failed program's standard error an [`Error`] keeps.
pub(crate) const STDERR_TAIL_BYTES: usize = 4096;

/// Why running a program failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program could not be started at all (not installed, not
    /// executable, ...).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line, shell-quoted for reading.
        command: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Reading the program's output or waiting for it failed.
    #[error("lost contact with `{command}`: {source}")]
    Io {
        /// The command line, shell-quoted for reading.
        command: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The program ran and reported failure.
    #[error("`{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        /// The command line, shell-quoted for reading.
        command: String,
        /// How the program ended.
        status: ExitStatus,
        /// The last few KiB of the program's standard error, trimmed.
        stderr: String,
    },
}

impl Error {
    /// The exit code of a program that ran and failed, if it exited (rather
    /// than being killed by a signal).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Error::Failed { status, .. } => status.code(),
            _ => None,
        }
    }

    /// The signal that killed a program that ran, if one did.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Error::Failed { status, .. } => status.signal(),
            _ => None,
        }
    }

    /// The tail of the failed program's standard error ("" for other errors).
    pub fn stderr(&self) -> &str {
        match self {
            Error::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// Keeps the end of a program's standard error, at most
/// [`STDERR_TAIL_BYTES`], cut on a character boundary and trimmed.
pub(crate) fn stderr_tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_TAIL_BYTES);
    let text = String::from_utf8_lossy(&stderr[start..]);
    let text = text.trim_start_matches('\u{FFFD}').trim();
    if start > 0 {
        format!("...{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let long = "x".repeat(STDERR_TAIL_BYTES * 2) + "the cause\n";
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.starts_with("..."));
        assert!(tail.ends_with("the cause"));
        assert!(tail.len() <= STDERR_TAIL_BYTES + 3);
    }

    #[test]
    fn short_stderr_is_only_trimmed() {
        assert_eq!(stderr_tail(b"  oops \n"), "oops");
    }
}
