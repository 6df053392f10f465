//! The command line of `kdir`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use kld_zfs::props::Property;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "A dataset for PostgreSQL's data, tuned for it, before installing it:",
        &["kdir --preset postgres /srv/pgdata"],
    ),
    (
        "Move a directory that already holds data onto its own dataset:",
        &[
            "kdir --migrate --dry-run /var/lib/docker",
            "kdir --migrate /var/lib/docker",
        ],
    ),
    (
        "A dataset with its own quota:",
        &["kdir -o quota=50G /srv/builds"],
    ),
];

/// Create a ZFS dataset where a directory would go.
///
/// kdir finds the dataset that holds PATH (by the datasets' mountpoints, so
/// canmount=off containers such as rpool/var at /var count) and creates the
/// child dataset that mounts at PATH, with compression=lz4 and atime=off
/// unless told otherwise. The name follows the path (rpool/srv + /srv/db ->
/// rpool/srv/db) and the mountpoint is inherited where it maps; otherwise it
/// is set explicitly.
///
/// A path whose nearest dataset is the boot environment (the dataset at /)
/// is refused, since the new dataset would then travel with the OS in every
/// snapshot and rollback; choose its parent with --parent.
#[derive(Debug, Parser)]
#[command(
    name = "kdir",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80
)]
pub struct Cli {
    /// Create missing intermediate datasets too, all or nothing.
    #[arg(short = 'p')]
    pub parents: bool,
    /// Tune for a workload (properties -o can still override).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Set a property on the new dataset (repeatable), e.g. -o quota=10G.
    #[arg(short = 'o', value_name = "PROP=VALUE", value_parser = Property::parse)]
    pub props: Vec<Property>,
    /// Create the dataset below DATASET instead of below the dataset that
    /// holds PATH (its mountpoint is then set explicitly).
    #[arg(long, value_name = "DATASET")]
    pub parent: Option<String>,
    /// Move an existing non-empty directory's contents into the new
    /// dataset: copy, verify, then swap; the original is kept until the copy
    /// is verified, and an interrupted run is picked up again.
    #[arg(long)]
    pub migrate: bool,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Absolute paths.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Workload presets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Preset {
    /// PostgreSQL: recordsize=8K, logbias=throughput, xattr=sa.
    Postgres,
    /// MySQL/MariaDB InnoDB: recordsize=16K, logbias=throughput, xattr=sa.
    Mysql,
    /// Large media files: recordsize=1M.
    Media,
    /// VM disk images (qcow2, raw): recordsize=64K, xattr=sa.
    Vm,
    /// Logs and text archives: compression=zstd, recordsize=128K.
    Logs,
}

impl Preset {
    /// The properties the preset sets.
    pub fn properties(self) -> &'static [&'static str] {
        match self {
            Preset::Postgres => &["recordsize=8K", "logbias=throughput", "xattr=sa"],
            Preset::Mysql => &["recordsize=16K", "logbias=throughput", "xattr=sa"],
            Preset::Media => &["recordsize=1M"],
            Preset::Vm => &["recordsize=64K", "xattr=sa"],
            Preset::Logs => &["compression=zstd", "recordsize=128K"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_properties() {
        for p in Preset::value_variants() {
            for prop in p.properties() {
                Property::parse(prop).unwrap();
            }
        }
    }
}
