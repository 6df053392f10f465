//! The command line of `kwg`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::OutputArgs;

/// Examples from the seeds' backplane: a hub, a window, spokes joining.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Make this host the hub of a management network, and bring it up:",
        &[
            "kwg hub init wg0 --network 10.250.0.0/16 --endpoint hub.example.org",
            "kwg up wg0 && systemctl enable --now kwg-hub@wg0",
        ],
    ),
    (
        "Let three workers join in the next 15 minutes (the token is a secret):",
        &["(umask 077; kwg enrol open wg0 --joins 3 --for 15m > token)"],
    ),
    (
        "On each worker (its key never leaves it; the token never in argv):",
        &["kwg join --iface wg0 --token-file token"],
    ),
    (
        "Who is up, and cut one worker off:",
        &["kwg show -H", "kwg revoke --iface wg0 10.250.0.7"],
    ),
];

/// WireGuard: keys, interfaces from wg-quick files, and a hub that spokes
/// join through a short enrolment window.
///
/// Interface files are CONFIG_DIR/IFACE.conf (wg-quick's format, mode 0600).
/// A hub keeps its windows and spokes in STATE_DIR/IFACE/. Private keys never
/// appear in arguments or output.
#[derive(Debug, Parser)]
#[command(
    name = "kwg",
    version = super::VERSION,
    after_long_help = super::examples(EXAMPLES),
    term_width = 80,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Where the wg-quick files are.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/etc/wireguard"
    )]
    pub config_dir: PathBuf,
    /// Where hubs keep their windows and spokes.
    #[arg(long, global = true, value_name = "DIR", default_value = kld_wg::hub::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a new private key (as `wg genkey`).
    Genkey,
    /// Read a private key on stdin, print its public key (as `wg pubkey`).
    Pubkey,
    /// Print a new preshared key (as `wg genpsk`).
    Genpsk,
    /// Bring an interface up from its file (as `wg-quick up`).
    Up(IfaceArg),
    /// Take an interface down (as `wg-quick down`).
    Down(IfaceArg),
    /// List interfaces' peers: handshake age, transfer, up or down.
    Show(Show),
    /// Make the live interface match its file (as `wg syncconf`).
    Apply(IfaceArg),
    /// Add or remove a peer, live and in the file together.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Hubs.
    #[command(subcommand)]
    Hub(HubCommand),
    /// Enrolment windows of a hub.
    #[command(subcommand)]
    Enrol(EnrolCommand),
    /// Join a hub with a token from `kwg enrol open`, read from
    /// --token-file or standard input (never an argument: the process list
    /// would show it).
    Join(Join),
    /// Revoke a spoke of a hub (by public key or address).
    Revoke(Revoke),
}

/// An interface and `--dry-run`.
#[derive(Debug, clap::Args)]
pub struct IfaceArg {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The interface (its file is CONFIG_DIR/IFACE.conf).
    pub iface: String,
}

/// The arguments of `kwg show`.
#[derive(Debug, clap::Args)]
pub struct Show {
    /// Only this interface.
    pub iface: Option<String>,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `kwg peer add|remove`.
#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Add a peer (or change one) live and in the file.
    Add(PeerAdd),
    /// Remove a peer live and from the file.
    Remove(PeerRemove),
}

/// The arguments of `kwg peer add`.
#[derive(Debug, clap::Args)]
pub struct PeerAdd {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The interface.
    pub iface: String,
    /// The peer's public key.
    pub public_key: String,
    /// Its allowed IPs (comma-separated networks).
    #[arg(long, value_name = "CIDRS", required = true)]
    pub allowed_ips: String,
    /// Its endpoint (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub endpoint: Option<String>,
    /// Keepalive interval in seconds.
    #[arg(long, value_name = "SECS")]
    pub persistent_keepalive: Option<u16>,
}

/// The arguments of `kwg peer remove`.
#[derive(Debug, clap::Args)]
pub struct PeerRemove {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The interface.
    pub iface: String,
    /// The peer's public key.
    pub public_key: String,
}

