//! Booting one VM for one script: disks, the per-run initramfs, qemu, the
//! output stream and its markers, the time limit, and clean-up.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::cpio::Archive;
use super::image::{hex, Image};
use super::libs::libraries_of;
use super::{cache_dir, Vm, VmError};

/// How long the VM may take to power off after the script reported.
const POWER_OFF_GRACE: Duration = Duration::from_secs(30);
/// Virtio disks are named `/dev/vda` to `/dev/vdz`.
const MAX_DISKS: usize = 26;
/// How much of the kernel console an error carries.
const CONSOLE_TAIL_LINES: usize = 40;

/// What one boot did.
#[derive(Debug, Clone)]
pub struct Run {
    /// The script's exit status.
    pub exit_code: i32,
    /// Everything the script printed (standard output and error together).
    pub output: Vec<u8>,
    /// From starting qemu to the script's first instruction.
    pub boot_to_script: Duration,
    /// From starting qemu to its exit.
    pub total: Duration,
}

impl Run {
    /// The output as text.
    pub fn output_str(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Kills and reaps qemu however the run ends.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

enum Event {
    Line(Vec<u8>),
    Closed,
}

pub(super) fn run(
    vm: &Vm,
    image: &Image,
    binaries: &[PathBuf],
    script: &str,
    files: &[(String, Vec<u8>)],
    sink: &mut dyn Write,
) -> Result<Run, VmError> {
    if vm.disks + vm.attached.len() > MAX_DISKS {
        return Err(VmError::Setup(format!(
            "at most {MAX_DISKS} disks, not {}",
            vm.disks + vm.attached.len()
        )));
    }
    let runs = cache_dir().join("runs");
    std::fs::create_dir_all(&runs)
        .map_err(|source| io(format!("cannot create {}", runs.display()), source))?;
    let scratch = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&runs)
        .map_err(|source| io("cannot create the run directory".into(), source))?;
    let dir = scratch.path();

    let nonce = nonce()?;
    let mut disks = Vec::new();
    for i in 0..vm.disks {
        let path = dir.join(format!("disk{i}.img"));
        let file = std::fs::File::create(&path)
            .map_err(|source| io(format!("cannot create {}", path.display()), source))?;
        file.set_len(vm.disk_size)
            .map_err(|source| io(format!("cannot size {}", path.display()), source))?;
        disks.push(path);
    }
    disks.extend(vm.attached.iter().cloned());
    let initrd = dir.join("initrd.cpio");
    write_initrd(&initrd, image, binaries, script, files, vm.disks, &nonce)?;
    let console = dir.join("console.log");

    let cmd = qemu_command(vm, image, &initrd, &console, &disks);
    watch(cmd, &console, &nonce, vm.timeout, sink)
}

/// Starts qemu (whose stdout is the guest's second serial port), streams
/// what the script prints between the start and exit markers of `nonce` to
/// `sink`, and stops qemu when it is done, when the guest dies, or at
/// `timeout`.
pub(super) fn watch(
    mut cmd: Command,
    console: &Path,
    nonce: &str,
    timeout: Duration,
    sink: &mut dyn Write,
) -> Result<Run, VmError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut qemu = Qemu(cmd.spawn().map_err(|source| {
        io(
            "cannot start qemu-system-x86_64 (`cargo xtask vm setup` installs it)".into(),
            source,
        )
    })?);
    let stdout = qemu.0.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || read_lines(stdout, tx));

    let start_marker = format!("KLD-VM-START-{nonce}");
    let exit_marker = format!("KLD-VM-EXIT-{nonce} ");
    let failed_marker = format!("KLD-VM-SETUP-FAILED-{nonce} ");
    let deadline = started + timeout;
    let mut boot_to_script = None;
    let mut exit_code = None;
    let mut power_off_by = None;
    let mut output = Vec::new();
    loop {
        let now = Instant::now();
        let limit = power_off_by.unwrap_or(deadline);
        if now >= limit {
            if exit_code.is_some() {
                break; // reported, then failed to power off: the result stands
            }
            drop(qemu);
            return Err(VmError::TimedOut {
                seconds: timeout.as_secs(),
                console: console_tail(console),
            });
        }
        match rx.recv_timeout(limit - now) {
            Ok(Event::Line(line)) => {
                let text = String::from_utf8_lossy(&line);
                let trimmed = text.trim_end();
                if trimmed == start_marker {
                    boot_to_script = Some(started.elapsed());
                } else if let Some(code) = trimmed.strip_prefix(&exit_marker) {
                    exit_code = code.trim().parse::<i32>().ok();
                    power_off_by = Some(Instant::now() + POWER_OFF_GRACE);
                } else if let Some(message) = trimmed.strip_prefix(&failed_marker) {
                    drop(qemu);
                    return Err(VmError::Boot {
                        message: message.to_owned(),
                        console: console_tail(console),
                    });
                } else if boot_to_script.is_some() {
                    let _ = sink.write_all(&line);
                    let _ = sink.flush();
                    output.extend_from_slice(&line);
                }
            }
            Ok(Event::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    drop(qemu);
    let total = started.elapsed();
    match (exit_code, boot_to_script) {
        (Some(exit_code), Some(boot_to_script)) => Ok(Run {
            exit_code,
            output,
            boot_to_script,
            total,
        }),
        _ => Err(VmError::Died {
            console: console_tail(console),
        }),
    }
}

fn qemu_command(
    vm: &Vm,
    image: &Image,
    initrd: &Path,
    console: &Path,
    disks: &[PathBuf],
) -> Command {
    let mut cmd = qemu(
        vm.memory_mib,
        &image.kernel,
        initrd,
        "console=ttyS0 loglevel=4 panic=-1 oops=panic rdinit=/init",
        console,
    );
    for disk in disks {
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=virtio,cache=unsafe",
            disk.display()
        ));
    }
    cmd
}

