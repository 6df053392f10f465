//! What each operation changes in a tree: the planning half of a seal.
//! Nothing here writes; [`plan`] looks at the tree and lists exact steps.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cloudinit;
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::plan::{Action, Plan, Step};
use crate::secrets;
use crate::tree::{Entry, Tree};

/// The unit that creates missing SSH host keys at boot, for distributions
/// without one (Debian and Ubuntu rely on the package's postinst).
pub const SSH_HOSTKEYS_UNIT: &str = include_str!("../systemd/kld-ssh-hostkeys.service");
/// Its file name.
pub const SSH_HOSTKEYS_UNIT_NAME: &str = "kld-ssh-hostkeys.service";

/// Units of other distributions that already create host keys at boot.
const DISTRO_KEYGEN_UNITS: &[&str] = &[
    "sshd-keygen.service",
    "sshd-keygen@.service",
    "sshd-keygen.target",
    "ssh-keygen.service",
];
/// Where packaged units live.
const UNIT_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system"];

/// Shell and REPL histories, relative to a home directory.
pub(crate) const HISTORIES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".sh_history",
    ".ash_history",
    ".history",
    ".python_history",
    ".lesshst",
    ".viminfo",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
    ".node_repl_history",
    ".wget-hsts",
    ".local/share/fish/fish_history",
];

/// systemd's random seed and credential secret, and the older urandom seed.
pub(crate) const RANDOM_SEEDS: &[&str] = &[
    "/var/lib/systemd/random-seed",
    "/var/lib/systemd/credential.secret",
    "/var/lib/urandom/random-seed",
];

/// Directories whose files are DHCP leases.
pub(crate) const LEASE_DIRS: &[&str] = &[
    "/var/lib/dhcp",
    "/var/lib/dhclient",
    "/var/lib/dhcpcd",
    "/var/lib/NetworkManager",
    "/var/lib/systemd/network",
    "/run/systemd/netif/leases",
];

/// The installer's answers, manifest and log (kldload's and common others).
pub(crate) const INSTALLER_FILES: &[&str] = &[
    "/etc/kldload/install-manifest.env",
    "/etc/kldload/answers.env",
    "/etc/kldload/pending-export.env",
    "/root/kldload-install.log",
    "/var/log/kldload-install.log",
    "/var/log/installer",
    "/root/anaconda-ks.cfg",
    "/root/original-ks.cfg",
];

/// Secure Boot signing keys that installers and DKMS leave behind.
const SIGNING_KEY_FILES: &[&str] = &[
    "/var/lib/dkms/mok.key",
    "/var/lib/shim-signed/mok/MOK.priv",
    "/etc/pki/sbsign/db.key",
];
/// Directories where local certificate authorities keep their keys.
const CA_DIRS: &[&str] = &["/etc/kldload", "/etc/pki/CA/private", "/etc/ssl/private"];

/// Files above this size are not read to look for keys.
pub(crate) const KEY_SCAN_LIMIT: u64 = 1 << 20;

/// Plans a seal of `root` with `ops`, looking at what is there.
pub fn plan(root: &Path, ops: &[Op]) -> Result<Plan> {
    let tree = Tree::new(root);
    if !tree.entry("/etc").is_some_and(|e| e.is_dir()) {
        return Err(Error::NotARoot(root.to_path_buf()));
    }
    let mut steps = Vec::new();
    for &op in ops {
        for action in plan_op(&tree, op)? {
            steps.push(Step { op, action });
        }
    }
    Ok(Plan {
        root: root.to_path_buf(),
        ops: ops.to_vec(),
        steps,
    })
}

fn plan_op(t: &Tree, op: Op) -> Result<Vec<Action>> {
    Ok(match op {
        Op::MachineId => machine_id(t),
        Op::RandomSeed => remove_existing(t, RANDOM_SEEDS),
        Op::SshHostKeys => ssh_host_keys(t),
        Op::DhcpLeases => LEASE_DIRS
            .iter()
            .flat_map(|d| t.list(d))
            .filter(|e| e.is_file() && is_lease(&e.name()))
            .map(|e| Action::Remove(e.path))
            .collect(),
        Op::UdevNetRules => remove_existing(
            t,
            &[
                "/etc/udev/rules.d/70-persistent-net.rules",
                "/etc/udev/rules.d/70-persistent-cd.rules",
            ],
        ),
        Op::CloudInit => cloud_init(t)?,
        Op::Histories => t
            .homes()
            .iter()
            .flat_map(|h| HISTORIES.iter().map(move |f| format!("{h}/{f}")))
            .filter_map(|p| t.entry(&p))
            .filter(|e| !e.is_dir())
            .map(|e| Action::Remove(e.path))
            .collect(),
        Op::TmpFiles => ["/tmp", "/var/tmp"]
            .iter()
            .flat_map(|d| t.list(d))
            .map(remove_entry)
            .collect(),
        Op::Logs => logs(t),
        Op::PackageCache => package_cache(t),
        Op::InstallerFiles => INSTALLER_FILES
            .iter()
            .filter_map(|p| t.entry(p))
            .map(remove_entry)
            .collect(),
        Op::WireguardKeys => wireguard(t)?,
        Op::SigningKeys => signing_keys(t),
        Op::UserSshKeys => t
            .homes()
            .iter()
            .flat_map(|h| t.walk(&format!("{h}/.ssh")))
            .filter(|e| e.is_file() && file_holds_key(&e.path))
            .map(|e| Action::Remove(e.path))
            .collect(),
        Op::WifiSecrets => wifi(t),
        Op::AuthorizedKeys => t
            .homes()
            .iter()
            .flat_map(|h| ["authorized_keys", "authorized_keys2"].map(|f| format!("{h}/.ssh/{f}")))
            .filter_map(|p| t.entry(&p))
            .map(|e| Action::Remove(e.path))
            .collect(),
    })
}

