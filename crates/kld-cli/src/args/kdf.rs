//! The command line of `kdf`.

use clap::Parser;

use crate::output::OutputArgs;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Where the space of a pool goes, biggest first:",
        &["kdf -r -s used rpool"],
    ),
    (
        "What each snapshot of the home datasets holds on its own:",
        &["kdf --snapshots rpool/home"],
    ),
    (
        "The pools' totals for a monitoring script:",
        &["kdf --pools --json"],
    ),
];

/// Disk space as ZFS accounts it.
///
/// For each dataset: USED (all it holds), AVAIL, REFER (its own data),
/// SNAPS (held only by its snapshots), CHILD (its descendants), REFRESERV
/// (unused reservation), RATIO (compression), NSNAP (how many snapshots)
/// and ORIGIN (for clones). With no TARGET, every dataset of every imported
/// pool. People also get each pool's totals; scripts get them with --pools.
#[derive(Debug, Parser)]
#[command(
    name = "kdf",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80
)]
pub struct Cli {
    /// Include every dataset below each target.
    #[arg(short = 'r')]
    pub recursive: bool,
    /// Include datasets at most DEPTH levels below each target.
    #[arg(short = 'd', value_name = "DEPTH")]
    pub depth: Option<u32>,
    /// Sort by FIELD: name (A-Z), or used, avail, refer, snaps, child,
    /// refreserv, ratio, nsnap (largest first).
    #[arg(short = 's', value_name = "FIELD", value_parser = SORT_FIELDS)]
    pub sort: Option<String>,
    /// Only datasets of this pool.
    #[arg(long)]
    pub pool: Option<String>,
    /// List each snapshot of the targets with its unique and written space.
    #[arg(long, conflicts_with = "pools")]
    pub snapshots: bool,
    /// Print the pools' totals (size, allocated, free, capacity, health).
    #[arg(long)]
    pub pools: bool,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Datasets or paths.
    pub targets: Vec<String>,
}

/// The fields `-s` sorts by.
pub const SORT_FIELDS: [&str; 9] = [
    "name",
    "used",
    "avail",
    "refer",
    "snaps",
    "child",
    "refreserv",
    "ratio",
    "nsnap",
];
