//! The command line of `knft`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::OutputArgs;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Change the firewall over SSH without locking yourself out: check,\n  \
         preview, apply with an automatic revert, keep it if SSH still works:",
        &[
            "knft check -f /etc/kld/zones.toml",
            "knft diff -f /etc/kld/zones.toml",
            "knft apply --confirm 60 -f /etc/kld/zones.toml",
            "knft confirm",
        ],
    ),
    (
        "Add a backend to a live set, atomically:",
        &["knft set add lb_pool 10.0.0.5"],
    ),
    ("Undo the last apply:", &["knft rollback"]),
];

/// nftables zones from a TOML file, applied atomically to kld's own table.
///
/// knft renders a zone file to table `inet kld`, checks it with `nft -c`,
/// loads it in one transaction (no other table is touched), reads it back
/// and verifies it. `apply --confirm SECS` undoes the change by itself unless
/// `knft confirm` runs in time. The state (previous ruleset, boot ruleset)
/// lives in --state-dir.
#[derive(Debug, Parser)]
#[command(
    name = "knft",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Where knft keeps the applied, previous and boot rulesets.
    #[arg(long, global = true, value_name = "DIR", default_value = kld_nft::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a zone file (and that nft accepts what it renders to).
    Check(FileArg),
    /// Show what applying a zone file would change in the live table.
    Diff(FileArg),
    /// Apply a zone file in one transaction, replacing table inet kld.
    Apply(Apply),
    /// Keep the change applied with --confirm.
    Confirm(DryRun),
    /// Restore table inet kld as it was before the last apply.
    Rollback(DryRun),
    /// List the live zones (or sets) and their drop counters.
    Show(Show),
    /// Add or delete elements of a named set, live and atomically.
    #[command(subcommand)]
    Set(SetCommand),
    /// (internal) Wait for a pending change's deadline and revert it unless
    /// it was confirmed; `apply --confirm` starts this detached.
    #[command(hide = true)]
    AwaitConfirm {
        /// The pending change's token.
        token: String,
    },
}

/// A zone file argument.
#[derive(Debug, clap::Args)]
pub struct FileArg {
    /// The zone file (TOML).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}

/// The arguments of `knft apply`.
#[derive(Debug, clap::Args)]
pub struct Apply {
    /// The zone file (TOML).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Revert by itself after SECS seconds unless `knft confirm` runs.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub confirm: Option<u64>,
    /// Print the exact ruleset text that would be loaded, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// A `--dry-run` flag alone.
#[derive(Debug, clap::Args)]
pub struct DryRun {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The arguments of `knft show`.
#[derive(Debug, clap::Args)]
pub struct Show {
    /// List the named sets and their elements instead of the zones.
    #[arg(long)]
    pub sets: bool,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `knft set add|del`.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Add elements (addresses or networks) to a set.
    Add(SetArgs),
    /// Delete elements from a set.
    Del(SetArgs),
}

/// The arguments of `knft set add|del`.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Print the nft command that would run, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A set of the zone file ([sets.NAME]).
    pub set: String,
    /// Addresses or networks (10.0.0.5, 2001:db8::/64).
    #[arg(required = true)]
    pub elements: Vec<String>,
}
