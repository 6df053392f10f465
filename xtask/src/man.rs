//! `cargo xtask man`: man pages and shell completions for every kld binary,
//! generated from the binaries' own command-line definitions.

use std::process::ExitCode;

use anyhow::{Context, Result};
use kld_tests::vm;

use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write man1/ and completions/ (default: target/man).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    // kld-cli links libzfs_core: its build needs the Debian packages.
    vm::host::ensure_packages(&[], &mut |m| say(m)).context("installing build dependencies")?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| vm::target_dir().join("man"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    kld_exec::Cmd::new(cargo)
        .args(["run", "--quiet", "-p", "kld-cli", "--example", "man", "--"])
        .arg(&out)
        .current_dir(vm::workspace_root())
        .run_streaming()
        .context("generating man pages and completions")?;
    say(&format!(
        "man pages in {0}/man1, completions in {0}/completions",
        out.display()
    ));
    Ok(ExitCode::SUCCESS)
}
