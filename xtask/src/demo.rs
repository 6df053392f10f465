//! `cargo xtask demo`: written next.
use std::process::ExitCode;
pub fn run() -> anyhow::Result<ExitCode> {
    anyhow::bail!("demo")
}
