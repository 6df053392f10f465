//! The command line of `ksnap`.

use clap::{Parser, Subcommand};

use crate::output::OutputArgs;
use crate::time;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Snapshot the app and its data in one transaction group before a\n  \
         deploy, and go back if the deploy goes wrong:",
        &[
            "ksnap create -l pre-deploy rpool/srv/app /var/lib/postgresql",
            "ksnap rollback --destroy-newer rpool/srv/app pre-deploy",
        ],
    ),
    (
        "See what the deploy changed since that snapshot:",
        &["ksnap diff /srv/app pre-deploy"],
    ),
    (
        "Keep the newest 24 hourly snapshots of every dataset of the pool:",
        &[
            "ksnap prune -r --label hourly --keep 24 --dry-run rpool",
            "ksnap prune -r --label hourly --keep 24 rpool",
        ],
    ),
    (
        "List a tree's snapshots for a script (tab-separated, exact numbers):",
        &["ksnap list -r -H -p rpool/home"],
    ),
];

/// Snapshots before a change, and the way back.
///
/// TARGET is a dataset (rpool/home) or a path inside a mounted one
/// (/home/alice, ./x). ksnap names snapshots LABEL-YYYYMMDD-HHMMSS (UTC);
/// several targets, or -r over a tree, are snapshotted in one transaction
/// group. `ksnap TARGET [LABEL]` is short for `ksnap create -l LABEL TARGET`.
#[derive(Debug, Parser)]
#[command(
    name = "ksnap",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot one or more targets in one transaction group.
    Create(Create),
    /// List snapshots.
    List(List),
    /// Roll a target back to a snapshot (by name, or the newest of a label).
    Rollback(Rollback),
    /// Destroy old snapshots that ksnap made, by count or by age.
    Prune(Prune),
    /// Destroy named snapshots of a target, in one batch.
    Destroy(Destroy),
    /// Show what changed in a target since a snapshot.
    Diff(Diff),
    /// `ksnap TARGET [LABEL]`: snapshot TARGET.
    #[command(external_subcommand)]
    Short(Vec<String>),
}

/// The arguments of `ksnap create`.
#[derive(Debug, clap::Args)]
pub struct Create {
    /// Also snapshot every dataset below each target.
    #[arg(short = 'r')]
    pub recursive: bool,
    /// The label that starts the snapshot's name.
    #[arg(short = 'l', long, default_value = "manual")]
    pub label: String,
    /// Name the snapshots for this UTC time (YYYYMMDD-HHMMSS) instead of
    /// now: several commands of one run then share one name.
    #[arg(long, value_name = "STAMP", value_parser = stamp)]
    pub at: Option<u64>,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Datasets or paths.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

/// Reads `--at`: a stamp as ksnap writes them.
fn stamp(text: &str) -> Result<u64, String> {
    time::parse_stamp(text)
        .ok_or_else(|| format!("invalid time {text:?}: expected YYYYMMDD-HHMMSS (UTC)"))
}

/// The arguments of `ksnap list`.
#[derive(Debug, clap::Args)]
pub struct List {
    /// Include the snapshots of every dataset below each target.
    #[arg(short = 'r')]
    pub recursive: bool,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Datasets or paths (all pools when none).
    pub targets: Vec<String>,
}

/// The arguments of `ksnap rollback`.
#[derive(Debug, clap::Args)]
pub struct Rollback {
    /// Roll back the whole tree to a recursive snapshot, all or nothing
    /// (the tree's file systems are briefly unmounted).
    #[arg(short = 'r')]
    pub recursive: bool,
    /// Destroy the snapshots newer than SNAP (never their clones).
    #[arg(long)]
    pub destroy_newer: bool,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A dataset or path.
    pub target: String,
    /// A snapshot (name after '@', or the full name), or a label: the
    /// newest snapshot with exactly that label.
    pub snap: String,
}

/// The arguments of `ksnap prune`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).args(["keep", "older_than"])))]
pub struct Prune {
    /// Include every dataset below each target.
    #[arg(short = 'r')]
    pub recursive: bool,
    /// Only snapshots with exactly this label.
    #[arg(long)]
    pub label: Option<String>,
    /// Keep the newest N snapshots of each label on each dataset.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Destroy snapshots older than this (e.g. 30d, 12h, 2w, 1d12h).
    #[arg(long, value_name = "DURATION", value_parser = time::parse_duration)]
    pub older_than: Option<u64>,
    /// Print what would be destroyed, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Datasets or paths.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

/// The arguments of `ksnap destroy`.
#[derive(Debug, clap::Args)]
pub struct Destroy {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A dataset or path.
    pub target: String,
    /// Snapshots of TARGET (names after '@', or full names).
    #[arg(required = true)]
    pub snaps: Vec<String>,
}

/// The arguments of `ksnap diff`.
#[derive(Debug, clap::Args)]
pub struct Diff {
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
    /// A dataset or path.
    pub target: String,
    /// The snapshot to compare the dataset with now.
    pub snap: String,
}
