//! The package tier's harness: the Debian package `cargo xtask dist`
//! builds, and fresh bookworm roots to install it into.
//!
//! A [`Root`] is a minimal bookworm (mmdebstrap, `main` and `contrib`, plus
//! man-db, bash-completion and systemd to check pages, completions and
//! units, and a package that provides `zfs-modules`, as the kernel of a
//! ZFS host does: otherwise zfsutils-linux's recommendation of zfs-dkms
//! would build the module for a kernel the root does not run), built once
//! from Debian's archive and cached as a tarball under
//! the VM cache, keyed by a hash of what goes into it; each [`Root::fresh`]
//! unpacks a private copy. Commands run in it with `chroot` inside a
//! private mount namespace (with `/proc`, `/sys` and `/dev`), so nothing
//! of it outlives the command; services are never started in it.
//!
//! ```no_run
//! use kld_tests::dist::{package, Root};
//!
//! let deb = package()?;
//! let root = Root::fresh(&mut |m| eprintln!("{m}"))?;
//! root.install(&deb)?;
//! println!("{}", root.run("ksnap --version")?);
//! # Ok::<(), kld_tests::vm::VmError>(())
//! ```

use std::path::{Path, PathBuf};

use kld_exec::Cmd;
use sha2::{Digest, Sha256};

use crate::vm::{self, VmError};

/// Bumped when the root changes in a way its inputs miss.
const FORMAT: &str = "kld-dist-root-2";
/// What the root has besides minbase: what reads man pages, what loads
/// bash completions, what checks units.
const PACKAGES: &[&str] = &["man-db", "bash-completion", "systemd"];

fn err(message: impl std::fmt::Display) -> VmError {
    VmError::Setup(format!("package tier: {message}"))
}

/// Builds the package with `cargo xtask dist` (into `target/dist`) and
/// returns its path.
pub fn package() -> Result<PathBuf, VmError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Cmd::new(cargo)
        .args(["run", "--quiet", "-p", "xtask", "--", "dist"])
        .current_dir(vm::workspace_root())
        .run()?;
    let deb = out.stdout_str().lines().last().map(PathBuf::from);
    deb.filter(|p| p.is_file()).ok_or_else(|| {
        err(format!(
            "cargo xtask dist named no package: {}",
            out.stdout_str()
        ))
    })
}

/// A private bookworm root, removed when dropped.
#[derive(Debug)]
pub struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    /// Unpacks a fresh root from the cached tarball, building the tarball
    /// first if needed (about a minute, from Debian's archive).
    pub fn fresh(say: &mut dyn FnMut(&str)) -> Result<Root, VmError> {
        vm::host::ensure_packages(&[], say)?;
        let tar = tarball(say)?;
        let runs = vm::cache_dir().join("runs");
        std::fs::create_dir_all(&runs).map_err(|e| err(format!("{}: {e}", runs.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("dist-root-")
            .tempdir_in(&runs)
            .map_err(|e| err(format!("cannot create a root: {e}")))?;
        Cmd::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.path())
            .run()?;
        let root = Root { dir };
        // Package scripts may not start services here; apt reaches the
        // archive with the host's resolver.
        std::fs::write(
            root.path().join("usr/sbin/policy-rc.d"),
            "#!/bin/sh\nexit 101\n",
        )
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                root.path().join("usr/sbin/policy-rc.d"),
                std::fs::Permissions::from_mode(0o755),
            )
        })
        .map_err(|e| err(format!("cannot write policy-rc.d: {e}")))?;
        std::fs::copy("/etc/resolv.conf", root.path().join("etc/resolv.conf"))
            .map_err(|e| err(format!("cannot copy /etc/resolv.conf: {e}")))?;
        Ok(root)
    }

    /// The root's directory on the host.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `script` with `sh -e` inside the root and returns its standard
    /// output; fails with its output when it fails.
    pub fn run(&self, script: &str) -> Result<String, VmError> {
        let wrapper = "set -e; r=$1; shift; \
            mount -t proc proc \"$r/proc\"; mount --rbind /sys \"$r/sys\"; \
            mount --rbind /dev \"$r/dev\"; \
            exec chroot \"$r\" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -ec \"$1\"";
        let out = Cmd::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--fork",
                "sh",
                "-c",
                wrapper,
                "sh",
            ])
            .arg(self.path())
            .arg(script)
            .run()?;
        Ok(out.stdout_str())
    }

    /// Installs a package the way an admin does, `apt-get install ./FILE`,
    /// its dependencies (and recommendations) from Debian's archive.
    pub fn install(&self, deb: &Path) -> Result<String, VmError> {
        let name = deb
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| err(format!("{} is not a package file", deb.display())))?;
        std::fs::copy(deb, self.path().join("tmp").join(name))
            .map_err(|e| err(format!("cannot copy {}: {e}", deb.display())))?;
        self.run(&format!(
            "apt-get update -q >/dev/null\ncd /tmp\napt-get install -y -q ./{name}\nrm ./{name}"
        ))
    }
}

