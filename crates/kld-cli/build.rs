//! Records the git commit the binaries are built from in `KLD_GIT_COMMIT`
//! (read by `kld_cli::args::VERSION`). A build outside a git checkout (from
//! a release tarball) must set `KLD_GIT_COMMIT` itself.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KLD_GIT_COMMIT");
    if let Ok(commit) = std::env::var("KLD_GIT_COMMIT") {
        if !commit.trim().is_empty() {
            println!("cargo:rustc-env=KLD_GIT_COMMIT={}", commit.trim());
            return;
        }
    }
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let Some(commit) = git(&dir, &["rev-parse", "--short=12", "HEAD"]) else {
        panic!(
            "kld-cli: cannot read the git commit (not a git checkout?): set \
             KLD_GIT_COMMIT to the commit the sources come from"
        );
    };
    // Build again when HEAD moves: HEAD itself, the branch it names, and
    // packed-refs (where a branch lives after `git gc`).
    if let Some(git_dir) = git(&dir, &["rev-parse", "--absolute-git-dir"]) {
        watch(&Path::new(&git_dir).join("HEAD"));
    }
    if let Some(common) = git(
        &dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    ) {
        let common = PathBuf::from(common);
        watch(&common.join("packed-refs"));
        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            watch(&common.join(branch));
        }
    }
    println!("cargo:rustc-env=KLD_GIT_COMMIT={commit}");
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
