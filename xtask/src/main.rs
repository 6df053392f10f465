//! kld's developer tasks: `cargo xtask test | demo | vm | bench | man | dist`.
//!
//! Every task installs what it needs itself (Debian packages, the VM image),
//! so each works from a clean clone on a fresh Debian 12 machine.

mod bench;
mod bench_darksite;
mod demo;
mod dist;
mod man;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kld's developer tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, term_width = 80)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every test tier (unit, host, VM) and the lints; what CI runs.
    Test(test::Args),
    /// Boot the OpenZFS VM and take a narrated tour of kld.
    Demo,
    /// Prepare the test VM, or run a script or scenarios in it.
    #[command(subcommand)]
    Vm(vm::Task),
    /// Measure kld against the usual way of doing each job.
    Bench(bench::Args),
    /// Generate man pages and shell completions for every kld binary.
    Man(man::Args),
    /// Build the Debian package (binaries, man pages, completions, units).
    Dist(dist::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::Test(args) => test::run(&args),
        Task::Demo => demo::run(),
        Task::Vm(task) => vm::run(task),
        Task::Bench(args) => bench::run(&args),
        Task::Man(args) => man::run(&args),
        Task::Dist(args) => dist::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a progress line of the harness (to stderr, so that stdout carries
/// only what tasks produce).
pub(crate) fn say(message: &str) {
    eprintln!("xtask: {message}");
}