/// The cached root tarball for the current inputs.
fn tarball(say: &mut dyn FnMut(&str)) -> Result<PathBuf, VmError> {
    let mut inputs = vm::host::package_versions(&["mmdebstrap"])?;
    inputs.push_str(&format!("{FORMAT}\n{PACKAGES:?}\n"));
    let key = hex(&Sha256::digest(inputs.as_bytes()));
    let cache = vm::cache_dir();
    let tar = cache.join(format!("dist-root-{}.tar", &key[..16]));
    let _lock = vm::cache_lock("dist-root", say)?;
    if tar.is_file() {
        return Ok(tar);
    }
    say("mmdebstrap: a minimal bookworm root with main and contrib (about a minute)");
    std::fs::create_dir_all(&cache).map_err(|e| err(format!("{}: {e}", cache.display())))?;
    let partial = cache.join(format!("dist-root-{}.tar.partial", &key[..16]));
    let work = tempfile::tempdir_in(&cache).map_err(|e| err(format!("a build directory: {e}")))?;
    let modules = modules_provider(work.path())?;
    let q = |p: &Path| kld_exec::quote(&p.display().to_string()).into_owned();
    Cmd::new("mmdebstrap")
        .args(["--mode=root", "--variant=minbase", "--quiet"])
        .arg("--components=main,contrib")
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg(format!("--include={}", PACKAGES.join(",")))
        // Recommends stay off while the root is made, not afterwards: the
        // package is then installed as apt installs it on a real host.
        .arg("--customize-hook=rm -f \"$1/etc/apt/apt.conf.d/99mmdebstrap\"")
        .arg(format!(
            "--customize-hook=cp {} \"$1/tmp/m.deb\" && chroot \"$1\" dpkg -i /tmp/m.deb \
             && rm \"$1/tmp/m.deb\"",
            q(&modules)
        ))
        .arg("--format=tar")
        .arg("bookworm")
        .arg(&partial)
        .arg("http://deb.debian.org/debian")
        .run_streaming()?;
    std::fs::rename(&partial, &tar).map_err(|e| err(format!("{}: {e}", tar.display())))?;
    for entry in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if vm::is_cached(&name, "dist-root-", ".tar") && entry.path() != tar {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(tar)
}

/// A package that provides `zfs-modules` and holds nothing: the root stands
/// for a ZFS host, whose kernel has the modules.
fn modules_provider(work: &Path) -> Result<PathBuf, VmError> {
    let pkg = work.join("zfs-modules");
    std::fs::create_dir_all(pkg.join("DEBIAN"))
        .and_then(|()| {
            std::fs::write(
                pkg.join("DEBIAN/control"),
                "Package: kld-test-zfs-modules\nVersion: 1\nArchitecture: all\n\
                 Maintainer: kld tests <root@localhost>\nProvides: zfs-modules\n\
                 Description: stands for the ZFS modules of a ZFS host's kernel\n",
            )
        })
        .map_err(|e| err(format!("cannot lay out the zfs-modules package: {e}")))?;
    let deb = work.join("zfs-modules.deb");
    Cmd::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .run()?;
    Ok(deb)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
