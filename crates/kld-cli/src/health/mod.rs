//! kst's health checks: each reads its data source (ZFS, systemd over
//! D-Bus, `smartctl`, WireGuard devices, boot environments), compares it with the thresholds
//! of a [`Config`], and says OK, WARNING, CRITICAL or UNKNOWN with a
//! summary, details and measured values. [`run`] runs the chosen checks
//! concurrently (queries that several checks need run once) and returns a
//! [`Report`], which [`render`] prints for people, JSON or Prometheus.

mod bootenv;
mod config;
mod disks;
mod pools;
pub mod render;
mod replication;
mod scrub;
mod services;
mod snapshots;
mod sources;
mod wireguard;

use std::fmt;

pub use config::{Config, ConfigError, Missing};
use sources::Sources;

/// A check's verdict, in the monitoring-plugin convention (the exit status
/// is the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
    /// The check could not tell.
    Unknown,
}

impl Status {
    /// The exit status of a monitoring plugin: 0, 1, 2 or 3.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// How bad: CRITICAL > WARNING > UNKNOWN > OK, so that a known problem
    /// outranks a check that could not tell.
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two.
    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The checks kst knows, in the order it reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckName {
    /// Pool state, vdev errors, capacity.
    Pools,
    /// Age and findings of the last scrub.
    Scrub,
    /// Age of the newest snapshot of datasets a policy names.
    Snapshots,
    /// Lag of replication targets.
    Replication,
    /// Failed and configured systemd units.
    Services,
    /// SMART health of disks.
    Disks,
    /// WireGuard peers with a live session.
    Wireguard,
    /// The next-boot boot environment.
    Bootenv,
}

impl CheckName {
    /// Every check, in report order.
    pub const ALL: [CheckName; 8] = [
        CheckName::Pools,
        CheckName::Scrub,
        CheckName::Snapshots,
        CheckName::Replication,
        CheckName::Services,
        CheckName::Disks,
        CheckName::Wireguard,
        CheckName::Bootenv,
    ];

