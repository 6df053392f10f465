//! The command line of `kdarksite`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::OutputArgs;

/// Worked examples, shown at the end of `--help` and in the man page.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Build a signed offline mirror of a package set, for hosts without a\n  \
         network:",
        &[
            "kdarksite resolve server.toml --mirror http://deb.debian.org/debian",
            "kdarksite build server.toml --mirror http://deb.debian.org/debian \\",
            "    --out /srv/darksite --key /root/darksite.key",
        ],
    ),
    (
        "Refresh it later, downloading only what changed:",
        &[
            "kdarksite update --dry-run /srv/darksite",
            "kdarksite update /srv/darksite",
        ],
    ),
    (
        "Check it and serve it to the LAN:",
        &[
            "kdarksite verify /srv/darksite",
            "kdarksite serve /srv/darksite --listen 0.0.0.0:8080",
        ],
    ),
];

/// Darksites: signed offline APT mirrors that install air-gapped machines.
///
/// A package set (TOML) names a distribution, its suites, components and
/// architectures, the packages wanted and the base system; kdarksite
/// resolves its complete dependency closure as apt would, downloads every
/// package verified against the signed upstream indices, and publishes a
/// standard APT repository signed with the darksite's own key. Clients use
/// `deb [signed-by=DIR/current/kld-darksite.gpg] file:///DIR/current SUITE
/// main` or the same over `kdarksite serve`.
#[derive(Debug, Parser)]
#[command(
    name = "kdarksite",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kdarksite's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the dependency closure of a package set (nothing is written
    /// but the index cache).
    Resolve(ResolveArgs),
    /// Build a darksite: resolve, download, verify, publish signed, swap in.
    Build(BuildArgs),
    /// Rebuild a darksite from the set, mirror and key of its last build,
    /// downloading only what changed.
    Update(UpdateArgs),
    /// Check a published darksite: signatures, every index, every package.
    Verify(VerifyArgs),
    /// Put the previous publication back in service.
    Rollback(RollbackArgs),
    /// Serve a darksite's current publication over HTTP (for installs
    /// over a LAN).
    Serve(ServeArgs),
}

/// `kdarksite resolve`.
#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    /// The package set (TOML).
    pub set: PathBuf,
    /// The upstream mirror: http://HOST/PATH or file:///PATH.
    #[arg(long, value_name = "URL")]
    pub mirror: String,
    /// Where upstream indices are cached between runs [default:
    /// $XDG_CACHE_HOME/kdarksite or ~/.cache/kdarksite].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `kdarksite build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The package set (TOML).
    pub set: PathBuf,
    /// The upstream mirror: http://HOST/PATH or file:///PATH.
    #[arg(long, value_name = "URL")]
    pub mirror: String,
    /// The darksite directory (made if missing; an existing darksite is
    /// updated).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The signing key: an OpenPGP secret key file, mode 0600 [default:
    /// the darksite's own, made on the first build in DIR/.kdarksite].
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Resolve and print what would be downloaded and published; change
    /// nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Build even from an upstream Release older than the one the last
    /// build used (refused by default: a replayed or rolled-back mirror).
    #[arg(long)]
    pub allow_older: bool,
    /// No progress bar, even on a terminal.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `kdarksite update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The darksite directory.
    pub dir: PathBuf,
    /// Another mirror than the last build's.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Parallel downloads.
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Resolve and print what would change; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Update even from an upstream Release older than the one the last
    /// build used (refused by default: a replayed or rolled-back mirror).
    #[arg(long)]
    pub allow_older: bool,
    /// No progress bar, even on a terminal.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `kdarksite verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The darksite directory (its current publication is checked) or one
    /// publication.
    pub dir: PathBuf,
    /// The keyring the signature must verify against [default: the
    /// publication's own kld-darksite.gpg].
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// JSON: {"apiVersion": "kld/v1", "kind": "DarksiteVerification", ...}.
    #[arg(long)]
    pub json: bool,
}

/// `kdarksite rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The darksite directory.
    pub dir: PathBuf,
    /// Print what would be put back; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// `kdarksite serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The darksite directory.
    pub dir: PathBuf,
    /// Address and port to listen on (0.0.0.0:PORT for a LAN).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
}
