//! Audit: what a sealed image must not carry, found by looking at the tree
//! (file contents for keys, not only names), each finding with its path.

use std::path::PathBuf;

use serde::Serialize;

use crate::cloudinit;
use crate::error::{Error, Result};
use crate::rules::{self, HISTORIES, INSTALLER_FILES, KEY_SCAN_LIMIT, LEASE_DIRS, RANDOM_SEEDS};
use crate::secrets;
use crate::tree::Tree;

/// What kind of thing was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Kind {
    /// A private key (PEM, OpenSSH, PuTTY, OpenPGP) anywhere in the tree.
    PrivateKey,
    /// A WireGuard private or preshared key (key file or configuration).
    WireguardKey,
    /// `/etc/machine-id` (or D-Bus's copy) holds an id.
    MachineId,
    /// systemd's random seed or credential secret.
    RandomSeed,
    /// A DHCP lease.
    Lease,
    /// A non-empty shell history.
    History,
    /// The systemd journal.
    Journal,
    /// cloud-init's instance state.
    CloudInitState,
    /// `datasource_list` not defined exactly once, on one line, ending in
    /// `None`.
    CloudInitDatasources,
    /// The installer's files, or secrets in them.
    InstallerFile,
    /// A saved Wi-Fi secret.
    WifiSecret,
}

impl Kind {
    /// The name used in listings.
    pub fn name(self) -> &'static str {
        match self {
            Kind::PrivateKey => "private-key",
            Kind::WireguardKey => "wireguard-key",
            Kind::MachineId => "machine-id",
            Kind::RandomSeed => "random-seed",
            Kind::Lease => "lease",
            Kind::History => "history",
            Kind::Journal => "journal",
            Kind::CloudInitState => "cloud-init-state",
            Kind::CloudInitDatasources => "cloud-init-datasources",
            Kind::InstallerFile => "installer-file",
            Kind::WifiSecret => "wifi-secret",
        }
    }
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// What it is.
    pub kind: Kind,
    /// Where, inside the tree (`/etc/ssh/ssh_host_ed25519_key`).
    pub path: PathBuf,
    /// A few words more, if any (never the secret itself).
    pub detail: String,
}

/// Top-level directories that hold kernel or runtime state, not files of the
/// image (skipped when the tree is a running system's `/`).
const VIRTUAL: &[&str] = &["proc", "sys", "dev", "run"];