/// `kwg hub init|serve|list`.
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Make this host a hub: a new key and wg-quick file for IFACE.
    Init(HubInit),
    /// Answer joins (foreground; kwg-hub@IFACE.service runs it).
    Serve(HubServe),
    /// List the hub's spokes.
    Spokes(HubSpokes),
}

/// The arguments of `kwg hub init`.
#[derive(Debug, clap::Args)]
pub struct HubInit {
    /// Print the file and state it would write (no key), and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The interface.
    pub iface: String,
    /// The address range (IPv4 or IPv6, any size); the hub takes its first
    /// address.
    #[arg(long, value_name = "CIDR")]
    pub network: String,
    /// The host name or address spokes reach the hub at.
    #[arg(long, value_name = "HOST")]
    pub endpoint: String,
    /// The WireGuard port.
    #[arg(long, value_name = "PORT", default_value_t = 51820)]
    pub listen_port: u16,
    /// Where `kwg hub serve` answers joins (HOST:PORT; the host defaults to
    /// --endpoint, the port to 51821).
    #[arg(long, value_name = "HOST:PORT")]
    pub enrol: Option<String>,
}

/// The arguments of `kwg hub serve`.
#[derive(Debug, clap::Args)]
pub struct HubServe {
    /// The interface.
    pub iface: String,
    /// Listen here instead of the hub's enrolment address (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Connections open at once; at the cap the oldest is closed for a new
    /// one (default: the open-file limit less 64, at most 4096).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
}

/// The arguments of `kwg hub spokes`.
#[derive(Debug, clap::Args)]
pub struct HubSpokes {
    /// The interface.
    pub iface: String,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `kwg enrol open|close|list`.
#[derive(Debug, Subcommand)]
pub enum EnrolCommand {
    /// Open a window and print its token (the only copy of its secret).
    Open(EnrolOpen),
    /// Close a window.
    Close(EnrolClose),
    /// List the windows.
    List(EnrolList),
}

/// The arguments of `kwg enrol open`.
#[derive(Debug, clap::Args)]
pub struct EnrolOpen {
    /// Print the window it would open (no token), and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The hub's interface.
    pub iface: String,
    /// How long it stays open (30s, 10m, 1h, 1d).
    #[arg(long = "for", value_name = "DURATION", default_value = "15m", value_parser = crate::time::parse_duration)]
    pub duration: u64,
    /// How many spokes may join through it.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub joins: u32,
}

/// The arguments of `kwg enrol close`.
#[derive(Debug, clap::Args)]
pub struct EnrolClose {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The hub's interface.
    pub iface: String,
    /// The window's id (from `kwg enrol list`).
    pub window: String,
}

/// The arguments of `kwg enrol list`.
#[derive(Debug, clap::Args)]
pub struct EnrolList {
    /// The hub's interface.
    pub iface: String,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The arguments of `kwg join`.
#[derive(Debug, clap::Args)]
pub struct Join {
    /// Check the token and print what would be done, contacting nobody.
    #[arg(long)]
    pub dry_run: bool,
    /// The interface to make.
    #[arg(long, value_name = "IFACE", default_value = "wg0")]
    pub iface: String,
    /// Write the file but do not bring the interface up.
    #[arg(long)]
    pub no_up: bool,
    /// The name the hub lists this host under (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// The file holding the token (`-`: standard input, the default).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// `-` (standard input). A token itself is refused here: every local
    /// user can read a process's arguments.
    #[arg(value_name = "-", hide = true)]
    pub token: Option<String>,
}

/// The arguments of `kwg revoke`.
#[derive(Debug, clap::Args)]
pub struct Revoke {
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The hub's interface.
    #[arg(long, value_name = "IFACE", default_value = "wg0")]
    pub iface: String,
    /// The spoke: its public key or its address.
    pub peer: String,
}
