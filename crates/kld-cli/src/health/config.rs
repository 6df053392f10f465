//! kst's configuration: which checks run and their thresholds, from a TOML
//! file (`/etc/kld/kst.toml` by default); every key is optional and has a
//! default, so no file at all is a sensible configuration.

use std::path::Path;

use serde::Deserialize;

use super::CheckName;
use crate::time::parse_duration;

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/kld/kst.toml";

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid kst configuration.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with its line where TOML says.
        message: String,
    },
}

/// What a check whose data source is missing reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// UNKNOWN, with the reason.
    Unknown,
    /// Nothing but a "skipped" line with the reason.
    Skip,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The checks a plain `kst` runs.
    pub checks: Vec<CheckName>,
    /// What a check with a missing data source reports, unless the check's
    /// own `missing` says otherwise.
    pub missing: Missing,
    /// Pool thresholds.
    pub pools: Pools,
    /// Scrub thresholds.
    pub scrub: Scrub,
    /// Datasets that must have recent snapshots.
    pub snapshots: Vec<SnapshotPolicy>,
    /// Replication targets and their lag thresholds.
    pub replication: Vec<Replication>,
    /// Systemd units.
    pub services: Services,
    /// SMART.
    pub disks: Disks,
    /// WireGuard.
    pub wireguard: Wireguard,
    /// Boot environments.
    pub bootenv: Bootenv,
}

/// `[pools]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pools {
    /// Capacity (percent used) above which a pool is WARNING.
    pub capacity_warning: u8,
    /// Capacity above which a pool is CRITICAL.
    pub capacity_critical: u8,
}

/// `[scrub]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrub {
    /// Age of the last completed scrub above which a pool is WARNING
    /// (seconds).
    pub warning_age: u64,
    /// Age above which it is CRITICAL, if set.
    pub critical_age: Option<u64>,
}

/// One `[[snapshots]]` policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotPolicy {
    /// The dataset.
    pub dataset: String,
    /// Whether every descendant file system and volume is held to it too.
    pub recursive: bool,
    /// Age of the newest snapshot above which it is WARNING (seconds).
    pub warning_age: u64,
    /// Age above which it is CRITICAL, if set.
    pub critical_age: Option<u64>,
}

/// One `[[replication]]` target.
#[derive(Debug, Clone, PartialEq)]
pub struct Replication {
    /// The dataset snapshots are received into.
    pub target: String,
    /// The dataset they are sent from, when it is on this host too: the
    /// lag is then the age of the newest snapshot both share.
    pub source: Option<String>,
    /// Lag above which it is WARNING (seconds).
    pub warning_lag: u64,
    /// Lag above which it is CRITICAL, if set.
    pub critical_lag: Option<u64>,
}

/// `[services]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Services {
    /// Units that must be active.
    pub units: Vec<String>,
    /// The status of a failed unit that is not in `units`.
    pub failed: super::Status,
    /// What this check reports without systemd.
    pub missing: Option<Missing>,
}

/// `[disks]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Disks {
    /// Devices to check (default: what `smartctl --scan-open` finds).
    pub devices: Vec<String>,
    /// Temperature (°C) above which a disk is WARNING.
    pub temperature_warning: u32,
    /// What this check reports without smartctl or SMART-capable disks.
    pub missing: Option<Missing>,
}

/// `[wireguard]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wireguard {
    /// Interfaces to check (default: every WireGuard interface here).
    pub interfaces: Vec<String>,
    /// The status of a peer without a live session (no handshake in the
    /// last 180 seconds).
    pub down: super::Status,
    /// What this check reports without WireGuard interfaces.
    pub missing: Option<Missing>,
}

