//! The command line of `kexport`.

use std::path::PathBuf;

use clap::Parser;

use crate::output::OutputArgs;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Every format of a golden disk, sealed on a copy, named by the environment:",
        &["KEXPORT_NAME=golden-v43 kexport /dev/zvol/tank/golden all /srv/images"],
    ),
    (
        "An image as it is to qcow2, uploaded with the host key checked:",
        &[
            "kexport --no-seal --upload root@images:/srv/in \\",
            "    --known-hosts /etc/kld/known_hosts /var/lib/images/golden.raw qcow2 /srv/images",
        ],
    ),
    (
        "An OVA for VMware with 4 CPUs and 8 GiB of memory:",
        &["kexport --name web --cpus 4 --memory 8192 /dev/zvol/tank/web ova /srv/images"],
    ),
];

/// Export a disk as verified golden images.
///
/// SOURCE (a block device, zvol or raw disk image, read as raw, never
/// probed; never one in use) is sealed first, on a copy (the source is
/// never changed), unless --no-seal; then written to each FORMAT under a
/// temporary name (qcow2 by kexport itself, hashed as it is written; the
/// others by qemu-img convert), checked (`qemu-img check` where the format
/// has one, `qemu-img compare` against what was exported), made durable,
/// given a NAME.FORMAT.sha256 beside it and renamed. An existing output is
/// never overwritten. FORMAT: qcow2, vmdk (streamOptimized), vhd (fixed,
/// whole MiB), ova, raw, or all.
#[derive(Debug, Parser)]
#[command(
    name = "kexport",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The files' name (default: $KEXPORT_NAME, else
    /// kld-export-YYYYMMDD-HHMMSS in UTC).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Export the source as it is, without sealing a copy first.
    #[arg(long)]
    pub no_seal: bool,
    /// Import the source's pool for sealing even if another system used it
    /// last without exporting it (a shut-down VM's root pool).
    #[arg(long)]
    pub force_import: bool,
    /// Copy each output and its checksum to USER@HOST:DIR over SSH, host
    /// key checked, remote checksum verified.
    #[arg(long, value_name = "USER@HOST:DIR")]
    pub upload: Option<String>,
    /// The known_hosts file to check the upload host's key against
    /// (default: ssh's own).
    #[arg(long, value_name = "FILE", requires = "upload")]
    pub known_hosts: Option<PathBuf>,
    /// The private key to log in to the upload host with.
    #[arg(long, value_name = "FILE", requires = "upload")]
    pub identity: Option<PathBuf>,
    /// The upload host's SSH port.
    #[arg(long, value_name = "PORT", requires = "upload")]
    pub port: Option<u16>,
    /// Virtual CPUs the OVA's descriptor gives the machine.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=768))]
    pub cpus: u32,
    /// Memory in MiB the OVA's descriptor gives the machine.
    #[arg(long, value_name = "MIB", default_value_t = 2048,
          value_parser = clap::value_parser!(u64).range(64..=16_777_216))]
    pub memory: u64,
    /// Print the commands and changes, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output modes of the summary.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The disk to export.
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// qcow2, vmdk, vhd, ova, raw or all.
    #[arg(value_name = "FORMAT")]
    pub format: String,
    /// Where the outputs go (created if missing).
    #[arg(value_name = "OUTDIR")]
    pub outdir: PathBuf,
}
