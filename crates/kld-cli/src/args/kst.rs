//! The command line of `kst`.

use std::path::PathBuf;

use clap::Parser;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Is this host healthy? One line, and the details of what is not OK:",
        &["kst"],
    ),
    (
        "As a Nagios/Icinga plugin (the exit status is the result):",
        &["kst -q --check pools --check scrub; echo $?"],
    ),
    (
        "For node_exporter's textfile collector (kst.timer does this every\n  \
         minute):",
        &["kst --prometheus --output /var/lib/prometheus/node-exporter/kst.prom"],
    ),
    (
        "Every check with its measured values, for a script:",
        &["kst --json"],
    ),
];

/// The health of this host in one line: pools, scrubs, snapshots,
/// replication, services, disks, WireGuard and the boot environment.
///
/// Prints one summary line, then the details of every check that is not
/// OK; --json and --prometheus print every check with its measured values.
/// Checks run at once. A check whose data source is missing here (no
/// smartctl, no systemd, / not on ZFS) is skipped with its reason, or
/// UNKNOWN if the configuration says `missing = "unknown"`.
///
/// Exit status, as monitoring plugins use it: 0 OK, 1 WARNING, 2 CRITICAL,
/// 3 UNKNOWN; the worst check wins (CRITICAL over WARNING over UNKNOWN). A
/// bad command line or configuration is 3 as well.
#[derive(Debug, Parser)]
#[command(
    name = "kst",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80
)]
pub struct Cli {
    /// Thresholds and checks from FILE [default: /etc/kld/kst.toml, whose
    /// absence means the defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run only this check (repeatable).
    #[arg(long = "check", value_name = "NAME", value_parser = CHECK_NAMES)]
    pub checks: Vec<String>,
    /// JSON: {"apiVersion": "kld/v1", "kind": "HealthReport", ...}.
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Prometheus text format, for node_exporter's textfile collector.
    #[arg(long)]
    pub prometheus: bool,
    /// Print nothing: the exit status says it all.
    #[arg(short = 'q', long, conflicts_with_all = ["json", "prometheus", "output"])]
    pub quiet: bool,
    /// Write the report to FILE instead of standard output, atomically (a
    /// reader sees the old report or the new one, never half of one).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The names `--check` accepts.
pub const CHECK_NAMES: [&str; 8] = [
    "pools",
    "scrub",
    "snapshots",
    "replication",
    "services",
    "disks",
    "wireguard",
    "bootenv",
];
