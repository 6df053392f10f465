//! The boot tier: a real ZFS-on-root Debian system on a disk image — a
//! bookworm root with systemd, Debian's cloud kernel, the zfs module the
//! harness built and `zfs-initramfs`, on pool `rpool` as boot environment
//! `rpool/ROOT/a` — built once and cached, and booted by qemu with the
//! root's own kernel and initramfs and `root=zfs:AUTO`, so the pool's
//! `bootfs` decides what boots.
//!
//! Each [`System::boot`] boots the same disk (a copy-on-write overlay of the
//! cached image, so changes carry from one boot to the next), runs one
//! script as a systemd unit with the kld binaries on `PATH`, and powers off.
//!
//! ```no_run
//! use kld_tests::vm::system::{System, SystemImage};
//!
//! let image = SystemImage::ensure(&mut |m| eprintln!("{m}"))?;
//! let system = System::new(&image)?;
//! let run = system.boot("kbe current", &mut std::io::stdout())?;
//! assert_eq!(run.output_str().trim(), "a");
//! # Ok::<(), kld_tests::vm::VmError>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use kld_exec::Cmd;
use sha2::{Digest, Sha256};

use super::boot::{io, nonce, qemu, watch};
use super::image::hex;
use super::{build_binaries, cache_dir, host, Run, Vm, VmError};

/// Runs the job on every boot (`/usr/local/sbin/kld-job`).
const JOB: &str = include_str!("system/kld-job.sh");
/// Starts [`JOB`] once the system is up.
const JOB_UNIT: &str = include_str!("system/kld-job.service");
/// Run in the busybox VM: the root tree onto the pool.
const INSTALL: &str = include_str!("system/install.sh");
/// Bumped when the image changes in a way its inputs miss.
const FORMAT: &str = "kld-system-image-1";
/// The pool's hostid, written into the root before its initramfs is built,
/// so that the initramfs and the booted system agree on who owns the pool.
const HOSTID: [u8; 4] = [0x0c, 0xb1, 0xba, 0x00];
/// Packages of the root besides the kernel and the zfs modules.
const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "initramfs-tools",
    "zfs-initramfs",
    "zfsutils-linux",
];
/// Host packages whose versions decide whether the cached image is right.
const INPUT_PACKAGES: &[&str] = &["zfs-dkms", "zfsutils-linux", "mmdebstrap"];
/// The size of the system disk (sparse).
const DISK_SIZE: u64 = 4 << 30;

/// A built ZFS-on-root system disk and the kernel and initramfs it boots
/// with.
#[derive(Debug, Clone)]
pub struct SystemImage {
    /// The disk (qcow2), never written: boots use overlays.
    pub disk: PathBuf,
    /// The root's kernel.
    pub kernel: PathBuf,
    /// The root's initramfs (with Debian's zfs scripts).
    pub initrd: PathBuf,
}

