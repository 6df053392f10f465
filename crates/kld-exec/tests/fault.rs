//! Each program run is exactly one fault-injection step, however it is run.

use std::process::Command;

use kld_exec::Cmd;

const CHILD: &str = "KLD_EXEC_TEST_FAULT_CHILD";

/// Not a test of its own: the body the parent runs in a child process.
#[test]
fn child_runs_programs() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    Cmd::new("true").run().unwrap();
    Cmd::new("true").run_streaming().unwrap();
    Cmd::new("true").run_reading(|_| {}).unwrap();
    let _ = Cmd::new("false").run();
    Cmd::new("printf")
        .arg("x")
        .pipe(Cmd::new("cat"))
        .run()
        .unwrap();
}

#[test]
fn every_program_is_one_step() {
    let dir = tempfile_dir();
    let trace = dir.join("trace");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_runs_programs", "--test-threads=1"])
        .env(CHILD, "1")
        .env(kld_fs::fault::TRACE, &trace)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&trace).unwrap();
    let steps: Vec<&str> = text
        .lines()
        .map(|l| l.split_once('\t').unwrap().1)
        .collect();
    assert_eq!(
        steps,
        [
            "run true",
            "run true",
            "run true",
            "run false",
            "run printf x",
            "run cat"
        ],
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kld-exec-fault-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
