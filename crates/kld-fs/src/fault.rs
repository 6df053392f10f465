//! The fault-injection hook.
//!
//! A *step* is one change kld makes to the world: a program run through
//! `kld-exec`, a file replaced or created through this crate, a
//! libzfs_core call. Every such place calls [`step`] once the change is
//! made. Two environment variables, read once per process, turn the hook
//! on; with neither set it costs one relaxed atomic load.
//!
//! - `KLD_FAULT_TRACE=FILE`: each step appends `N<TAB>WHAT` to `FILE`, so a
//!   test learns how many steps a command takes and what they are.
//! - `KLD_FAULT_KILL_AFTER=N`: right after its Nth step the process sends
//!   itself `SIGKILL`, as an out-of-memory kill or a power cut would stop
//!   it: no destructor, no cleanup, no flushed buffers.
//!
//! A test runs a command once with a trace to count its steps, then once
//! per step with `KLD_FAULT_KILL_AFTER`, and checks that the next run
//! finishes or undoes the work. Child processes inherit the variables and
//! count their own steps.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The variable naming the step after which the process kills itself.
pub const KILL_AFTER: &str = "KLD_FAULT_KILL_AFTER";
/// The variable naming the file each step is appended to.
pub const TRACE: &str = "KLD_FAULT_TRACE";

struct Hook {
    kill_after: Option<u64>,
    trace: Option<std::path::PathBuf>,
}

fn hook() -> Option<&'static Hook> {
    static HOOK: OnceLock<Option<Hook>> = OnceLock::new();
    HOOK.get_or_init(|| {
        let kill_after = std::env::var(KILL_AFTER)
            .ok()
            .and_then(|v| v.trim().parse().ok());
        let trace = std::env::var_os(TRACE).map(std::path::PathBuf::from);
        (kill_after.is_some() || trace.is_some()).then_some(Hook { kill_after, trace })
    })
    .as_ref()
}

/// Records that one step, described by `what`, has just been made; kills
/// the process if it is the step `KLD_FAULT_KILL_AFTER` names.
pub fn step(what: impl FnOnce() -> String) {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some(hook) = hook() else { return };
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(trace) = &hook.trace {
        let line = format!("{n}\t{}\n", what().replace(['\n', '\t'], " "));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
    if hook.kill_after == Some(n) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; this is never reached.
        std::process::abort();
    }
}