/// `[bootenv]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootenv {
    /// The status of a pending switch (next boot is not the running BE).
    pub pending: super::Status,
    /// What this check reports when `/` is not a boot environment.
    pub missing: Option<Missing>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            checks: CheckName::ALL.to_vec(),
            missing: Missing::Skip,
            pools: Pools {
                capacity_warning: 80,
                capacity_critical: 90,
            },
            scrub: Scrub {
                warning_age: 35 * 86_400,
                critical_age: None,
            },
            snapshots: Vec::new(),
            replication: Vec::new(),
            services: Services {
                units: Vec::new(),
                failed: super::Status::Warning,
                missing: None,
            },
            disks: Disks {
                devices: Vec::new(),
                temperature_warning: 60,
                missing: None,
            },
            wireguard: Wireguard {
                interfaces: Vec::new(),
                down: super::Status::Warning,
                missing: None,
            },
            bootenv: Bootenv {
                pending: super::Status::Warning,
                missing: None,
            },
        }
    }
}

impl Config {
    /// Reads `path`; a missing file at the default path is the default
    /// configuration, a missing file named explicitly is an error.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_PATH), false),
        };
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text).map_err(|message| ConfigError::Invalid {
                path: shown,
                message,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: shown,
                source,
            }),
        }
    }

    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.resolve()
    }

    /// What check `name` reports when its data source is missing.
    pub fn missing(&self, name: CheckName) -> Missing {
        let own = match name {
            CheckName::Services => self.services.missing,
            CheckName::Disks => self.disks.missing,
            CheckName::Wireguard => self.wireguard.missing,
            CheckName::Bootenv => self.bootenv.missing,
            _ => None,
        };
        own.unwrap_or(self.missing)
    }
}

