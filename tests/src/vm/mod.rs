//! The real-OpenZFS test VM: a Debian cloud kernel with OpenZFS, WireGuard
//! and nf_tables, booted under qemu (TCG) from a cached initramfs, running one
//! shell script with blank virtio disks and every kld binary on `PATH`.
//!
//! ```no_run
//! use kld_tests::vm::Vm;
//!
//! let run = Vm::new().disks(2).run("zpool create tank mirror $KLD_VM_DISKS && zpool list -H -o name",
//!     &mut std::io::stdout())?;
//! assert_eq!(run.exit_code, 0);
//! assert_eq!(run.output_str().trim(), "tank");
//! # Ok::<(), kld_tests::vm::VmError>(())
//! ```

mod batch;
mod boot;
mod cpio;
pub mod host;
mod image;
mod libs;
mod modules;
mod size;
pub mod system;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use batch::{Batch, BatchResult, Scenario, ScenarioResult};
pub use boot::Run;
pub use image::Image;
pub use size::parse_size;

/// Why the VM could not run a script to completion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// Preparing the host or the VM image failed.
    #[error("VM set-up failed: {0}")]
    Setup(String),
    /// A program the harness runs failed.
    #[error(transparent)]
    Exec(#[from] kld_exec::Error),
    /// The script given does not exist or cannot be read.
    #[error("cannot read the script {path}: {source}")]
    Script {
        /// The path given.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The VM ended before the script reported its exit status (a kernel
    /// panic, a ZFS assertion, or the script powering the machine off).
    #[error("the VM stopped before the script finished{}\n--- end of the kernel console ---\n{console}", panic_note(.console))]
    Died {
        /// The last lines of the kernel console.
        console: String,
    },
    /// The script did not finish within the time allowed.
    #[error("the script did not finish within {seconds} s; the VM was stopped (raise it with --timeout)\n--- end of the kernel console ---\n{console}")]
    TimedOut {
        /// The limit that was reached.
        seconds: u64,
        /// The last lines of the kernel console.
        console: String,
    },
    /// The VM booted but could not prepare itself to run the script.
    #[error(
        "the VM could not prepare itself: {message}\n--- end of the kernel console ---\n{console}"
    )]
    Boot {
        /// What the VM's init reported.
        message: String,
        /// The last lines of the kernel console.
        console: String,
    },
    /// Local file handling (temporary files, disks, the console log) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Whether a line of the kernel console says the kernel panicked (or ZFS
/// hit an assertion).
fn is_panic_line(line: &str) -> bool {
    line.contains("Kernel panic") || line.contains("PANIC")
}

fn panic_note(console: &str) -> &'static str {
    if console.lines().any(is_panic_line) {
        " (the kernel panicked)"
    } else {
        ""
    }
}

/// How to boot the VM: disks, memory, the time limit and where the kld
/// binaries come from.
#[derive(Debug, Clone)]
pub struct Vm {
    disks: usize,
    disk_size: u64,
    memory_mib: u32,
    timeout: Duration,
    binaries: Binaries,
    extra: Vec<PathBuf>,
    attached: Vec<PathBuf>,
}

/// Where the kld binaries put on the VM's `PATH` come from.
#[derive(Debug, Clone)]
enum Binaries {
    /// Build kld-cli in release mode and take its binaries.
    Build,
    /// Take every executable in this directory.
    Dir(PathBuf),
    /// None.
    Skip,
}

impl Default for Vm {
    fn default() -> Self {
        Vm::new()
    }
}

impl Vm {
    /// No disks, 1 GiB per disk when asked for, 2 GiB of memory, a 10 minute
    /// limit, and kld's binaries built in release mode (or taken from the
    /// directory in `KLD_VM_BIN_DIR`).
    pub fn new() -> Self {
        let binaries = match std::env::var_os("KLD_VM_BIN_DIR") {
            Some(dir) => Binaries::Dir(dir.into()),
            None => Binaries::Build,
        };
        Vm {
            disks: 0,
            disk_size: 1 << 30,
            memory_mib: 2048,
            timeout: Duration::from_secs(600),
            binaries,
            extra: Vec::new(),
            attached: Vec::new(),
        }
    }