fn remove_entry(e: Entry) -> Action {
    if e.is_dir() {
        Action::RemoveTree(e.path)
    } else {
        Action::Remove(e.path)
    }
}

fn remove_existing(t: &Tree, paths: &[&str]) -> Vec<Action> {
    paths
        .iter()
        .filter_map(|p| t.entry(p))
        .filter(|e| !e.is_dir())
        .map(|e| Action::Remove(e.path))
        .collect()
}

pub(crate) fn is_lease(name: &str) -> bool {
    name.ends_with(".leases")
        || name.ends_with(".lease")
        || name.contains(".lease-")
        || name.starts_with("dhclient")
        || name.starts_with("internal-")
}

pub(crate) fn file_holds_key(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() && m.len() <= KEY_SCAN_LIMIT => std::fs::read(path)
            .map(|b| secrets::holds_private_key(&b))
            .unwrap_or(false),
        _ => false,
    }
}

fn machine_id(t: &Tree) -> Vec<Action> {
    let mut out = Vec::new();
    if let Some(path) = t.path("/etc/machine-id") {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != "uninitialized\n" {
            out.push(Action::Write {
                path,
                text: "uninitialized\n".into(),
                mode: 0o444,
            });
        }
    }
    if let Some(e) = t.entry("/var/lib/dbus/machine-id") {
        let target = PathBuf::from("/etc/machine-id");
        let linked = std::fs::read_link(&e.path).is_ok_and(|l| l == target);
        if !linked {
            out.push(Action::Symlink {
                path: e.path,
                target,
            });
        }
    }
    out
}

fn ssh_host_keys(t: &Tree) -> Vec<Action> {
    let mut out: Vec<Action> = t
        .list("/etc/ssh")
        .into_iter()
        .filter(|e| !e.is_dir())
        .filter(|e| {
            let n = e.name();
            n.starts_with("ssh_host_")
                && (n.ends_with("_key") || n.ends_with("_key.pub") || n.ends_with("-cert.pub"))
        })
        .map(|e| Action::Remove(e.path))
        .collect();
    let has_sshd = t.entry("/usr/sbin/sshd").is_some() || t.entry("/usr/bin/ssh-keygen").is_some();
    let distro_has_unit = UNIT_DIRS
        .iter()
        .flat_map(|d| DISTRO_KEYGEN_UNITS.iter().map(move |u| format!("{d}/{u}")))
        .any(|p| t.entry(&p).is_some());
    if has_sshd && !distro_has_unit {
        if let (Some(unit), Some(link)) = (
            t.path(&format!("/etc/systemd/system/{SSH_HOSTKEYS_UNIT_NAME}")),
            t.path(&format!(
                "/etc/systemd/system/multi-user.target.wants/{SSH_HOSTKEYS_UNIT_NAME}"
            )),
        ) {
            if std::fs::read_to_string(&unit).ok().as_deref() != Some(SSH_HOSTKEYS_UNIT) {
                out.push(Action::Write {
                    path: unit,
                    text: SSH_HOSTKEYS_UNIT.into(),
                    mode: 0o644,
                });
            }
            let target = PathBuf::from(format!("/etc/systemd/system/{SSH_HOSTKEYS_UNIT_NAME}"));
            if std::fs::read_link(&link).ok() != Some(target.clone()) {
                out.push(Action::Symlink { path: link, target });
            }
        }
    }
    out
}

/// The files under `/etc/cloud` that cloud-init reads for configuration.
pub(crate) fn cloud_config_files(t: &Tree) -> Vec<Entry> {
    let mut files: Vec<Entry> = t.entry("/etc/cloud/cloud.cfg").into_iter().collect();
    files.extend(
        t.list("/etc/cloud/cloud.cfg.d")
            .into_iter()
            .filter(|e| e.name().ends_with(".cfg")),
    );
    files.into_iter().filter(Entry::is_file).collect()
}

