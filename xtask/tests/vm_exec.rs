//! `cargo xtask vm exec` end to end: the real binary, the real VM. The cases
//! run one at a time, and after each nothing may be left behind.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// One VM at a time, so that "nothing left behind" is about this case only.
static SERIAL: Mutex<()> = Mutex::new(());

/// Where `cargo xtask vm exec` keeps its per-run scratch directories.
fn runs_dir() -> PathBuf {
    kld_tests::vm::cache_dir().join("runs")
}

/// The run directories and the qemu processes that run from them, now.
/// Another engineer's VMs may be running on the same machine: a case looks
/// only at what appeared while it ran.
fn runs_and_vms() -> (BTreeSet<PathBuf>, BTreeSet<String>) {
    let runs: BTreeSet<PathBuf> = std::fs::read_dir(runs_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    let dir = runs_dir().canonicalize().unwrap_or_else(|_| runs_dir());
    let vms = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|proc| {
            let cmdline = std::fs::read(proc.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let ours =
                cmdline.starts_with("qemu-system") && cmdline.contains(&*dir.to_string_lossy());
            ours.then(|| format!("{}: {cmdline}", proc.file_name().to_string_lossy()))
        })
        .collect();
    (runs, vms)
}

fn xtask(args: &[&str], script: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.sh");
    std::fs::write(&path, script).unwrap();
    let (runs_before, vms_before) = runs_and_vms();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["vm", "exec"]).args(args).arg(&path);
    let out = cmd.output().unwrap();
    let (runs_after, vms_after) = runs_and_vms();
    let left: Vec<_> = runs_after.difference(&runs_before).collect();
    assert!(left.is_empty(), "run directories left behind: {left:?}");
    let running: Vec<_> = vms_after.difference(&vms_before).collect();
    assert!(
        running.is_empty(),
        "a qemu process was left running: {running:?}"
    );
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The acceptance script: a mirrored pool, a snapshot sent and
/// received, a scrub, on real OpenZFS; and the script's `exit 7` comes back.
#[test]
fn script_runs_on_real_zfs_and_its_exit_status_comes_back() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = xtask(
        &["--disks", "2", "--disk-size", "512M"],
        "set -e\n\
         zpool create tank mirror $KLD_VM_DISKS\n\
         zfs create tank/a && echo payload > /tank/a/f && zfs snapshot tank/a@s\n\
         zfs send tank/a@s | zfs receive tank/b\n\
         cat /tank/b/f\n\
         zpool scrub -w tank\n\
         zpool status tank\n\
         exit 7\n",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("payload\n"), "{stdout}");
    assert!(stdout.contains("mirror-0"), "{stdout}");
    assert!(stdout.contains("scrub repaired 0B"), "{stdout}");
}

#[test]
fn a_missing_script_is_a_clear_error_without_a_boot() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["vm", "exec", "/nonexistent/kld-script.sh"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("xtask: error: cannot read the script /nonexistent/kld-script.sh"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["vm", "exec", "--disk-size", "lots", "x.sh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("invalid size"), "{}", text(&out).1);
}

#[test]
fn a_hanging_script_is_stopped_at_the_timeout() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = xtask(&["--timeout", "60"], "echo started\nsleep 100000\n");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("started"), "{stdout}");
    assert!(stderr.contains("did not finish within 60 s"), "{stderr}");
}

#[test]
fn a_kernel_panic_ends_the_run_with_the_console() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = xtask(&[], "echo c > /proc/sysrq-trigger\nsleep 100000\n");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the VM stopped before the script finished (the kernel panicked)"),
        "{stderr}"
    );
    assert!(stderr.contains("Kernel panic"), "{stderr}");
}
