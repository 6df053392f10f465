//! The package's relations: the shared libraries the binaries link
//! (`dpkg-shlibdeps`) and the programs they run ([`TOOLS`]).

use std::path::Path;

use anyhow::{Context, Result};
use kld_exec::Cmd;

/// A control file relation field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Without it the binary cannot do its job at all.
    Depends,
    /// Needed by most uses (apt installs it unless told not to).
    Recommends,
    /// Needed by some uses only.
    Suggests,
}

/// The programs each binary runs, as the Debian packages that carry them.
/// A binary's rows count only when the binary is in the package, so a new
/// binary adds its rows here and nothing else changes.
pub const TOOLS: &[(&str, Field, &str)] = &[
    ("ksnap", Field::Depends, "zfsutils-linux"),
    ("kdir", Field::Depends, "zfsutils-linux"),
    ("kdf", Field::Depends, "zfsutils-linux"),
    ("kbe", Field::Depends, "zfsutils-linux"),
    // kbe mount: mount -t zfs.
    ("kbe", Field::Depends, "mount"),
    // knft renders and loads rulesets with nft; so does kld-nft.service.
    ("knft", Field::Recommends, "nftables"),
    // kdarksite verifies upstream and its own signatures with gpgv and
    // reads and writes .xz indices; it signs with gpg.
    ("kdarksite", Field::Recommends, "gpgv"),
    ("kdarksite", Field::Recommends, "xz-utils"),
    ("kdarksite", Field::Suggests, "gnupg"),
    ("kdarksite", Field::Suggests, "debian-archive-keyring"),
    // kwg up starts wireguard-go where the kernel has no WireGuard, and
    // sets DNS through resolvconf when a file names DNS servers.
    ("kwg", Field::Suggests, "wireguard-go"),
    ("kwg", Field::Suggests, "resolvconf"),
    // kst reads pools and snapshots with zfs and zpool; its disks check
    // reads SMART with smartctl (skipped when missing).
    ("kst", Field::Depends, "zfsutils-linux"),
    ("kst", Field::Recommends, "smartmontools"),
    // kst.timer writes the textfile that node_exporter collects.
    ("kst", Field::Suggests, "prometheus-node-exporter"),
    // kseal imports, mounts and exports a ZFS system disk's pool with zpool
    // and zfs (a mounted tree needs neither).
    ("kseal", Field::Recommends, "zfsutils-linux"),
    // kexport converts, checks and compares with qemu-img; it seals a ZFS
    // disk's copy with zpool and zfs (not with --no-seal) and uploads with
    // ssh and scp (only with --upload). kld-ssh-hostkeys.service (kseal's
    // first-boot unit, shipped enabled) runs ssh-keygen. Like nftables for
    // knft, qemu-utils serves one binary of the package: a host that never
    // exports (most of them) need not carry qemu, so it is recommended.
    ("kexport", Field::Recommends, "qemu-utils"),
    ("kexport", Field::Recommends, "zfsutils-linux"),
    ("kexport", Field::Recommends, "openssh-client"),
];

/// The relations of the package: each field's packages, in order, without
/// repeats.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Relations {
    /// `Depends`.
    pub depends: Vec<String>,
    /// `Recommends`.
    pub recommends: Vec<String>,
    /// `Suggests`.
    pub suggests: Vec<String>,
}

/// Merges the shared-library dependencies with the tools of `binaries`.
pub fn relations(shlibs: &[String], binaries: &[String]) -> Relations {
    let mut r = Relations {
        depends: shlibs.to_vec(),
        ..Relations::default()
    };
    for (bin, field, package) in TOOLS {
        if !binaries.iter().any(|b| b == bin) {
            continue;
        }
        let list = match field {
            Field::Depends => &mut r.depends,
            Field::Recommends => &mut r.recommends,
            Field::Suggests => &mut r.suggests,
        };
        if !list.iter().any(|p| p == package) {
            list.push((*package).to_owned());
        }
    }
    // A package both depended on and recommended is just depended on.
    let depends = r.depends.clone();
    r.recommends.retain(|p| !depends.contains(p));
    r.suggests
        .retain(|p| !depends.contains(p) && !r.recommends.contains(p));
    r
}

/// Runs `dpkg-shlibdeps` over the binaries staged in `work/debian/kld/usr/bin`
/// and returns its `shlibs:Depends` entries.
pub fn shlibs(work: &Path, binaries: &[String]) -> Result<Vec<String>> {
    std::fs::write(
        work.join("debian/control"),
        "Source: kld\n\nPackage: kld\nArchitecture: amd64\n",
    )
    .context("cannot write debian/control for dpkg-shlibdeps")?;
    let out = Cmd::new("dpkg-shlibdeps")
        .arg("-O")
        .args(binaries.iter().map(|b| format!("debian/kld/usr/bin/{b}")))
        .current_dir(work)
        .run()
        .context("computing the shared-library dependencies")?;
    let _ = std::fs::remove_file(work.join("debian/control"));
    Ok(parse_shlibs(&out.stdout_str()))
}

/// Reads `shlibs:Depends=libc6 (>= 2.34), libgcc-s1 (>= 4.2)`.
fn parse_shlibs(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("shlibs:Depends="))
        .flat_map(|l| l.split(','))
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dpkg_shlibdeps_output() {
        let out = "shlibs:Depends=libc6 (>= 2.34), libzfs4linux (>= 0.8.2)\n";
        assert_eq!(
            parse_shlibs(out),
            ["libc6 (>= 2.34)", "libzfs4linux (>= 0.8.2)"]
        );
        assert!(parse_shlibs("").is_empty());
    }

    #[test]
    fn tools_count_only_for_binaries_in_the_package() {
        let shlibs = vec!["libc6 (>= 2.34)".to_owned()];
        let r = relations(&shlibs, &["ksnap".into(), "kbe".into()]);
        assert_eq!(r.depends, ["libc6 (>= 2.34)", "zfsutils-linux", "mount"]);
        assert!(r.recommends.is_empty() && r.suggests.is_empty());
        let r = relations(&shlibs, &["knft".into(), "kdarksite".into()]);
        assert_eq!(r.recommends, ["nftables", "gpgv", "xz-utils"]);
        assert_eq!(r.suggests, ["gnupg", "debian-archive-keyring"]);
    }
}
