//! The cached VM base: the cloud kernel and an initramfs holding busybox,
//! the OpenZFS, WireGuard, nftables and iproute2 userland with their
//! libraries, and the kernel modules for zfs, WireGuard, nf_tables, veth and
//! virtio. It is rebuilt only when an input changes (package versions, the
//! init script, this builder).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kld_exec::Cmd;
use sha2::{Digest, Sha256};

use super::cpio::Archive;
use super::libs::libraries_of;
use super::modules::ModuleDeps;
use super::{host, VmError};

/// The init program of the VM (busybox `sh`).
const INIT: &str = include_str!("init.sh");
/// Run by busybox `uevent` for each kernel event: records block devices
/// where libudev looks, which `zpool create` on a whole disk waits for.
const UDEV_RECORD: &str = include_str!("udev-record.sh");
/// Bumped when the layout of the image changes in a way the inputs miss.
const FORMAT: &str = "kld-vm-image-3";

/// Userland programs copied from the host, with where they go in the VM.
const TOOLS: &[&str] = &[
    "zfs", "zpool", "zdb", "zinject", "zstream", "wg", "nft", "ip", "kmod", "flock",
    // kexport converts and verifies with qemu-img; kseal attaches image
    // files with util-linux's losetup (busybox's lacks --show).
    "qemu-img", "losetup",
];
/// Names under which `kmod` acts as each module tool.
const KMOD_LINKS: &[&str] = &["modprobe", "insmod", "rmmod", "lsmod", "depmod", "modinfo"];
/// Modules the VM carries, with everything they need.
const MODULES: &[&str] = &[
    "zfs",
    "wireguard",
    "virtio_pci",
    "virtio_blk",
    "veth",
    "tun",
    "dummy",
    "loop",
];
/// Module directories carried whole (nft loads expressions on demand).
const MODULE_DIRS: &[&str] = &[
    "kernel/net/netfilter/",
    "kernel/net/ipv4/netfilter/",
    "kernel/net/ipv6/netfilter/",
    "kernel/net/bridge/netfilter/",
];
/// Packages whose versions decide whether the cached image is still right.
const INPUT_PACKAGES: &[&str] = &[
    "busybox",
    "zfsutils-linux",
    "zfs-dkms",
    "zfs-test",
    "wireguard-tools",
    "nftables",
    "iproute2",
    "kmod",
    "qemu-utils",
    "util-linux",
];

/// A built VM base.
#[derive(Debug, Clone)]
pub struct Image {
    /// The kernel release, e.g. `6.1.0-56-cloud-amd64`.
    pub kernel_release: String,
    /// The kernel image to boot.
    pub kernel: PathBuf,
    /// The base initramfs (uncompressed newc cpio).
    pub initrd: PathBuf,
    /// Every path in the base initramfs, so per-run archives skip them.
    pub paths: BTreeSet<String>,
}

/// Returns the cached image for the current inputs, building it first if
/// needed.
pub fn ensure(cache: &Path, say: &mut dyn FnMut(&str)) -> Result<Image, VmError> {
    let (kver, kernel) = host::zfs_kernel(say)?;
    let mut inputs = host::package_versions(INPUT_PACKAGES)?;
    inputs.push_str(&format!("{FORMAT}\n{kver}\n{INIT}\n{UDEV_RECORD}\n"));
    inputs.push_str(&file_identity(&kernel)?);
    let key = hex(&Sha256::digest(inputs.as_bytes()))[..16].to_owned();
    let dir = cache.join(format!("image-{key}"));
    let initrd = dir.join("initrd.cpio");
    let manifest = dir.join("paths");
    if !(initrd.exists() && manifest.exists()) {
        say(&format!("assembling the VM image for kernel {kver}"));
        build(&dir, &kver, &initrd, &manifest)?;
        remove_stale(cache, &dir);
    }
    let paths = std::fs::read_to_string(&manifest)
        .map_err(|e| VmError::Setup(format!("cannot read {}: {e}", manifest.display())))?
        .lines()
        .map(str::to_owned)
        .collect();
    Ok(Image {
        kernel_release: kver,
        kernel,
        initrd,
        paths,
    })
}