// ---- the file as written ---------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    checks: Option<Vec<String>>,
    missing: Option<Missing>,
    #[serde(default)]
    pools: PoolsFile,
    #[serde(default)]
    scrub: ScrubFile,
    #[serde(default)]
    snapshots: Vec<SnapshotFile>,
    #[serde(default)]
    replication: Vec<ReplicationFile>,
    #[serde(default)]
    services: ServicesFile,
    #[serde(default)]
    disks: DisksFile,
    #[serde(default)]
    wireguard: WireguardFile,
    #[serde(default)]
    bootenv: BootenvFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolsFile {
    capacity_warning: Option<u8>,
    capacity_critical: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrubFile {
    warning_age: Option<String>,
    critical_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    dataset: String,
    #[serde(default)]
    recursive: bool,
    warning_age: String,
    critical_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicationFile {
    target: String,
    source: Option<String>,
    warning_lag: String,
    critical_lag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesFile {
    units: Option<Vec<String>>,
    failed: Option<String>,
    missing: Option<Missing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisksFile {
    devices: Option<Vec<String>>,
    temperature_warning: Option<u32>,
    missing: Option<Missing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireguardFile {
    interfaces: Option<Vec<String>>,
    down: Option<String>,
    missing: Option<Missing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootenvFile {
    pending: Option<String>,
    missing: Option<Missing>,
}

fn duration(key: &str, text: &str) -> Result<u64, String> {
    parse_duration(text).map_err(|e| format!("{key}: {e}"))
}

fn optional(key: &str, text: Option<&String>) -> Result<Option<u64>, String> {
    text.map(|t| duration(key, t)).transpose()
}

fn status(key: &str, text: &str) -> Result<super::Status, String> {
    match text {
        "ok" => Ok(super::Status::Ok),
        "warning" => Ok(super::Status::Warning),
        "critical" => Ok(super::Status::Critical),
        _ => Err(format!(
            "{key}: expected \"ok\", \"warning\" or \"critical\", not {text:?}"
        )),
    }
}

/// A critical threshold must not be below its warning one.
fn ordered(key: &str, warning: u64, critical: Option<u64>) -> Result<(), String> {
    match critical {
        Some(c) if c < warning => Err(format!(
            "{key}: the critical threshold is below the warning one"
        )),
        _ => Ok(()),
    }
}

impl File {
    fn resolve(self) -> Result<Config, String> {
        let d = Config::default();
        let checks = match self.checks {
            None => d.checks,
            Some(names) => names
                .iter()
                .map(|n| {
                    CheckName::parse(n).ok_or_else(|| {
                        format!(
                            "checks: unknown check {n:?} (known: {})",
                            CheckName::ALL.map(CheckName::as_str).join(", ")
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let pools = Pools {
            capacity_warning: self
                .pools
                .capacity_warning
                .unwrap_or(d.pools.capacity_warning),
            capacity_critical: self
                .pools
                .capacity_critical
                .unwrap_or(d.pools.capacity_critical),
        };
        if pools.capacity_warning > 100 || pools.capacity_critical > 100 {
            return Err("pools: capacities are percentages (0 to 100)".into());
        }
        if pools.capacity_critical < pools.capacity_warning {
            return Err("pools: capacity_critical is below capacity_warning".into());
        }
        let scrub = Scrub {
            warning_age: match &self.scrub.warning_age {
                Some(t) => duration("scrub.warning_age", t)?,
                None => d.scrub.warning_age,
            },
            critical_age: optional("scrub.critical_age", self.scrub.critical_age.as_ref())?,
        };
        ordered("scrub", scrub.warning_age, scrub.critical_age)?;
        let snapshots = self
            .snapshots
            .into_iter()
            .map(|s| {
                let key = format!("snapshots ({})", s.dataset);
                valid_dataset(&key, &s.dataset)?;
                let policy = SnapshotPolicy {
                    warning_age: duration(&key, &s.warning_age)?,
                    critical_age: optional(&key, s.critical_age.as_ref())?,
                    dataset: s.dataset,
                    recursive: s.recursive,
                };
                ordered(&key, policy.warning_age, policy.critical_age)?;
                Ok(policy)
            })
            .collect::<Result<_, String>>()?;
        let replication = self
            .replication
            .into_iter()
            .map(|r| {
                let key = format!("replication ({})", r.target);
                valid_dataset(&key, &r.target)?;
                if let Some(source) = &r.source {
                    valid_dataset(&key, source)?;
                }
                let target = Replication {
                    warning_lag: duration(&key, &r.warning_lag)?,
                    critical_lag: optional(&key, r.critical_lag.as_ref())?,
                    target: r.target,
                    source: r.source,
                };
                ordered(&key, target.warning_lag, target.critical_lag)?;
                Ok(target)
            })
            .collect::<Result<_, String>>()?;
        let services = Services {
            units: self.services.units.unwrap_or(d.services.units),
            failed: match &self.services.failed {
                Some(t) => status("services.failed", t)?,
                None => d.services.failed,
            },
            missing: self.services.missing,
        };
        let disks = Disks {
            devices: self.disks.devices.unwrap_or(d.disks.devices),
            temperature_warning: self
                .disks
                .temperature_warning
                .unwrap_or(d.disks.temperature_warning),
            missing: self.disks.missing,
        };
        let wireguard = Wireguard {
            interfaces: self.wireguard.interfaces.unwrap_or(d.wireguard.interfaces),
            down: match &self.wireguard.down {
                Some(t) => status("wireguard.down", t)?,
                None => d.wireguard.down,
            },
            missing: self.wireguard.missing,
        };
        let bootenv = Bootenv {
            pending: match &self.bootenv.pending {
                Some(t) => status("bootenv.pending", t)?,
                None => d.bootenv.pending,
            },
            missing: self.bootenv.missing,
        };
        Ok(Config {
            checks,
            missing: self.missing.unwrap_or(d.missing),
            pools,
            scrub,
            snapshots,
            replication,
            services,
            disks,
            wireguard,
            bootenv,
        })
    }
}

fn valid_dataset(key: &str, name: &str) -> Result<(), String> {
    kld_zfs::name::DatasetName::new(name)
        .map(drop)
        .map_err(|e| format!("{key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn a_full_file() {
        let c = Config::parse(
            r#"
            checks = ["pools", "scrub", "snapshots"]
            missing = "unknown"
            [pools]
            capacity_warning = 70
            [scrub]
            warning_age = "8d"
            critical_age = "30d"
            [[snapshots]]
            dataset = "rpool/home"
            recursive = true
            warning_age = "2h"
            [[replication]]
            target = "backup/home"
            source = "rpool/home"
            warning_lag = "1h"
            critical_lag = "1d"
            [services]
            units = ["ssh.service"]
            failed = "critical"
            [disks]
            missing = "skip"
            [bootenv]
            pending = "ok"
            "#,
        )
        .unwrap();
        assert_eq!(c.checks.len(), 3);
        assert_eq!(c.pools.capacity_warning, 70);
        assert_eq!(c.pools.capacity_critical, 90);
        assert_eq!(c.scrub.critical_age, Some(30 * 86_400));
        assert_eq!(c.snapshots[0].warning_age, 7200);
        assert!(c.snapshots[0].recursive);
        assert_eq!(c.replication[0].source.as_deref(), Some("rpool/home"));
        assert_eq!(c.services.failed, super::super::Status::Critical);
        assert_eq!(c.missing(CheckName::Disks), Missing::Skip);
        assert_eq!(c.missing(CheckName::Services), Missing::Unknown);
        assert_eq!(c.bootenv.pending, super::super::Status::Ok);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("chekcs = []", "unknown field"),
            ("checks = [\"pool\"]", "unknown check \"pool\""),
            ("[pools]\ncapacity_warning = 95", "below capacity_warning"),
            ("[pools]\ncapacity_critical = 150", "percentages"),
            ("[scrub]\nwarning_age = \"soon\"", "scrub.warning_age"),
            (
                "[scrub]\nwarning_age = \"2d\"\ncritical_age = \"1d\"",
                "below the warning",
            ),
            (
                "[[snapshots]]\ndataset = \"bad@name\"\nwarning_age = \"1h\"",
                "snapshots (bad@name)",
            ),
            ("[services]\nfailed = \"meh\"", "services.failed"),
            ("missing = \"maybe\"", "missing"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kst.toml");
        assert!(matches!(
            Config::load(Some(&path)),
            Err(ConfigError::Read { .. })
        ));
        std::fs::write(&path, "[pools]\ncapacity_warning = 50\n").unwrap();
        assert_eq!(
            Config::load(Some(&path)).unwrap().pools.capacity_warning,
            50
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,200}") {
            let _ = Config::parse(&text);
        }

        #[test]
        fn thresholds_round_trip(warning in 0u8..=100, extra in 0u8..=100, hours in 1u64..10_000) {
            let critical = warning.saturating_add(extra).min(100);
            let c = Config::parse(&format!(
                "[pools]\ncapacity_warning = {warning}\ncapacity_critical = {critical}\n\
                 [scrub]\nwarning_age = \"{hours}h\"\n"
            )).unwrap();
            prop_assert_eq!(c.pools.capacity_warning, warning);
            prop_assert_eq!(c.pools.capacity_critical, critical);
            prop_assert_eq!(c.scrub.warning_age, hours * 3600);
        }
    }
}

/// The commented defaults shipped as /etc/kld/kst.toml (`crates/kld-cli/etc`)
/// are the defaults, as shipped and with every default uncommented.
#[cfg(test)]
mod shipped_defaults {
    use super::Config;

    const SHIPPED: &str = include_str!("../../etc/kst.toml");

    #[test]
    fn shipped_file_is_the_default() {
        assert_eq!(Config::parse(SHIPPED).expect("parses"), Config::default());
        let uncommented: String = SHIPPED
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with('#') => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(uncommented, SHIPPED);
        assert_eq!(
            Config::parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}")),
            Config::default()
        );
    }
}
