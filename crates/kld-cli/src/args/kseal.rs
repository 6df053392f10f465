//! The command line of `kseal`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::OutputArgs;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "See what sealing a mounted system would change, seal it, and audit it:",
        &[
            "kseal --dry-run /mnt/golden",
            "kseal /mnt/golden && kseal audit /mnt/golden",
        ],
    ),
    (
        "Seal a ZFS system disk, keeping its logs and removing authorized_keys too:",
        &["kseal --skip logs --with authorized-keys /dev/zvol/tank/golden"],
    ),
    (
        "Only reset the identity (machine-id and SSH host keys):",
        &["kseal --only machine-id,ssh-host-keys /mnt/golden"],
    ),
    (
        "The audit's findings for a script:",
        &["kseal audit --json /mnt/golden"],
    ),
];

/// Seal a system for cloning, or audit one.
///
/// ROOT is a mounted system tree (a directory), or a disk holding a ZFS
/// system (a block device, zvol or raw image): its pool is imported under a
/// temporary name and altroot, every dataset of the installed system is
/// mounted, sealed, and the pool exported again. Operations (see `kseal
/// ops`): machine-id, random-seed, ssh-host-keys, dhcp-leases,
/// udev-net-rules, cloud-init, histories, tmp-files, logs, package-cache,
/// installer-files, wireguard-keys, signing-keys, user-ssh-keys,
/// wifi-secrets; authorized-keys only when asked (--with or --only).
#[derive(Debug, Parser)]
#[command(
    name = "kseal",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// A subcommand; without one, ROOT is sealed.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// What to seal.
    #[command(flatten)]
    pub seal: Seal,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan ROOT for what a sealed image must not carry (exit 1 when
    /// anything is found).
    Audit(Audit),
    /// List the operations.
    Ops(OpsList),
}

/// The arguments of a seal.
#[derive(Debug, clap::Args)]
pub struct Seal {
    /// Print every operation and the exact change it makes, and change
    /// nothing (a disk's pool is imported read-only to look).
    #[arg(long)]
    pub dry_run: bool,
    /// Run only these operations (comma-separated).
    #[arg(long, value_name = "OPS", value_delimiter = ',', conflicts_with_all = ["skip", "with"])]
    pub only: Vec<String>,
    /// Run the default operations except these (comma-separated).
    #[arg(long, value_name = "OPS", value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Run these operations too (comma-separated), e.g. authorized-keys.
    #[arg(long, value_name = "OPS", value_delimiter = ',')]
    pub with: Vec<String>,
    /// Import a disk's pool even if another system used it last without
    /// exporting it (a shut-down VM's root pool). Never for a pool in use.
    #[arg(long)]
    pub force_import: bool,
    /// The system tree, or the disk holding a ZFS system.
    #[arg(value_name = "ROOT", required = true)]
    pub root: Option<PathBuf>,
}

/// The arguments of `kseal audit`.
#[derive(Debug, clap::Args)]
pub struct Audit {
    /// Output modes.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The system tree to scan.
    #[arg(value_name = "ROOT")]
    pub root: PathBuf,
}

/// The arguments of `kseal ops`.
#[derive(Debug, clap::Args)]
pub struct OpsList {
    /// Output modes.
    #[command(flatten)]
    pub output: OutputArgs,
}
