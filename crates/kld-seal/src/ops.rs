//! The sealing operations, by name: what `--only`, `--skip` and `--with`
//! select.

use std::fmt;
use std::str::FromStr;

/// One sealing operation. [`Op::DEFAULT`] is what a plain `kseal` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `/etc/machine-id` set to `uninitialized` (systemd's first-boot
    /// state), D-Bus's copy made a link to it.
    MachineId,
    /// systemd's random seed and credential secret, the urandom seed.
    RandomSeed,
    /// SSH host keys removed; a unit that creates them at boot installed
    /// and enabled when the distribution lacks one.
    SshHostKeys,
    /// DHCP leases of dhclient, dhcpcd, NetworkManager and systemd-networkd.
    DhcpLeases,
    /// udev's persistent network (and CD) rules.
    UdevNetRules,
    /// cloud-init's instance state and logs; one datasource list.
    CloudInit,
    /// Shell and REPL histories of root and every user.
    Histories,
    /// The contents of `/tmp` and `/var/tmp`.
    TmpFiles,
    /// The journal, rotated logs, and every other log emptied.
    Logs,
    /// Downloaded packages and package-manager caches.
    PackageCache,
    /// The installer's answers, manifest and install log.
    InstallerFiles,
    /// WireGuard private keys (key files, and `PrivateKey`/`PresharedKey`
    /// lines of configurations).
    WireguardKeys,
    /// Private keys of local certificate authorities and Secure Boot
    /// signing keys.
    SigningKeys,
    /// SSH private keys of root and every user.
    UserSshKeys,
    /// Saved Wi-Fi secrets (NetworkManager, wpa_supplicant, iwd).
    WifiSecrets,
    /// `authorized_keys` of root and every user (not by default).
    AuthorizedKeys,
}

impl Op {
    /// Every operation, in the order they run.
    pub const ALL: &'static [Op] = &[
        Op::MachineId,
        Op::RandomSeed,
        Op::SshHostKeys,
        Op::DhcpLeases,
        Op::UdevNetRules,
        Op::CloudInit,
        Op::Histories,
        Op::TmpFiles,
        Op::Logs,
        Op::PackageCache,
        Op::InstallerFiles,
        Op::WireguardKeys,
        Op::SigningKeys,
        Op::UserSshKeys,
        Op::WifiSecrets,
        Op::AuthorizedKeys,
    ];

    /// What `kseal ROOT` runs: everything but [`Op::AuthorizedKeys`], the
    /// last of [`Op::ALL`].
    pub const DEFAULT: &'static [Op] = match Op::ALL.split_last() {
        Some((Op::AuthorizedKeys, rest)) => rest,
        _ => panic!("Op::ALL must end with Op::AuthorizedKeys"),
    };

    /// The name used on command lines and in plans.
    pub fn name(self) -> &'static str {
        match self {
            Op::MachineId => "machine-id",
            Op::RandomSeed => "random-seed",
            Op::SshHostKeys => "ssh-host-keys",
            Op::DhcpLeases => "dhcp-leases",
            Op::UdevNetRules => "udev-net-rules",
            Op::CloudInit => "cloud-init",
            Op::Histories => "histories",
            Op::TmpFiles => "tmp-files",
            Op::Logs => "logs",
            Op::PackageCache => "package-cache",
            Op::InstallerFiles => "installer-files",
            Op::WireguardKeys => "wireguard-keys",
            Op::SigningKeys => "signing-keys",
            Op::UserSshKeys => "user-ssh-keys",
            Op::WifiSecrets => "wifi-secrets",
            Op::AuthorizedKeys => "authorized-keys",
        }
    }

    /// A one-line description, for listings.
    pub fn describe(self) -> &'static str {
        match self {
            Op::MachineId => "machine-id set to `uninitialized` (first boot)",
            Op::RandomSeed => "systemd random seed and credential secret",
            Op::SshHostKeys => "SSH host keys; regenerated on first boot",
            Op::DhcpLeases => "DHCP leases",
            Op::UdevNetRules => "udev persistent network rules",
            Op::CloudInit => "cloud-init state and logs; one datasource_list",
            Op::Histories => "shell histories of all users",
            Op::TmpFiles => "contents of /tmp and /var/tmp",
            Op::Logs => "journal and logs",
            Op::PackageCache => "package caches",
            Op::InstallerFiles => "installer answers, manifest and log",
            Op::WireguardKeys => "WireGuard private and preshared keys",
            Op::SigningKeys => "local CA and Secure Boot private keys",
            Op::UserSshKeys => "SSH private keys of root and users",
            Op::WifiSecrets => "saved Wi-Fi secrets",
            Op::AuthorizedKeys => "authorized_keys of root and users",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`Op::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown seal operation `{0}` (one of: {names})", names = all_names())]
pub struct UnknownOp(pub String);

fn all_names() -> String {
    Op::ALL
        .iter()
        .map(|o| o.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Op {
    type Err = UnknownOp;

    fn from_str(s: &str) -> Result<Op, UnknownOp> {
        Op::ALL
            .iter()
            .copied()
            .find(|o| o.name() == s)
            .ok_or_else(|| UnknownOp(s.to_owned()))
    }
}

/// Which operations to run: the defaults, minus `skip`, plus `with`; or
/// exactly `only` when given. Returned in [`Op::ALL`] order, each once.
pub fn select(only: &[Op], skip: &[Op], with: &[Op]) -> Vec<Op> {
    Op::ALL
        .iter()
        .copied()
        .filter(|op| {
            if only.is_empty() {
                (Op::DEFAULT.contains(op) && !skip.contains(op)) || with.contains(op)
            } else {
                only.contains(op)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for op in Op::ALL {
            assert_eq!(op.name().parse::<Op>().unwrap(), *op);
        }
        assert!("machine_id".parse::<Op>().is_err());
    }

    #[test]
    fn selection() {
        assert_eq!(select(&[], &[], &[]), Op::DEFAULT);
        let s = select(&[], &[Op::Logs], &[Op::AuthorizedKeys]);
        assert!(!s.contains(&Op::Logs) && s.contains(&Op::AuthorizedKeys));
        assert_eq!(
            select(&[Op::Logs, Op::MachineId], &[], &[]),
            [Op::MachineId, Op::Logs]
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC*") {
            let _ = s.parse::<Op>();
        }
    }
}