/// Scans the tree at `root`; findings sorted by kind, then path.
pub fn audit(root: &std::path::Path) -> Result<Vec<Finding>> {
    let t = Tree::new(root);
    if !t.entry("/etc").is_some_and(|e| e.is_dir()) {
        return Err(Error::NotARoot(root.to_path_buf()));
    }
    let inside = |p: &std::path::Path| PathBuf::from("/").join(p.strip_prefix(root).unwrap_or(p));
    let mut out = Vec::new();
    let mut add = |kind, path: &std::path::Path, detail: &str| {
        out.push(Finding {
            kind,
            path: inside(path),
            detail: detail.to_owned(),
        })
    };

    // Keys, by content, everywhere but the virtual file systems.
    let wg_dir = t.path("/etc/wireguard");
    for top in t.list("/") {
        if VIRTUAL.contains(&top.name().as_str()) {
            continue;
        }
        let mut entries = vec![];
        if top.is_dir() {
            entries = t.walk(&format!("/{}", top.name()));
        } else {
            entries.push(top);
        }
        for e in entries
            .iter()
            .filter(|e| e.is_file() && e.meta.len() <= KEY_SCAN_LIMIT)
        {
            let Ok(bytes) = std::fs::read(&e.path) else {
                continue;
            };
            if secrets::holds_private_key(&bytes) {
                add(Kind::PrivateKey, &e.path, "");
            } else if wg_dir.as_ref().is_some_and(|d| e.path.starts_with(d)) {
                let text = String::from_utf8_lossy(&bytes);
                if (secrets::is_wireguard_key(&text) && !e.name().ends_with(".pub"))
                    || secrets::wg_config_has_secret(&text)
                {
                    add(Kind::WireguardKey, &e.path, "");
                }
            }
        }
    }

    for p in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Some(e) = t.entry(p).filter(|e| e.is_file()) {
            let id = std::fs::read_to_string(&e.path).unwrap_or_default();
            let id = id.trim();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                add(Kind::MachineId, &e.path, "set (not `uninitialized`)");
            }
        }
    }
    for p in RANDOM_SEEDS {
        if let Some(e) = t.entry(p) {
            add(Kind::RandomSeed, &e.path, "");
        }
    }
    for d in LEASE_DIRS {
        for e in t.list(d) {
            if e.is_file() && rules::is_lease(&e.name()) {
                add(Kind::Lease, &e.path, "");
            }
        }
    }
    for h in t.homes() {
        for f in HISTORIES {
            if let Some(e) = t
                .entry(&format!("{h}/{f}"))
                .filter(|e| e.is_file() && e.meta.len() > 0)
            {
                add(Kind::History, &e.path, &format!("{} bytes", e.meta.len()));
            }
        }
    }
    for e in t.walk("/var/log/journal") {
        if e.is_file() && (e.name().ends_with(".journal") || e.name().ends_with(".journal~")) {
            add(Kind::Journal, &e.path, "");
        }
    }
    for p in [
        "/var/lib/cloud/instance",
        "/var/lib/cloud/instances",
        "/var/lib/cloud/data",
    ] {
        if let Some(e) = t.entry(p) {
            add(Kind::CloudInitState, &e.path, "");
        }
    }
    if t.entry("/etc/cloud").is_some_and(|e| e.is_dir()) {
        let mut definers = Vec::new();
        for e in rules::cloud_config_files(&t) {
            let text = std::fs::read_to_string(&e.path).unwrap_or_default();
            for value in cloudinit::datasource_lists(&text) {
                definers.push((e.path.clone(), value));
            }
        }
        match definers.as_slice() {
            [(path, value)] => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let one_line = text
                    .lines()
                    .any(|l| l.starts_with("datasource_list") && l.contains(']'));
                if !one_line || !value.trim_end_matches([' ', ']']).ends_with("None") {
                    add(
                        Kind::CloudInitDatasources,
                        path,
                        "not one line ending in None",
                    );
                }
            }
            [] => add(
                Kind::CloudInitDatasources,
                &root.join("etc/cloud"),
                "no file sets datasource_list",
            ),
            many => {
                for (path, _) in many {
                    add(
                        Kind::CloudInitDatasources,
                        path,
                        "one of several files setting datasource_list",
                    );
                }
            }
        }
    }
    for p in INSTALLER_FILES {
        if let Some(e) = t.entry(p) {
            add(Kind::InstallerFile, &e.path, "");
        }
    }
    for e in t.walk("/etc/kldload") {
        if e.is_file() && e.meta.len() <= KEY_SCAN_LIMIT {
            let text = std::fs::read_to_string(&e.path).unwrap_or_default();
            let names = secrets::env_file_secrets(&text);
            if !names.is_empty()
                && !INSTALLER_FILES
                    .iter()
                    .any(|f| inside(&e.path) == PathBuf::from(f))
            {
                add(
                    Kind::InstallerFile,
                    &e.path,
                    &format!("sets {}", names.join(", ")),
                );
            }
        }
    }
    for e in t.list("/etc/NetworkManager/system-connections") {
        let text = std::fs::read_to_string(&e.path).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.trim().starts_with("psk=") || l.trim().starts_with("password="))
        {
            add(Kind::WifiSecret, &e.path, "");
        }
    }
    for e in t.list("/etc/wpa_supplicant") {
        let text = std::fs::read_to_string(&e.path).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.trim().starts_with("psk=") || l.trim().starts_with("password="))
        {
            add(Kind::WifiSecret, &e.path, "");
        }
    }
    for e in t.list("/var/lib/iwd") {
        if e.is_file() {
            add(Kind::WifiSecret, &e.path, "");
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