impl SystemImage {
    /// Returns the cached system image for the current inputs, building it
    /// first if needed (about two minutes: a bookworm root from Debian's
    /// archive with mmdebstrap, put on a pool inside the busybox VM).
    pub fn ensure(say: &mut dyn FnMut(&str)) -> Result<SystemImage, VmError> {
        super::prepare(say)?;
        let (kver, _) = host::zfs_kernel(say)?;
        let mut inputs = host::package_versions(INPUT_PACKAGES)?;
        inputs.push_str(&format!(
            "{FORMAT}\n{kver}\n{JOB}\n{JOB_UNIT}\n{INSTALL}\n{PACKAGES:?}\n{HOSTID:?}\n"
        ));
        let key = hex(&Sha256::digest(inputs.as_bytes()))[..16].to_owned();
        let dir = cache_dir().join(format!("system-{key}"));
        let _lock = super::cache_lock("system", say)?;
        let image = SystemImage {
            disk: dir.join("disk.qcow2"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
        };
        if !(image.disk.exists() && image.kernel.exists() && image.initrd.exists()) {
            say(&format!(
                "building the ZFS-on-root system image for kernel {kver} (about two minutes)"
            ));
            build(&dir, &kver, say)?;
            remove_stale(&dir);
        }
        Ok(image)
    }
}

fn build(dir: &Path, kver: &str, say: &mut dyn FnMut(&str)) -> Result<(), VmError> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)
        .map_err(|source| io(format!("cannot create {}", cache.display()), source))?;
    let work = tempfile::Builder::new()
        .prefix("system-build-")
        .tempdir_in(&cache)
        .map_err(|source| io("cannot create a build directory".into(), source))?;
    let w = work.path();
    let modules = modules_package(w, kver)?;
    for (name, text, mode) in [
        ("kld-job", JOB, 0o755),
        ("kld-job.service", JOB_UNIT, 0o644),
    ] {
        write(&w.join(name), text.as_bytes(), mode)?;
    }
    std::fs::write(w.join("hostid"), HOSTID)
        .map_err(|source| io("cannot write the hostid".into(), source))?;

    say("mmdebstrap: a bookworm root with systemd, the cloud kernel and zfs-initramfs");
    let tar = w.join("root.tar");
    let mut include: Vec<String> = PACKAGES.iter().map(|p| (*p).to_owned()).collect();
    include.push(format!("linux-image-{kver}"));
    let q = |p: &Path| kld_exec::quote(&p.display().to_string()).into_owned();
    Cmd::new("mmdebstrap")
        .args(["--mode=root", "--variant=minbase", "--quiet"])
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg(format!("--include={}", include.join(",")))
        .arg(format!(
            "--setup-hook=mkdir -p \"$1/etc\" && cp {} \"$1/etc/hostid\"",
            q(&w.join("hostid"))
        ))
        // dpkg runs inside the root, where a .deb named by --include is not
        // found: install the modules package once the essential packages are
        // in, before the packages that need it are resolved.
        .arg(format!(
            "--essential-hook=mkdir -p \"$1/tmp/kld\" && cp {} \"$1/tmp/kld/\" \
             && chroot \"$1\" dpkg -i /tmp/kld/kld-zfs-modules.deb && rm -r \"$1/tmp/kld\"",
            q(&modules)
        ))
        .arg(format!(
            "--customize-hook=install -m 755 {} \"$1/usr/local/sbin/kld-job\" \
             && install -m 644 {} \"$1/etc/systemd/system/kld-job.service\" \
             && mkdir -p \"$1/etc/systemd/system/multi-user.target.wants\" \
             && ln -s /etc/systemd/system/kld-job.service \
                \"$1/etc/systemd/system/multi-user.target.wants/kld-job.service\" \
             && echo kld-boot > \"$1/etc/hostname\"",
            q(&w.join("kld-job")),
            q(&w.join("kld-job.service"))
        ))
        .arg("bookworm")
        .arg(&tar)
        .arg(sources()?)
        .run_streaming()?;
    Cmd::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(w)
        .arg(format!("./boot/vmlinuz-{kver}"))
        .arg(format!("./boot/initrd.img-{kver}"))
        .run()?;

    say("putting the root on pool rpool as boot environment rpool/ROOT/a");
    let raw = w.join("disk.raw");
    std::fs::File::create(&raw)
        .and_then(|f| f.set_len(DISK_SIZE))
        .map_err(|source| io(format!("cannot create {}", raw.display()), source))?;
    let run = Vm::new()
        .without_binaries()
        .attach(&raw)
        .attach(&tar)
        .timeout(Duration::from_secs(1200))
        .run(INSTALL, &mut std::io::sink())?;
    if run.exit_code != 0 || !run.output_str().contains("installed") {
        return Err(VmError::Setup(format!(
            "installing the root on the pool failed (exit {}):\n{}",
            run.exit_code,
            run.output_str()
        )));
    }
    let staged = w.join("image");
    std::fs::create_dir_all(&staged)
        .map_err(|source| io("cannot create the image directory".into(), source))?;
    Cmd::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(&raw)
        .arg(staged.join("disk.qcow2"))
        .run()?;
    for (from, to) in [
        (format!("boot/vmlinuz-{kver}"), "vmlinuz"),
        (format!("boot/initrd.img-{kver}"), "initrd.img"),
    ] {
        std::fs::rename(w.join(&from), staged.join(to))
            .map_err(|source| io(format!("cannot move {from}"), source))?;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staged, dir)
        .map_err(|source| io(format!("cannot create {}", dir.display()), source))
}

/// A package that provides `zfs-modules` and carries the modules DKMS built
/// for `kver` on the host (`zfs-initramfs` needs `zfs-modules | zfs-dkms`,
/// and nothing in the archive provides the first). It is installed before
/// the kernel, so it does not depend on it, and indexes the modules only
/// once the kernel's own are there (the kernel's installation indexes them
/// all otherwise).
fn modules_package(work: &Path, kver: &str) -> Result<PathBuf, VmError> {
    let src = PathBuf::from(format!("/lib/modules/{kver}/updates/dkms"));
    let root = work.join("modules-pkg");
    let dest = root.join(format!("lib/modules/{kver}/updates/dkms"));
    std::fs::create_dir_all(&dest)
        .and_then(|()| std::fs::create_dir_all(root.join("DEBIAN")))
        .map_err(|source| io("cannot lay out the modules package".into(), source))?;
    let entries = std::fs::read_dir(&src)
        .map_err(|source| io(format!("cannot list {}", src.display()), source))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "ko") {
            std::fs::copy(&path, dest.join(entry.file_name()))
                .map_err(|source| io(format!("cannot copy {}", path.display()), source))?;
        }
    }
    let version = host::package_versions(&["zfs-dkms"])?;
    let version = version.trim().split('=').nth(1).unwrap_or("0").to_owned();
    let control = format!(
        "Package: kld-zfs-modules\nVersion: {version}\nArchitecture: amd64\n\
         Maintainer: kld tests <root@localhost>\nProvides: zfs-modules\n\
         Description: OpenZFS modules for {kver}, built by the host's DKMS\n"
    );
    write(&root.join("DEBIAN/control"), control.as_bytes(), 0o644)?;
    write(
        &root.join("DEBIAN/postinst"),
        format!(
            "#!/bin/sh\nset -e\nif [ -d /lib/modules/{kver}/kernel ]; then depmod -a {kver}; fi\n"
        )
        .as_bytes(),
        0o755,
    )?;
    let deb = work.join("kld-zfs-modules.deb");
    Cmd::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb)
        .run()?;
    Ok(deb)
}

