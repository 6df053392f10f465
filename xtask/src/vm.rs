//! `cargo xtask vm setup | exec | scenario`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kld_tests::vm::{self, parse_size, Batch, Scenario, Vm};

use crate::say;

#[derive(Debug, clap::Subcommand)]
pub enum Task {
    /// Install the VM's packages, build the zfs module and the VM image
    /// (idempotent; a second run takes seconds).
    Setup,
    /// Boot a fresh VM and run SCRIPT in it with /bin/sh; exits with the
    /// script's exit status.
    Exec(ExecArgs),
    /// Run scenarios from tests/vm/ (all of them if none is named) in one
    /// boot, and report each.
    Scenario(ScenarioArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Blank virtio disks to attach; the script finds their paths in
    /// $KLD_VM_DISKS.
    #[arg(long, default_value_t = 0)]
    disks: usize,
    /// Size of each disk, e.g. 512M or 2G.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    disk_size: u64,
    /// Seconds the script may run, boot included, before the VM is stopped.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Memory of the VM in MiB.
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    /// The shell script to run.
    script: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// Scenario names (file stems in tests/vm/).
    names: Vec<String>,
}

pub fn run(task: Task) -> Result<ExitCode> {
    match task {
        Task::Setup => setup(),
        Task::Exec(args) => exec(&args),
        Task::Scenario(args) => scenario(&args),
    }
}

fn setup() -> Result<ExitCode> {
    let started = Instant::now();
    let image = prepare()?;
    say(&format!(
        "VM ready: kernel {}, image {} ({:.1} s)",
        image.kernel_release,
        image.initrd.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Prepares the host and the VM image, narrating anything slow.
pub fn prepare() -> Result<vm::Image> {
    vm::prepare(&mut |m| say(m)).context("preparing the test VM")
}

/// Installs the host packages the host-side tasks need (nft, ip), without
/// building the VM image.
pub fn ensure_host_packages() -> Result<()> {
    vm::host::ensure_packages(&[], &mut |m| say(m)).context("installing host packages")
}

fn exec(args: &ExecArgs) -> Result<ExitCode> {
    let script = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read the script {}", args.script.display()))?;
    prepare()?;
    let vm = Vm::new()
        .disks(args.disks)
        .disk_size(args.disk_size)
        .memory_mib(args.memory)
        .timeout(Duration::from_secs(args.timeout));
    let run = vm.run(&script, &mut std::io::stdout())?;
    say(&format!(
        "script exited {} (boot to script {:.1} s, total {:.1} s)",
        run.exit_code,
        run.boot_to_script.as_secs_f64(),
        run.total.as_secs_f64()
    ));
    Ok(ExitCode::from(u8::try_from(run.exit_code).unwrap_or(1)))
}

fn scenario(args: &ScenarioArgs) -> Result<ExitCode> {
    let dir = vm::workspace_root().join("tests/vm");
    let mut batch = Batch::new();
    if args.names.is_empty() {
        batch.add_dir(&dir)?;
    } else {
        batch.add_libs(&dir)?;
        for name in &args.names {
            let path = dir.join(format!("{name}.sh"));
            if !path.exists() {
                bail!("no scenario {name}: {} does not exist", path.display());
            }
            batch.add(Scenario::from_file(&path)?);
        }
    }
    prepare()?;
    let result = batch.run(Vm::new(), &mut std::io::stdout())?;
    let mut failed = 0;
    for name in batch.names() {
        let verdict = match result.results.get(name) {
            Some(r) if r.exit_code == 0 => "ok".to_owned(),
            Some(r) => format!("FAILED (exit {})", r.exit_code),
            None => "DID NOT FINISH".to_owned(),
        };
        if verdict != "ok" {
            failed += 1;
        }
        println!("scenario {name}: {verdict}");
    }
    let total = batch.names().len();
    println!("scenarios: {} passed, {failed} failed", total - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
