//! `cargo xtask test` installs the system packages the workspace needs, so
//! xtask itself must build on a machine that has none of them: nothing it
//! depends on may link a system library (libzfs_core, through libzetta).

use std::process::Command;

#[test]
fn xtask_builds_without_the_zfs_libraries() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "xtask",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("kld-tests"), "not xtask's tree:\n{tree}");
    let sys: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("libzetta") || l.starts_with("kld-zfs"))
        .collect();
    assert!(
        sys.is_empty(),
        "xtask depends on crates that need libzfs_core before it can install it: {sys:?}"
    );
}
