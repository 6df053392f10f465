//! The command line of `kbe`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::OutputArgs;
use crate::time;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Make a boot environment before an upgrade, upgrade it, boot it:",
        &[
            "kbe create pre-upgrade-20260101",
            "kbe mount pre-upgrade-20260101 /mnt/be",
            "chroot /mnt/be sh -c 'apt-get update && apt-get -y full-upgrade'",
            "kbe unmount pre-upgrade-20260101",
            "kbe activate pre-upgrade-20260101",
        ],
    ),
    (
        "The upgrade went wrong: boot the previous boot environment next:",
        &["kbe rollback"],
    ),
    (
        "Adopt a golden image received with zfs receive as a boot environment:",
        &["kbe create golden-v43 rpool/incoming/debian-v43"],
    ),
    (
        "Keep the newest five, and none older than 30 days:",
        &[
            "kbe prune --older-than 30d --keep 5 --dry-run",
            "kbe prune --older-than 30d --keep 5",
        ],
    ),
];

/// Boot environments: a bootable copy of the system before every upgrade,
/// and the way back.
///
/// A boot environment is a child of the boot environment root (the parent
/// of the dataset mounted at /, e.g. rpool/ROOT) with mountpoint=/; its
/// children travel with it. The pool boots the one in its bootfs property
/// (ZFSBootMenu and Debian's root=zfs:AUTO read it).
#[derive(Debug, Parser)]
#[command(
    name = "kbe",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Use POOL/ROOT as the boot environment root.
    #[arg(long, global = true, conflicts_with = "root")]
    pub pool: Option<String>,
    /// Use this dataset as the boot environment root.
    #[arg(long, global = true, value_name = "DATASET")]
    pub root: Option<String>,
    /// Run the executables in DIR on activate, for bootloaders that do not
    /// read bootfs.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/etc/kld/be.d"
    )]
    pub hooks_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List boot environments: flags N (running now), R (boots on reboot),
    /// B (where rollback goes), I (incomplete: an interrupted create, which
    /// the next kbe change removes).
    List(List),
    /// Print the name of the running boot environment.
    Current(Current),
    /// Create a boot environment from the running one, another one
    /// (NAME or NAME@SNAP), or a dataset or snapshot given with its pool
    /// (e.g. a zfs receive target).
    Create(Create),
    /// Boot NAME next (set the pool's bootfs); alias: set-default.
    #[command(visible_alias = "set-default")]
    Activate(Named),
    /// Boot the previously active boot environment next.
    Rollback(DryRun),
    /// Rename a boot environment.
    Rename(Rename),
    /// Destroy a boot environment, its children and its origin snapshot.
    Destroy(Named),
    /// Mount a boot environment and its children at PATH.
    Mount(Mount),
    /// Unmount a boot environment mounted with kbe mount.
    Unmount(Named),
    /// Destroy old boot environments, by age or by count.
    Prune(Prune),
}

/// The arguments of `kbe list`.
#[derive(Debug, clap::Args)]
pub struct List {
    /// Also show each boot environment's datasets, and the datasets that
    /// every boot environment shares.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The arguments of `kbe current`.
#[derive(Debug, clap::Args)]
pub struct Current {
    /// JSON: the running, next-boot and rollback boot environments.
    #[arg(long)]
    pub json: bool,
}

/// Only `--dry-run`.
#[derive(Debug, clap::Args)]
pub struct DryRun {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// A command on one named boot environment.
#[derive(Debug, clap::Args)]
pub struct Named {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The boot environment.
    pub name: String,
}

/// The arguments of `kbe create`.
#[derive(Debug, clap::Args)]
pub struct Create {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The new boot environment's name.
    pub name: String,
    /// What to create it from: a boot environment (NAME), a snapshot of one
    /// (NAME@SNAP), or a dataset or snapshot given with its pool. Default:
    /// the running boot environment.
    pub from: Option<String>,
}

/// The arguments of `kbe rename`.
#[derive(Debug, clap::Args)]
pub struct Rename {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The boot environment.
    pub old: String,
    /// Its new name.
    pub new: String,
}

/// The arguments of `kbe mount`.
#[derive(Debug, clap::Args)]
pub struct Mount {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The boot environment.
    pub name: String,
    /// An existing directory.
    pub path: PathBuf,
}

/// The arguments of `kbe prune`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).multiple(true).args(["keep", "older_than"])))]
pub struct Prune {
    /// Destroy only boot environments created longer ago than DURATION
    /// (e.g. 30d, 12h, 2w).
    #[arg(long, value_name = "DURATION", value_parser = time::parse_duration)]
    pub older_than: Option<u64>,
    /// Keep the N newest boot environments.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}