/// qemu (TCG, two CPUs, no reboot) booting `kernel` and `initrd` with
/// `append`: the first serial port (the kernel console) goes to `console`,
/// the second to qemu's standard output, which [`watch`] reads. Disks are
/// the caller's to add.
pub(super) fn qemu(
    memory_mib: u32,
    kernel: &Path,
    initrd: &Path,
    append: &str,
    console: &Path,
) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2"]);
    cmd.arg("-m").arg(memory_mib.to_string());
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    cmd.arg("-kernel").arg(kernel);
    cmd.arg("-initrd").arg(initrd);
    cmd.arg("-append").arg(append);
    cmd.arg("-serial")
        .arg(format!("file:{}", console.display()));
    cmd.args(["-serial", "stdio"]);
    cmd
}

/// The base image followed by this run's archive: the kernel unpacks both.
fn write_initrd(
    path: &Path,
    image: &Image,
    binaries: &[PathBuf],
    script: &str,
    files: &[(String, Vec<u8>)],
    disks: usize,
    nonce: &str,
) -> Result<(), VmError> {
    let mut archive = Archive::new();
    let devices: Vec<String> = (0..disks)
        .map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char))
        .collect();
    let env = format!(
        "KLD_NONCE={nonce}\nKLD_VM_DISKS='{}'\nexport KLD_VM_DISKS\n",
        devices.join(" ")
    );
    archive.file("kld/run/env", 0o644, env.as_bytes());
    archive.file("kld/run/script.sh", 0o755, script.as_bytes());
    for (name, bytes) in files {
        archive.file(name, 0o755, bytes);
    }
    archive.dir("kld/bin");
    for bin in binaries {
        let name = bin
            .file_name()
            .expect("binaries are files")
            .to_string_lossy()
            .into_owned();
        archive.file(&format!("kld/bin/{name}"), 0o755, &read(bin)?);
        for lib in libraries_of(&bin.to_string_lossy()).map_err(VmError::Setup)? {
            if !image.paths.contains(lib.trim_start_matches('/')) {
                archive.file(&lib, 0o755, &read(Path::new(&lib))?);
            }
        }
    }
    let mut bytes = read(&image.initrd)?;
    bytes.extend_from_slice(&archive.finish());
    std::fs::write(path, bytes)
        .map_err(|source| io(format!("cannot write {}", path.display()), source))
}

fn read_lines(stdout: impl Read, tx: mpsc::Sender<Event>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if tx.send(Event::Line(line)).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Event::Closed);
}

/// The end of the kernel console: its last lines, or, when the kernel
/// panicked, everything from the panic message on (a panic's stack trace can
/// be longer than the usual tail and would push the message out of it).
fn console_tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines.len().saturating_sub(CONSOLE_TAIL_LINES);
    let panic = lines.iter().position(|line| super::is_panic_line(line));
    lines[panic.map_or(tail, |at| at.min(tail))..].join("\n")
}

pub(super) fn nonce() -> Result<String, VmError> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| io("cannot read /dev/urandom".into(), source))?;
    Ok(hex(&bytes))
}

fn read(path: &Path) -> Result<Vec<u8>, VmError> {
    std::fs::read(path).map_err(|source| io(format!("cannot read {}", path.display()), source))
}

pub(super) fn io(what: String, source: std::io::Error) -> VmError {
    VmError::Io { what, source }
}
