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
    /// Boot the ZFS-on-root system (systemd, root=zfs:AUTO; built once and
    /// cached) once per SCRIPT, in order, on one disk: each script runs
    /// after boot with the kld binaries on PATH, then the system powers off
    /// and the next boot runs the next script.
    Boot(BootArgs),
}

#[derive(Debug, clap::Args)]
pub struct BootArgs {
    /// Seconds each boot may take, script included.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// The shell scripts, one per boot.
    #[arg(required = true)]
    scripts: Vec<PathBuf>,
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
        Task::Boot(args) => boot(&args),
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

fn boot(args: &BootArgs) -> Result<ExitCode> {
    let scripts = args
        .scripts
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the script {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let image = vm::system::SystemImage::ensure(&mut |m| say(m)).context("the system image")?;
    let system = vm::system::System::new(&image)?.timeout(Duration::from_secs(args.timeout));
    for (path, script) in args.scripts.iter().zip(&scripts) {
        say(&format!("booting to run {}", path.display()));
        let run = system.boot(script, &mut std::io::stdout())?;
        say(&format!(
            "{}: exit {} (boot to script {:.1} s, whole boot {:.1} s)",
            path.display(),
            run.exit_code,
            run.boot_to_script.as_secs_f64(),
            run.total.as_secs_f64()
        ));
        if run.exit_code != 0 {
            return Ok(ExitCode::from(
                u8::try_from(run.exit_code).unwrap_or(1).max(1),
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prepares the host and the VM image, narrating anything slow.
pub fn prepare() -> Result<vm::Image> {
    vm::prepare(&mut |m| say(m)).context("preparing the test VM")
}

/// Prepares the local mirror of real Debian packages that the darksite
/// tests (and, with the larger set, the benchmarks) build from: fetched
/// once from Debian's archive, then cached.
pub fn prepare_darksite_mirror(sets: &[&str]) -> Result<std::path::PathBuf> {
    kld_tests::darksite::prepare(sets, &mut |m| say(m))
        .context("preparing the darksite test mirror")
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
