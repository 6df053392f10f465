//! The fault hook, seen from outside: a process that runs this test binary
//! again with the variables set is killed right after the step named.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

const CHILD: &str = "KLD_FS_TEST_FAULT_CHILD";

/// Not a test of its own: the body the parent runs in a child process.
#[test]
fn child_writes_three_files() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    for name in ["a", "b", "c"] {
        kld_fs::replace(&Path::new(&dir).join(name), name.as_bytes(), 0o644).unwrap();
    }
}

fn run_child(dir: &Path, kill_after: Option<u32>) -> std::process::ExitStatus {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_writes_three_files", "--test-threads=1"])
        .env(CHILD, dir)
        .env(kld_fs::fault::TRACE, dir.join("trace"))
        .stdout(std::process::Stdio::null());
    if let Some(n) = kill_after {
        cmd.env(kld_fs::fault::KILL_AFTER, n.to_string());
    }
    cmd.status().unwrap()
}

#[test]
fn a_command_is_killed_right_after_its_nth_step() {
    let dir = tempfile::tempdir().unwrap();
    let status = run_child(dir.path(), Some(2));
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(dir.path().join("a").exists());
    assert!(dir.path().join("b").exists());
    assert!(
        !dir.path().join("c").exists(),
        "nothing after the second step"
    );
    let trace = std::fs::read_to_string(dir.path().join("trace")).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len(), 2, "{trace}");
    assert!(lines[1].starts_with("2\treplace "), "{trace}");
    assert!(lines[1].ends_with("/b"), "{trace}");
}

#[test]
fn without_a_kill_every_step_is_traced() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run_child(dir.path(), None).success());
    let trace = std::fs::read_to_string(dir.path().join("trace")).unwrap();
    assert_eq!(trace.lines().count(), 3, "{trace}");
}
