//! `cargo xtask bench`: written next.
use std::process::ExitCode;
#[derive(Debug, clap::Args)]
pub struct Args {}
pub fn run(_: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("bench")
}