    /// Puts another program on the VM's `PATH` (in `/kld/bin`, with the
    /// libraries it needs), e.g. a test binary that runs itself inside.
    pub fn with_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra.push(path.into());
        self
    }

    /// Attaches an existing raw disk image (read and written in place), as
    /// the next virtio disk after the blank ones: with N blank disks, the
    /// first attached file is disk N+1 (`/dev/vdb` for N = 1). It is not
    /// listed in `$KLD_VM_DISKS`.
    pub fn attach(mut self, path: impl Into<PathBuf>) -> Self {
        self.attached.push(path.into());
        self
    }

    /// The number of blank virtio disks (`/dev/vda`, `/dev/vdb`, ...).
    pub fn disks(mut self, count: usize) -> Self {
        self.disks = count;
        self
    }

    /// The size of each disk in bytes (sparse: unused space costs nothing).
    pub fn disk_size(mut self, bytes: u64) -> Self {
        self.disk_size = bytes;
        self
    }

    /// The VM's memory in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// How long the script may run (boot included) before the VM is stopped.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Boots without kld's binaries (for the harness's own checks and for
    /// benchmarks of other tools).
    pub fn without_binaries(mut self) -> Self {
        self.binaries = Binaries::Skip;
        self
    }

    /// Boots a fresh VM, runs `script` with `/bin/sh`, streams its output to
    /// `sink` as it comes, and returns the script's exit status and output.
    pub fn run(&self, script: &str, sink: &mut dyn std::io::Write) -> Result<Run, VmError> {
        self.run_with_files(script, &[], sink)
    }

    /// Like [`run`](Self::run), with extra files placed in the VM (paths
    /// absolute, e.g. `/kld/run/scenarios/x.sh`).
    pub fn run_with_files(
        &self,
        script: &str,
        files: &[(String, Vec<u8>)],
        sink: &mut dyn std::io::Write,
    ) -> Result<Run, VmError> {
        let image = prepare(&mut |_| {})?;
        let mut binaries = match &self.binaries {
            Binaries::Build => build_binaries()?,
            Binaries::Dir(dir) => binaries_in(dir)?,
            Binaries::Skip => Vec::new(),
        };
        binaries.extend(self.extra.iter().cloned());
        boot::run(self, &image, &binaries, script, files, sink)
    }
}

/// Makes sure the host has everything the VM needs and that the cached image
/// is current; `say` hears about anything that takes time.
pub fn prepare(say: &mut dyn FnMut(&str)) -> Result<Image, VmError> {
    host::ensure_packages(&[], say)?;
    let _lock = cache_lock("image", say)?;
    image::ensure(&cache_dir(), say)
}

/// Holds `NAME.lock` in the cache directory while this value lives: builds
/// of one cached artefact by two test binaries at once (the boot tier's two
/// tests, `cargo xtask demo` beside `cargo xtask test`) serialise, and the
/// second finds the first's result. `say` learns who it waits for.
pub fn cache_lock(name: &str, say: &mut dyn FnMut(&str)) -> Result<kld_fs::lock::Lock, VmError> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)
        .map_err(|e| VmError::Setup(format!("cannot create {}: {e}", cache.display())))?;
    let path = cache.join(format!("{name}.lock"));
    let purpose = format!(
        "building {name} for {}",
        std::env::args().next().unwrap_or_default()
    );
    kld_fs::lock::Lock::acquire(&path, &purpose, |holder| {
        say(&format!(
            "waiting for {holder} to finish (it holds {})",
            path.display()
        ))
    })
    .map_err(|e| VmError::Setup(e.to_string()))
}

/// Whether `name` is a cached artefact `PREFIX<16 hex digits>SUFFIX` (the
/// key of its inputs), as opposed to a build directory or anything else
/// beside it: only those are ever removed as stale.
pub(crate) fn is_cached(name: &str, prefix: &str, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|key| key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Where the harness keeps its image and per-run scratch files:
/// `$KLD_VM_CACHE`, or `kld-vm` in the workspace's target directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KLD_VM_CACHE") {
        return dir.into();
    }
    target_dir().join("kld-vm")
}

/// The workspace's target directory (`$CARGO_TARGET_DIR` if set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => dir.into(),
        None => workspace_root().join("target"),
    }
}

/// The root of the kld workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// Builds kld-cli's binaries in release mode and returns their paths.
pub fn build_binaries() -> Result<Vec<PathBuf>, VmError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = workspace_root().join("Cargo.toml");
    let out = kld_exec::Cmd::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kld-cli",
            "--bins",
            "--message-format=json",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir())
        .run()?;
    let mut bins = Vec::new();
    for line in out.stdout_str().lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" {
            if let Some(exe) = msg["executable"].as_str() {
                bins.push(PathBuf::from(exe));
            }
        }
    }
    Ok(bins)
}

/// Builds an example of a workspace package in release mode and returns
/// its path (for benchmarks that time a library call inside the VM).
pub fn build_example(package: &str, example: &str) -> Result<PathBuf, VmError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    kld_exec::Cmd::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            package,
            "--example",
            example,
        ])
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .run()?;
    Ok(target_dir().join("release/examples").join(example))
}

fn binaries_in(dir: &Path) -> Result<Vec<PathBuf>, VmError> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).map_err(|source| VmError::Io {
        what: format!("cannot list KLD_VM_BIN_DIR {}", dir.display()),
        source,
    })?;
    let mut bins: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    bins.sort();
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keyed_artefacts_count_as_stale_candidates() {
        assert!(is_cached("system-0123456789abcdef", "system-", ""));
        assert!(is_cached(
            "dist-root-0123456789abcdef.tar",
            "dist-root-",
            ".tar"
        ));
        // Another test binary's build in progress (the boot tier's two
        // tests at once): never removed.
        assert!(!is_cached("system-build-x7Yq2a", "system-", ""));
        assert!(!is_cached(
            "dist-root-0123456789abcdef.tar.partial",
            "dist-root-",
            ".tar"
        ));
        assert!(!is_cached("system-0123456789abcde", "system-", ""));
        assert!(!is_cached("image-0123456789abcdef0", "image-", ""));
    }
}
