//! The fault-injection tier's harness on the host: count a command's steps
//! ([`kld_fs::fault`]), then run it killed right after each one.
//!
//! ```no_run
//! use std::process::Command;
//! let make = || {
//!     let mut c = Command::new("kdarksite");
//!     c.args(["update", "/srv/ds"]);
//!     c
//! };
//! let total = kld_tests::fault::steps(make()).unwrap();
//! for n in 1..=total {
//!     // ... set the world up again ...
//!     kld_tests::fault::killed_after(make(), n).unwrap();
//!     // ... run it again, check nothing named was lost ...
//! }
//! ```

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

/// What a fault-injection run did other than expected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unexpected(pub String);

/// Runs `cmd` for real with a trace and returns the steps it took, one
/// description each (`run zfs snapshot ...`, `replace /etc/...`). The
/// command must succeed.
pub fn trace(mut cmd: Command) -> Result<Vec<String>, Unexpected> {
    let dir = tempfile::tempdir().map_err(|e| Unexpected(e.to_string()))?;
    let trace = dir.path().join("trace");
    let out = cmd
        .env(kld_fs::fault::TRACE, &trace)
        .env_remove(kld_fs::fault::KILL_AFTER)
        .output()
        .map_err(|e| Unexpected(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Unexpected(format!(
            "{cmd:?} failed while counting its steps: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    Ok(text
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, what)| what).to_owned())
        .collect())
}

/// How many steps `cmd` takes (see [`trace`]).
pub fn steps(cmd: Command) -> Result<usize, Unexpected> {
    trace(cmd).map(|t| t.len())
}

/// Runs `cmd` so that it kills itself with `SIGKILL` right after its `n`th
/// step; an error unless it died that way. Returns what it printed.
pub fn killed_after(mut cmd: Command, n: usize) -> Result<Output, Unexpected> {
    let out = cmd
        .env(kld_fs::fault::KILL_AFTER, n.to_string())
        .env_remove(kld_fs::fault::TRACE)
        .output()
        .map_err(|e| Unexpected(format!("cannot run {cmd:?}: {e}")))?;
    if out.status.signal() != Some(9) {
        return Err(Unexpected(format!(
            "{cmd:?} was to be killed after step {n} but ended with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}
