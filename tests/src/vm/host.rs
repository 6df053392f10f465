//! Preparing the host: Debian's contrib component, the packages the VM and
//! the host tests need, and the zfs module built for the VM's kernel.
//! Everything here is idempotent and re-runnable after an interruption.

use std::path::{Path, PathBuf};

use kld_exec::Cmd;

use super::VmError;

/// Debian packages the harness and the host test tier need. `qemu-utils` is
/// pinned to the version of `qemu-system-x86` at install time (a newer
/// qemu-utils from backports breaks bookworm's qemu-system-common).
pub const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-utils",
    // Not busybox-static: its shell runs its own applets before anything on
    // PATH, so a script's `ip netns` would reach busybox's `ip`.
    "busybox",
    "cpio",
    "kmod",
    "linux-image-cloud-amd64",
    "linux-headers-cloud-amd64",
    "zfs-dkms",
    "zfsutils-linux",
    // zinject (fault injection) ships only in zfs-test.
    "zfs-test",
    // wg in the VM and, on the host, the oracle for kld-wg's keys and
    // files (wg genkey/pubkey/genpsk, wg-quick strip, wg setconf).
    "wireguard-tools",
    // kld-wg's host tier and bench: userspace WireGuard in namespaces (the
    // host kernel has none).
    "wireguard-go",
    // nft and ip for the VM and the host tier's network namespaces;
    // systemd-analyze checks kld-nft's boot unit.
    "nftables",
    "iproute2",
    "systemd",
    // kld-zfs links libzfs_core through libzetta.
    "libzfslinux-dev",
    "pkg-config",
    // promtool (in prometheus) checks kst's Prometheus text.
    "prometheus",
    // kdarksite: gpg signs a darksite and gpgv checks signatures against
    // Debian's archive keyring; xz compresses indices; mmdebstrap is the
    // offline install that proves a darksite complete.
    "gnupg",
    "gpgv",
    "debian-archive-keyring",
    "xz-utils",
    // The boot tier builds a ZFS-on-root Debian system with it, too; the
    // seal tier builds the Debian root it seals with it.
    "mmdebstrap",
    // kexport uploads with scp and checks with ssh; the seal tier runs an
    // sshd in a network namespace to upload to.
    "openssh-client",
    "openssh-server",
    // cargo xtask dist: dpkg-deb and dpkg-shlibdeps (dpkg-dev), strip
    // (binutils); its tests check the package with lintian.
    "dpkg-dev",
    "binutils",
    "lintian",
];

const SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const SOURCES_LIST: &str = "/etc/apt/sources.list";

/// Installs whatever of [`HOST_PACKAGES`] (and `extra`) is missing, saying
/// what it installs through `say`; prints nothing when all are present.
pub fn ensure_packages(extra: &[&str], say: &mut dyn FnMut(&str)) -> Result<(), VmError> {
    let wanted: Vec<&str> = HOST_PACKAGES.iter().chain(extra).copied().collect();
    repair_interrupted_dpkg(say)?;
    let missing: Vec<&str> = wanted.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(VmError::Setup(format!(
            "these Debian packages are missing and installing them needs root: {}",
            missing.join(" ")
        )));
    }
    if enable_contrib()? {
        say("enabled Debian's contrib component (zfs-dkms lives there)");
    }
    say("apt-get update");
    apt(&["update", "-q"])?;
    let mut args: Vec<String> = missing
        .iter()
        .filter(|p| !p.starts_with("qemu-"))
        .map(|p| (*p).to_owned())
        .collect();
    if missing.iter().any(|p| p.starts_with("qemu-")) {
        // Both together, qemu-utils at qemu-system-x86's version.
        let qemu = candidate("qemu-system-x86")?;
        args.push("qemu-system-x86".to_owned());
        args.push(format!("qemu-utils={qemu}"));
    }
    say(&format!("installing {}", args.join(" ")));
    let mut cmd = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--allow-downgrades",
    ];
    cmd.extend(args.iter().map(String::as_str));
    apt(&cmd)
}

/// Whether a Debian package is installed and configured.
pub fn installed(package: &str) -> bool {
    Cmd::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}", package])
        .run()
        .map(|out| out.stdout_str().starts_with("ii"))
        .unwrap_or(false)
}

/// The version of each package, `name=version` a line, for cache keys.
pub fn package_versions(packages: &[&str]) -> Result<String, VmError> {
    let out = Cmd::new("dpkg-query")
        .args(["-W", "-f", "${Package}=${Version}\n"])
        .args(packages)
        .run()?;
    Ok(out.stdout_str())
}

/// The newest installed kernel that has a zfs module, building the module
/// with DKMS if a kernel has headers but no module yet (an interrupted
/// set-up). Returns the kernel release and its image.
pub fn zfs_kernel(say: &mut dyn FnMut(&str)) -> Result<(String, PathBuf), VmError> {
    if let Some(found) = newest_kernel_with_zfs() {
        return Ok(found);
    }
    for kver in cloud_kernels() {
        if Path::new(&format!("/lib/modules/{kver}/build")).exists() {
            say(&format!(
                "building the zfs module for {kver} (about 2.5 minutes)"
            ));
            Cmd::new("dkms")
                .args(["autoinstall", "-k", &kver])
                .run_streaming()?;
        }
    }
    newest_kernel_with_zfs().ok_or_else(|| {
        VmError::Setup(
            "no installed kernel has a zfs module: install linux-image-cloud-amd64, \
             linux-headers-cloud-amd64 and zfs-dkms (`cargo xtask vm setup` does)"
                .into(),
        )
    })
}