fn cloud_init(t: &Tree) -> Result<Vec<Action>> {
    let mut out: Vec<Action> = t
        .list("/var/lib/cloud")
        .into_iter()
        .map(remove_entry)
        .collect();
    out.extend(
        t.list("/var/log")
            .into_iter()
            .filter(|e| e.name().starts_with("cloud-init"))
            .map(remove_entry),
    );
    if !t.entry("/etc/cloud").is_some_and(|e| e.is_dir()) {
        return Ok(out);
    }
    out.extend(remove_existing(t, &["/etc/cloud/cloud-init.disabled"]));
    let ours = t.path(cloudinit::DATASOURCE_FILE);
    for e in cloud_config_files(t) {
        if Some(&e.path) == ours.as_ref() {
            continue;
        }
        let text = std::fs::read_to_string(&e.path).map_err(Error::io("reading", &e.path))?;
        if let Some(stripped) = cloudinit::strip_datasource_list(&text) {
            out.push(if cloudinit::only_comments(&stripped) {
                Action::Remove(e.path)
            } else {
                Action::Write {
                    path: e.path.clone(),
                    text: stripped,
                    mode: e.meta.permissions().mode() & 0o7777,
                }
            });
        }
    }
    if let Some(path) = ours {
        let text = cloudinit::datasource_file_text();
        if std::fs::read_to_string(&path).ok() != Some(text.clone()) {
            out.push(Action::Write {
                path,
                text,
                mode: 0o644,
            });
        }
    }
    Ok(out)
}

/// Whether a log file name is a rotated copy (`syslog.1`, `dpkg.log.2.gz`).
fn rotated(name: &str) -> bool {
    [".gz", ".xz", ".bz2", ".zst", ".old"]
        .iter()
        .any(|s| name.ends_with(s))
        || name
            .rsplit_once('.')
            .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

fn logs(t: &Tree) -> Vec<Action> {
    let mut out: Vec<Action> = t
        .list("/var/log/journal")
        .into_iter()
        .map(remove_entry)
        .collect();
    let journal = t.path("/var/log/journal");
    for e in t.walk("/var/log") {
        if journal.as_ref().is_some_and(|j| e.path.starts_with(j)) || !e.is_file() {
            continue;
        }
        if rotated(&e.name()) {
            out.push(Action::Remove(e.path));
        } else if e.meta.len() > 0 {
            out.push(Action::Truncate(e.path));
        }
    }
    out
}

fn package_cache(t: &Tree) -> Vec<Action> {
    let mut out: Vec<Action> = t
        .list("/var/cache/apt/archives")
        .into_iter()
        .filter(|e| e.is_file() && e.name().ends_with(".deb"))
        .map(|e| Action::Remove(e.path))
        .collect();
    out.extend(
        t.list("/var/cache/apt/archives/partial")
            .into_iter()
            .filter(Entry::is_file)
            .map(|e| Action::Remove(e.path)),
    );
    out.extend(
        t.list("/var/cache/apt")
            .into_iter()
            .filter(|e| e.is_file() && e.name().ends_with(".bin"))
            .map(|e| Action::Remove(e.path)),
    );
    for d in [
        "/var/cache/dnf",
        "/var/cache/yum",
        "/var/cache/zypp/packages",
    ] {
        out.extend(t.list(d).into_iter().map(remove_entry));
    }
    out
}

fn wireguard(t: &Tree) -> Result<Vec<Action>> {
    let mut out = Vec::new();
    for e in t.walk("/etc/wireguard") {
        if !e.is_file() || e.meta.len() > KEY_SCAN_LIMIT {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&e.path) else {
            continue;
        };
        let name = e.name();
        if secrets::is_wireguard_key(&text) && !name.ends_with(".pub") {
            out.push(Action::Remove(e.path));
        } else if secrets::wg_config_has_secret(&text) {
            out.push(Action::Write {
                path: e.path.clone(),
                text: secrets::strip_wg_secrets(&text),
                mode: e.meta.permissions().mode() & 0o7777,
            });
        }
    }
    Ok(out)
}

fn signing_keys(t: &Tree) -> Vec<Action> {
    let mut out = remove_existing(t, SIGNING_KEY_FILES);
    for d in CA_DIRS {
        out.extend(
            t.walk(d)
                .into_iter()
                .filter(|e| e.is_file() && file_holds_key(&e.path))
                .map(|e| Action::Remove(e.path)),
        );
    }
    out
}

/// NetworkManager profiles with a secret, wpa_supplicant files with a
/// passphrase, iwd's saved networks.
fn wifi(t: &Tree) -> Vec<Action> {
    let has = |e: &Entry, words: &[&str]| {
        e.is_file()
            && e.meta.len() <= KEY_SCAN_LIMIT
            && std::fs::read_to_string(&e.path).is_ok_and(|s| {
                s.lines().any(|l| {
                    let l = l.trim();
                    words.iter().any(|w| l.starts_with(w))
                })
            })
    };
    let mut out: Vec<Action> = t
        .list("/etc/NetworkManager/system-connections")
        .into_iter()
        .filter(|e| has(e, &["[wifi-security]", "psk=", "password=", "wep-key"]))
        .map(|e| Action::Remove(e.path))
        .collect();
    out.extend(
        t.list("/etc/wpa_supplicant")
            .into_iter()
            .filter(|e| has(e, &["psk=", "password=", "wep_key"]))
            .map(|e| Action::Remove(e.path)),
    );
    out.extend(
        t.list("/var/lib/iwd")
            .into_iter()
            .filter(|e| e.is_file())
            .map(|e| Action::Remove(e.path)),
    );
    out
}