/// The host's Debian sources (bookworm, its updates and security), which
/// mmdebstrap copies into the root.
fn sources() -> Result<PathBuf, VmError> {
    [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or_else(|| VmError::Setup("the host has no Debian apt sources".into()))
}

fn remove_stale(keep: &Path) {
    for entry in std::fs::read_dir(cache_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if super::is_cached(&name, "system-", "") && path != keep {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), VmError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|source| io(format!("cannot write {}", path.display()), source))
}

/// One ZFS-on-root machine: its own copy-on-write disk over a
/// [`SystemImage`], booted as often as wanted; removed when dropped.
#[derive(Debug)]
pub struct System {
    image: SystemImage,
    scratch: tempfile::TempDir,
    disk: PathBuf,
    binaries: Vec<PathBuf>,
    files: Vec<PathBuf>,
    timeout: Duration,
}

impl System {
    /// A fresh machine (its disk as the image left it), with kld's binaries
    /// built in release mode for its `PATH`.
    pub fn new(image: &SystemImage) -> Result<System, VmError> {
        let runs = cache_dir().join("runs");
        std::fs::create_dir_all(&runs)
            .map_err(|source| io(format!("cannot create {}", runs.display()), source))?;
        let scratch = tempfile::Builder::new()
            .prefix("system-")
            .tempdir_in(&runs)
            .map_err(|source| io("cannot create the run directory".into(), source))?;
        let disk = scratch.path().join("disk.qcow2");
        Cmd::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&image.disk)
            .arg(&disk)
            .run()?;
        Ok(System {
            image: image.clone(),
            scratch,
            disk,
            binaries: build_binaries()?,
            files: Vec::new(),
            timeout: Duration::from_secs(900),
        })
    }

    /// Puts a file on the job disk of every boot: the script finds it as
    /// `/run/kld-job/files/NAME` (e.g. a package to install).
    pub fn with_file(mut self, path: &Path) -> Self {
        self.files.push(path.to_owned());
        self
    }

    /// How long one boot may take, script included.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Boots the machine, runs `script` with `sh -e` as root once systemd
    /// has started everything (the kld binaries on `PATH`), streams its
    /// output to `sink`, and powers off.
    pub fn boot(&self, script: &str, sink: &mut dyn std::io::Write) -> Result<Run, VmError> {
        let nonce = nonce()?;
        let job = self.job_disk(script, &nonce)?;
        let console = self.scratch.path().join("console.log");
        let mut cmd = qemu(
            2048,
            &self.image.kernel,
            &self.image.initrd,
            "console=ttyS0 root=zfs:AUTO boot=zfs panic=-1 oops=panic",
            &console,
        );
        cmd.arg("-drive")
            .arg(format!(
                "file={},format=qcow2,if=virtio,cache=unsafe",
                self.disk.display()
            ))
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio,readonly=on",
                job.display()
            ));
        watch(cmd, &console, &nonce, self.timeout, sink)
    }

    /// An ext4 image holding the script, its environment, the binaries and
    /// the files.
    fn job_disk(&self, script: &str, nonce: &str) -> Result<PathBuf, VmError> {
        let dir = self.scratch.path().join("job");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin"))
            .map_err(|source| io("cannot lay out the job disk".into(), source))?;
        write(
            &dir.join("env"),
            format!("KLD_NONCE={nonce}\n").as_bytes(),
            0o644,
        )?;
        write(&dir.join("script.sh"), script.as_bytes(), 0o755)?;
        let mut size: u64 = 32 << 20;
        for bin in &self.binaries {
            let name = bin.file_name().expect("binaries are files");
            std::fs::copy(bin, dir.join("bin").join(name))
                .map_err(|source| io(format!("cannot copy {}", bin.display()), source))?;
            size += std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0) * 2;
        }
        for file in &self.files {
            let name = file.file_name().expect("job files are files");
            let dest = dir.join("files").join(name);
            std::fs::create_dir_all(dir.join("files"))
                .and_then(|()| std::fs::copy(file, &dest))
                .map_err(|source| io(format!("cannot copy {}", file.display()), source))?;
            size += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) * 2;
        }
        let img = self.scratch.path().join("job.img");
        let _ = std::fs::remove_file(&img);
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(size))
            .map_err(|source| io(format!("cannot create {}", img.display()), source))?;
        Cmd::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&dir)
            .arg(&img)
            .run()?;
        Ok(img)
    }
}