fn build(dir: &Path, kver: &str, initrd: &Path, manifest: &Path) -> Result<(), VmError> {
    let mut archive = Archive::new();
    archive.file("init", 0o755, INIT.as_bytes());
    archive.file("sbin/kld-udev-record", 0o755, UDEV_RECORD.as_bytes());
    for d in [
        "proc", "sys", "dev", "run", "tmp", "root", "mnt", "etc/zfs", "var/tmp",
    ] {
        archive.dir(d);
    }
    archive.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    archive.file("etc/group", 0o644, b"root:x:0:\n");
    archive.file(
        "etc/modprobe.d/kld.conf",
        0o644,
        b"options spl spl_panic_halt=1\n",
    );
    archive.symlink("etc/mtab", "/proc/self/mounts");

    let mut libs = BTreeSet::new();
    for tool in TOOLS {
        let path = find_program(tool)?;
        archive.file(&format!("usr/sbin/{tool}"), 0o755, &read(&path)?);
        libs.extend(libraries_of(&path.to_string_lossy()).map_err(VmError::Setup)?);
    }
    for link in KMOD_LINKS {
        archive.symlink(&format!("sbin/{link}"), "/usr/sbin/kmod");
    }
    for lib in &libs {
        archive.file(lib, 0o755, &read(Path::new(lib))?);
    }

    archive.file("bin/busybox", 0o755, &read(Path::new("/bin/busybox"))?);
    for lib in libraries_of("/bin/busybox").map_err(VmError::Setup)? {
        archive.file(&lib, 0o755, &read(Path::new(&lib))?);
    }
    let applets = Cmd::new("/bin/busybox")
        .arg("--list-full")
        .run()?
        .stdout_str();
    for applet in applets.lines() {
        let name = applet.rsplit('/').next().unwrap_or(applet);
        // The real tools win over busybox's smaller versions of them.
        if TOOLS.contains(&name) || KMOD_LINKS.contains(&name) {
            continue;
        }
        archive.symlink(applet, "/bin/busybox");
    }

    add_modules(&mut archive, kver)?;

    std::fs::create_dir_all(dir)
        .map_err(|e| VmError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    let paths = archive_paths(&archive);
    write_atomic(manifest, paths.as_bytes())?;
    write_atomic(initrd, &archive.finish())
}

/// Copies the chosen modules into a scratch module tree, lets the host's
/// `depmod` index it (so `modprobe` and the kernel's on-demand loading work
/// inside the VM), and adds the tree to the archive.
fn add_modules(archive: &mut Archive, kver: &str) -> Result<(), VmError> {
    let root = PathBuf::from(format!("/lib/modules/{kver}"));
    let dep_text = std::fs::read_to_string(root.join("modules.dep"))
        .map_err(|e| VmError::Setup(format!("cannot read modules.dep of {kver}: {e}")))?;
    let deps = ModuleDeps::parse(&dep_text).map_err(VmError::Setup)?;
    let mut roots = Vec::new();
    for name in MODULES {
        roots.push(
            deps.find(name)
                .ok_or_else(|| VmError::Setup(format!("kernel {kver} has no {name} module")))?,
        );
    }
    for dir in MODULE_DIRS {
        roots.extend(deps.under(dir));
    }
    let chosen = deps.closure(roots);

    let scratch = tempfile::tempdir()
        .map_err(|e| VmError::Setup(format!("cannot make a scratch dir: {e}")))?;
    let tree = scratch.path().join("lib/modules").join(kver);
    for module in &chosen {
        copy_into(&root.join(module), &tree.join(module))?;
    }
    for meta in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        if root.join(meta).exists() {
            copy_into(&root.join(meta), &tree.join(meta))?;
        }
    }
    Cmd::new("depmod")
        .args(["-b"])
        .arg(scratch.path())
        .arg(kver)
        .run()?;
    add_tree(archive, scratch.path(), &tree)
}

fn add_tree(archive: &mut Archive, base: &Path, dir: &Path) -> Result<(), VmError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| VmError::Setup(format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry.map_err(|e| VmError::Setup(e.to_string()))?.path();
        if path.is_dir() {
            add_tree(archive, base, &path)?;
        } else {
            let rel = path
                .strip_prefix(base)
                .expect("walked from base")
                .to_string_lossy()
                .into_owned();
            archive.file(&rel, 0o644, &read(&path)?);
        }
    }
    Ok(())
}

fn archive_paths(archive: &Archive) -> String {
    let mut text = String::new();
    for path in archive.paths() {
        text.push_str(path);
        text.push('\n');
    }
    text
}

/// Finds a program in the system directories (not `PATH`, which may hold
/// anything).
pub fn find_program(name: &str) -> Result<PathBuf, VmError> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            VmError::Setup(format!(
                "{name} is not installed (`cargo xtask vm setup` installs it)"
            ))
        })
}

fn file_identity(path: &Path) -> Result<String, VmError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| VmError::Setup(format!("cannot read {}: {e}", path.display())))?;
    Ok(format!("{} {}\n", path.display(), meta.len()))
}

fn read(path: &Path) -> Result<Vec<u8>, VmError> {
    std::fs::read(path).map_err(|e| VmError::Setup(format!("cannot read {}: {e}", path.display())))
}

fn copy_into(from: &Path, to: &Path) -> Result<(), VmError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| VmError::Setup(e.to_string()))?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| VmError::Setup(format!("cannot copy {}: {e}", from.display())))
}

/// Writes a file through a temporary name in the same directory, so a
/// reader never sees half of it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VmError> {
    let tmp = path.with_extension("kld-tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| VmError::Setup(format!("cannot write {}: {e}", path.display())))
}

/// Removes images built from older inputs.
fn remove_stale(cache: &Path, keep: &Path) {
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        let path = entry.path();
        let is_image = super::is_cached(&entry.file_name().to_string_lossy(), "image-", "");
        if is_image && path != keep {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