fn newest_kernel_with_zfs() -> Option<(String, PathBuf)> {
    let mut kernels: Vec<String> = cloud_kernels()
        .into_iter()
        .filter(|k| {
            Path::new(&format!("/lib/modules/{k}/updates/dkms/zfs.ko")).exists()
                && Path::new(&format!("/boot/vmlinuz-{k}")).exists()
        })
        .collect();
    kernels.sort_by_key(|k| version_key(k));
    let kver = kernels.pop()?;
    let image = PathBuf::from(format!("/boot/vmlinuz-{kver}"));
    Some((kver, image))
}

fn cloud_kernels() -> Vec<String> {
    std::fs::read_dir("/lib/modules")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|k| k.ends_with("-cloud-amd64"))
        .collect()
}

/// Orders kernel releases like `6.1.0-56-cloud-amd64` numerically.
fn version_key(kver: &str) -> Vec<u64> {
    kver.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn repair_interrupted_dpkg(say: &mut dyn FnMut(&str)) -> Result<(), VmError> {
    let audit = Cmd::new("dpkg").arg("--audit").run();
    if matches!(&audit, Ok(out) if !out.stdout.is_empty()) && is_root() {
        say("finishing an interrupted package installation (dpkg --configure -a)");
        Cmd::new("dpkg")
            .args(["--configure", "-a"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run_streaming()?;
    }
    Ok(())
}

/// Adds `contrib` to every Debian source that lacks it. Returns whether a
/// file changed.
fn enable_contrib() -> Result<bool, VmError> {
    let mut changed = false;
    if let Ok(text) = std::fs::read_to_string(SOURCES) {
        let new = add_contrib_deb822(&text);
        if new != text {
            write_file(SOURCES, &new)?;
            changed = true;
        }
    }
    if let Ok(text) = std::fs::read_to_string(SOURCES_LIST) {
        let new = add_contrib_one_line(&text);
        if new != text {
            write_file(SOURCES_LIST, &new)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Adds `contrib` to each `Components:` field of a deb822 sources file.
pub fn add_contrib_deb822(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match body.strip_prefix("Components:") {
            Some(value) if !value.split_whitespace().any(|c| c == "contrib") => {
                out.push_str(body.trim_end());
                out.push_str(" contrib");
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Adds `contrib` to each `deb` line of a one-line-style `sources.list` that
/// names `main` and lacks it.
pub fn add_contrib_one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let words: Vec<&str> = body.split_whitespace().collect();
        let is_deb = words
            .first()
            .is_some_and(|w| *w == "deb" || *w == "deb-src");
        if is_deb && words.contains(&"main") && !words.contains(&"contrib") {
            out.push_str(body.trim_end());
            out.push_str(" contrib");
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

fn write_file(path: &str, text: &str) -> Result<(), VmError> {
    let tmp = format!("{path}.kld-tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| VmError::Setup(format!("cannot update {path}: {e}")))
}

fn candidate(package: &str) -> Result<String, VmError> {
    let out = Cmd::new("apt-cache").args(["policy", package]).run()?;
    out.stdout_str()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Candidate:")
                .map(|v| v.trim().to_owned())
        })
        .filter(|v| v != "(none)")
        .ok_or_else(|| VmError::Setup(format!("apt knows no installable version of {package}")))
}

fn apt(args: &[&str]) -> Result<(), VmError> {
    Cmd::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run_streaming()
        .map_err(VmError::from)
}

fn is_root() -> bool {
    Cmd::new("id")
        .arg("-u")
        .run()
        .map(|o| o.stdout_str().trim() == "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrib_is_added_once_to_deb822() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n\n\
                    Types: deb\nComponents: main contrib\n";
        let new = add_contrib_deb822(text);
        assert_eq!(new.matches("contrib").count(), 2);
        assert!(new.contains("Components: main contrib\n\nTypes"));
        assert_eq!(add_contrib_deb822(&new), new);
    }

    #[test]
    fn contrib_is_added_to_one_line_sources() {
        let text = "# deb http://x bookworm main\ndeb http://x bookworm main\ndeb http://y bookworm main contrib\n";
        let new = add_contrib_one_line(text);
        assert_eq!(new, "# deb http://x bookworm main\ndeb http://x bookworm main contrib\ndeb http://y bookworm main contrib\n");
        assert_eq!(add_contrib_one_line(&new), new);
    }

    #[test]
    fn kernel_versions_order_numerically() {
        let mut k = vec![
            "6.1.0-9-cloud-amd64",
            "6.1.0-56-cloud-amd64",
            "6.1.0-10-cloud-amd64",
        ];
        k.sort_by_key(|v| version_key(v));
        assert_eq!(
            k,
            [
                "6.1.0-9-cloud-amd64",
                "6.1.0-10-cloud-amd64",
                "6.1.0-56-cloud-amd64"
            ]
        );
    }
}