    /// Its name on the command line and in JSON and Prometheus labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Pools => "pools",
            CheckName::Scrub => "scrub",
            CheckName::Snapshots => "snapshots",
            CheckName::Replication => "replication",
            CheckName::Services => "services",
            CheckName::Disks => "disks",
            CheckName::Wireguard => "wireguard",
            CheckName::Bootenv => "bootenv",
        }
    }

    /// Its label on the human summary line (`pool: ONLINE  scrub: clean`).
    fn label(self) -> &'static str {
        match self {
            CheckName::Pools => "pool",
            CheckName::Scrub => "scrub",
            CheckName::Snapshots => "snapshots",
            CheckName::Replication => "replication",
            CheckName::Services => "services",
            CheckName::Disks => "SMART",
            CheckName::Wireguard => "WG",
            CheckName::Bootenv => "BE",
        }
    }

    /// The check called `name`.
    pub fn parse(name: &str) -> Option<CheckName> {
        CheckName::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A measured value, exported as a Prometheus gauge and listed in JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Measurement {
    /// The metric's name (`kld_pool_capacity_ratio`).
    pub metric: &'static str,
    /// What it measures (the Prometheus HELP line).
    #[serde(skip)]
    pub help: &'static str,
    /// Its labels, e.g. `pool="tank"`.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl Measurement {
    fn new(metric: &'static str, help: &'static str, value: f64) -> Measurement {
        Measurement {
            metric,
            help,
            labels: Vec::new(),
            value,
        }
    }

    fn label(mut self, name: &'static str, value: impl Into<String>) -> Measurement {
        self.labels.push((name, value.into()));
        self
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckResult {
    /// Which check.
    pub name: CheckName,
    /// Its verdict.
    pub status: Status,
    /// One line: `ONLINE`, `lag 4m`, `7/7 running`.
    pub summary: String,
    /// A line for each finding worth reading (every problem, with its
    /// object).
    pub details: Vec<String>,
    /// What it measured.
    pub values: Vec<Measurement>,
}

impl CheckResult {
    fn new(name: CheckName) -> CheckResult {
        CheckResult {
            name,
            status: Status::Ok,
            summary: String::new(),
            details: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Records a finding and raises the status to at least `status`.
    fn finding(&mut self, status: Status, detail: impl Into<String>) {
        self.status = self.status.worst(status);
        self.details.push(detail.into());
    }

    fn unknown(name: CheckName, reason: impl Into<String>) -> CheckResult {
        let reason = reason.into();
        CheckResult {
            status: Status::Unknown,
            summary: "unknown".into(),
            details: vec![reason],
            ..CheckResult::new(name)
        }
    }
}

/// A check that did not run: its data source is missing and the
/// configuration says to skip it then.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Which check.
    pub name: CheckName,
    /// Why (`smartctl is not installed`).
    pub reason: String,
}

/// Why a check could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failed {
    /// Its data source does not exist here (no smartctl, no systemd, no
    /// ZFS root): UNKNOWN or skipped, as configured.
    Missing(String),
    /// Its data source exists but failed: always UNKNOWN.
    Error(String),
}

/// Every check's result, in report order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// The worst status of all checks (OK when none ran).
    pub status: Status,
    /// The checks that ran.
    pub checks: Vec<CheckResult>,
    /// The checks skipped because their data source is missing.
    pub skipped: Vec<Skipped>,
    /// When the report was made, seconds since the epoch.
    pub time: u64,
}

/// Runs `checks` concurrently against this machine, as `config` says. With
/// no `checks`, the configured ones run and those whose data source is
/// missing are skipped or UNKNOWN as configured; a check named in `checks`
/// is UNKNOWN when its data source is missing (it was asked for).
pub fn run(config: &Config, checks: &[CheckName]) -> Report {
    let mut chosen: Vec<CheckName> = if checks.is_empty() {
        config.checks.clone()
    } else {
        checks.to_vec()
    };
    chosen.sort();
    chosen.dedup();
    let now = crate::time::now();
    let sources = &Sources::new(now);
    let outcomes: Vec<(CheckName, Result<CheckResult, Failed>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = chosen
            .iter()
            .map(|&name| (name, scope.spawn(move || run_one(name, config, sources))))
            .collect();
        handles
            .into_iter()
            .map(|(name, handle)| {
                let outcome = handle
                    .join()
                    .unwrap_or_else(|_| Err(Failed::Error("the check panicked".into())));
                (name, outcome)
            })
            .collect()
    });
    let mut report = Report {
        status: Status::Ok,
        checks: Vec::new(),
        skipped: Vec::new(),
        time: now,
    };
    for (name, outcome) in outcomes {
        let result = match outcome {
            Ok(result) => result,
            Err(Failed::Missing(reason))
                if checks.is_empty() && config.missing(name) == Missing::Skip =>
            {
                report.skipped.push(Skipped { name, reason });
                continue;
            }
            Err(Failed::Missing(reason) | Failed::Error(reason)) => {
                CheckResult::unknown(name, reason)
            }
        };
        report.status = report.status.worst(result.status);
        report.checks.push(result);
    }
    report
}

fn run_one(name: CheckName, config: &Config, sources: &Sources) -> Result<CheckResult, Failed> {
    match name {
        CheckName::Pools => pools::check(&config.pools, sources),
        CheckName::Scrub => scrub::check(&config.scrub, sources),
        CheckName::Snapshots => snapshots::check(&config.snapshots, sources),
        CheckName::Replication => replication::check(&config.replication, sources),
        CheckName::Services => services::check(&config.services),
        CheckName::Disks => disks::check(&config.disks),
        CheckName::Wireguard => wireguard::check(&config.wireguard, sources),
        CheckName::Bootenv => bootenv::check(&config.bootenv, sources),
    }
}

/// `4m`, `3h`, `12d`: an age rounded down to its largest unit.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The status an age earns against a warning and an optional critical
/// threshold.
fn age_status(age: u64, warning: u64, critical: Option<u64>) -> Status {
    match critical {
        Some(c) if age > c => Status::Critical,
        _ if age > warning => Status::Warning,
        _ => Status::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins_and_problems_outrank_unknown() {
        use Status::*;
        assert_eq!(Ok.worst(Warning), Warning);
        assert_eq!(Warning.worst(Ok), Warning);
        assert_eq!(Unknown.worst(Warning), Warning);
        assert_eq!(Warning.worst(Unknown), Warning);
        assert_eq!(Ok.worst(Unknown), Unknown);
        assert_eq!(Critical.worst(Unknown), Critical);
        assert_eq!(
            [Ok, Warning, Critical, Unknown].map(Status::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn check_names_round_trip() {
        for name in CheckName::ALL {
            assert_eq!(CheckName::parse(name.as_str()), Some(name));
        }
        assert_eq!(CheckName::parse("nope"), None);
    }

    #[test]
    fn ages() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(240), "4m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(86_400 * 3), "3d");
        assert_eq!(age_status(10, 20, None), Status::Ok);
        assert_eq!(age_status(30, 20, None), Status::Warning);
        assert_eq!(age_status(30, 20, Some(25)), Status::Critical);
    }
}
