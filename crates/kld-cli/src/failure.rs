//! How a kld binary fails: `<binary>: error: <what failed>: <cause>` on
//! standard error, a hint where one helps, and exit status 1 (2 for usage
//! errors, as clap does).

use std::fmt::Display;
use std::process::ExitCode;

/// A failure to report.
#[derive(Debug)]
pub struct Failure {
    message: String,
    hint: Option<String>,
    usage: bool,
}

impl Failure {
    /// Something failed (exit status 1).
    pub fn new(message: impl Display) -> Failure {
        Failure {
            message: message.to_string(),
            hint: None,
            usage: false,
        }
    }

    /// The command line was wrong (exit status 2).
    pub fn usage(message: impl Display) -> Failure {
        Failure {
            usage: true,
            ..Failure::new(message)
        }
    }

    /// Adds the hint that fixes it.
    pub fn hint(mut self, hint: impl Display) -> Failure {
        self.hint = Some(hint.to_string());
        self
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: impl Display) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl From<kld_zfs::Error> for Failure {
    fn from(e: kld_zfs::Error) -> Failure {
        let usage = matches!(e, kld_zfs::Error::Name(_) | kld_zfs::Error::Property(_));
        Failure {
            message: e.to_string(),
            hint: None,
            usage,
        }
    }
}

impl From<kld_zfs::name::NameError> for Failure {
    fn from(e: kld_zfs::name::NameError) -> Failure {
        Failure::usage(e)
    }
}

impl From<kld_zfs::props::PropertyError> for Failure {
    fn from(e: kld_zfs::props::PropertyError) -> Failure {
        Failure::usage(e)
    }
}

impl From<kld_be::Error> for Failure {
    fn from(e: kld_be::Error) -> Failure {
        match e {
            kld_be::Error::Zfs(e) => e.into(),
            kld_be::Error::Name { .. } => Failure::usage(e),
            e => Failure::new(e),
        }
    }
}

impl From<kld_darksite::Error> for Failure {
    fn from(e: kld_darksite::Error) -> Failure {
        use kld_darksite::Error as E;
        let hint = match &e {
            E::Unsatisfied(_) => Some(
                "add the suite or component that has it to the set, add a local .deb \
                 that provides it, or drop the package that needs it",
            ),
            E::Upstream(kld_darksite::upstream::UpstreamError::Sign(_)) => {
                Some("the set's `keyring` must hold the key the archive signs with")
            }
            E::Sign(kld_darksite::sign::SignError::KeyPermissions { .. }) => {
                Some("the secret key must be readable by its owner only")
            }
            E::Download(_) => Some(
                "nothing was published; run the same command again to resume \
                 (verified files are kept)",
            ),
            E::Verify(_) => Some("`kdarksite rollback DIR` puts the previous publication back"),
            _ => None,
        };
        let usage = matches!(e, E::Set(_));
        Failure {
            message: e.to_string(),
            hint: hint.map(str::to_owned),
            usage,
        }
    }
}

impl From<kld_nft::Error> for Failure {
    fn from(e: kld_nft::Error) -> Failure {
        let hint = match &e {
            kld_nft::Error::Pending { .. } => {
                Some("`knft confirm` keeps it, `knft rollback` undoes it")
            }
            kld_nft::Error::NothingPending => {
                Some("only `knft apply --confirm SECS` needs confirming")
            }
            kld_nft::Error::NoTable => Some("`knft apply -f FILE` creates it"),
            kld_nft::Error::UnknownSet(_) => Some("`knft show --sets` lists the sets"),
            _ => None,
        };
        Failure {
            message: e.to_string(),
            hint: hint.map(str::to_owned),
            usage: e.is_usage(),
        }
    }
}

impl From<kld_seal::Error> for Failure {
    fn from(e: kld_seal::Error) -> Failure {
        use kld_seal::Error as E;
        let hint = match &e {
            E::InUse { .. } => Some(
                "unmount it, export its pool or stop the VM that uses it; kld never reads a disk in use",
            ),
            E::Exists(_) => Some("choose another --name or OUTDIR; kld never overwrites an output"),
            E::NoPool(_) => Some(
                "kseal seals ZFS disks and mounted trees: mount the system and seal the directory, or export with --no-seal",
            ),
            E::NotARoot(_) => Some("ROOT is the directory the system is mounted at"),
            E::StalePool { .. } => Some(
                "stop what uses its mounts (fuser -m), then `zpool export -f POOL` and `losetup -d` its loop device",
            ),
            E::RunningSystem(_) => Some(
                "seal a system offline: mount its disk elsewhere and seal that directory, or seal the disk itself (kseal /dev/...)",
            ),
            E::Exec(x) if x.stderr().contains("in use from another system")
                || x.stderr().contains("was previously in use from") =>
            {
                Some("if no other system uses the pool now, add --force-import")
            }
            E::Exec(x) if x.stderr().contains("Host key verification failed") => Some(
                "the host's key is not in known_hosts (--known-hosts FILE): add it after checking its fingerprint",
            ),
            E::Exec(x) if x.stderr().contains("lock") => {
                Some("another program (a running VM?) has the image open")
            }
            _ => None,
        };
        Failure {
            usage: e.is_usage(),
            message: e.to_string(),
            hint: hint.map(str::to_owned),
        }
    }
}

/// The exit status of a binary whose standard output was closed under it
/// (`kseal --dry-run / | head`): 128 + SIGPIPE, what a shell reports for a
/// program that SIGPIPE ended.
pub const CLOSED_STDOUT: u8 = 141;

/// Whether a panic's payload is `println!`'s on a closed standard output.
fn closed_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    text.is_some_and(|t| t.starts_with("failed printing to stdout") && t.contains("Broken pipe"))
}

/// Runs a binary's body and turns its outcome into output and an exit code.
///
/// A body whose standard output is closed by its reader (a pipe into
/// `head`) ends quietly with [`CLOSED_STDOUT`], as a C program killed by
/// SIGPIPE does, not with a panic. (SIGPIPE itself stays ignored: kld-exec
/// writes to its children's standard input and must see `EPIPE` there, not
/// die.)
pub fn run(binary: &str, body: impl FnOnce() -> Result<ExitCode, Failure>) -> ExitCode {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !closed_stdout(info.payload()) {
            hook(info);
        }
    }));
    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(outcome) => outcome,
        Err(payload) if closed_stdout(&*payload) => return ExitCode::from(CLOSED_STDOUT),
        Err(payload) => std::panic::resume_unwind(payload),
    };
    match outcome {
        Ok(code) => code,
        Err(f) => {
            eprintln!("{binary}: error: {}", f.message);
            if let Some(hint) = f.hint {
                eprintln!("{binary}: hint: {hint}");
            }
            ExitCode::from(if f.usage { 2 } else { 1 })
        }
    }
}
