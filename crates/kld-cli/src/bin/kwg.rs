//! kwg: WireGuard keys, interfaces from wg-quick files, and a hub that
//! spokes join through a short enrolment window.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kld_cli::args::kwg::*;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{Cell, Table};
use kld_wg::conf::{Config, Interface, Peer};
use kld_wg::device::{self, DeviceError, Iface};
use kld_wg::endpoint::{Endpoint, Host};
use kld_wg::hub::{printable, Hub, HubInit as Init, DEFAULT_ENROL_PORT};
use kld_wg::key::{PresharedKey, PrivateKey};
use kld_wg::net::Cidr;
use kld_wg::token::Token;
use zeroize::Zeroizing;

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kwg", || match &cli.command {
        Command::Genkey => genkey(),
        Command::Pubkey => pubkey(),
        Command::Genpsk => print_line(&PresharedKey::generate().to_base64()),
        Command::Up(a) => up(&cli, a),
        Command::Down(a) => down(&cli, a),
        Command::Show(a) => show(a),
        Command::Apply(a) => apply(&cli, a),
        Command::Peer(PeerCommand::Add(a)) => peer_add(&cli, a),
        Command::Peer(PeerCommand::Remove(a)) => peer_remove(&cli, a),
        Command::Hub(HubCommand::Init(a)) => hub_init(&cli, a),
        Command::Hub(HubCommand::Serve(a)) => hub_serve(&cli, a),
        Command::Hub(HubCommand::Spokes(a)) => hub_spokes(&cli, a),
        Command::Enrol(EnrolCommand::Open(a)) => enrol_open(&cli, a),
        Command::Enrol(EnrolCommand::Close(a)) => enrol_close(&cli, a),
        Command::Enrol(EnrolCommand::List(a)) => enrol_list(&cli, a),
        Command::Join(a) => join(&cli, a),
        Command::Revoke(a) => revoke(&cli, a),
    })
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(e)
}

fn print_line(s: &str) -> Result<ExitCode, Failure> {
    let mut out = std::io::stdout();
    writeln!(out, "{s}").map_err(|e| fail(format!("cannot write: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

fn genkey() -> Result<ExitCode, Failure> {
    let mut line = Zeroizing::new(String::with_capacity(46));
    line.push_str(&Zeroizing::new(PrivateKey::generate().to_base64()));
    line.push('\n');
    write_secret_stdout(line.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn pubkey() -> Result<ExitCode, Failure> {
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read standard input: {e}")))?;
    let key = PrivateKey::from_base64(&text)
        .map_err(|e| Failure::usage(format!("standard input: {e}")))?;
    print_line(&key.public_key().to_base64())
}

fn iface(name: &str) -> Result<Iface, Failure> {
    Iface::new(name).map_err(Failure::usage)
}

fn conf_path(cli: &Cli, iface: &Iface) -> PathBuf {
    cli.config_dir.join(format!("{iface}.conf"))
}

fn read_conf(cli: &Cli, iface: &Iface) -> Result<Config, Failure> {
    let path = conf_path(cli, iface);
    Config::read(&path).map_err(|e| {
        let missing = matches!(&e, kld_wg::conf::ConfError::File(kld_wg::key::KeyError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound);
        let f = fail(e);
        if missing {
            f.hint(format!("write it, or make one with `kwg hub init {iface}` or `kwg join`"))
        } else {
            f
        }
    })
}

fn up(cli: &Cli, a: &IfaceArg) -> Result<ExitCode, Failure> {
    let iface = iface(&a.iface)?;
    let config = read_conf(cli, &iface)?;
    if a.dry_run {
        for step in kld_wg::link::plan_up(&iface, &config).map_err(fail)? {
            println!("{step}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    kld_wg::link::up(&iface, &config)
        .map_err(|e| fail(e).context(format!("cannot bring {iface} up")))?;
    let backend = iface.backend().map_or("?".into(), |b| b.to_string());
    println!("{iface} is up ({backend} WireGuard)");
    Ok(ExitCode::SUCCESS)
}

fn down(cli: &Cli, a: &IfaceArg) -> Result<ExitCode, Failure> {
    let iface = iface(&a.iface)?;
    let config = read_conf(cli, &iface)?;
    if a.dry_run {
        for step in kld_wg::link::plan_down(&iface, &config) {
            println!("{step}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    kld_wg::link::down(&iface, &config)
        .map_err(|e| fail(e).context(format!("cannot take {iface} down")))?;
    println!("{iface} is down");
    Ok(ExitCode::SUCCESS)
}

fn show(a: &Show) -> Result<ExitCode, Failure> {
    let ifaces = match &a.iface {
        Some(name) => vec![iface(name)?],
        None => device::list(),
    };
    let now = kld_wg::now();
    let mut table = Table::new(
        "WgPeerList",
        &[
            ("INTERFACE", "interface"),
            ("PEER", "publicKey"),
            ("ENDPOINT", "endpoint"),
            ("ALLOWED IPS", "allowedIps"),
            ("HANDSHAKE", "latestHandshake"),
            ("AGE", "handshakeAgeSeconds"),
            ("RX", "rxBytes"),
            ("TX", "txBytes"),
            ("STATE", "state"),
        ],
    );
    for i in &ifaces {
        let status = match device::show(i) {
            Ok(s) => s,
            // Listing all: one that went away meanwhile is not an error.
            Err(DeviceError::Missing(_)) if a.iface.is_none() => continue,
            Err(e) => return Err(fail(e)),
        };
        for p in &status.peers {
            let ips: Vec<String> = p.allowed_ips.iter().map(Cidr::to_string).collect();
            table.push(vec![
                Cell::text(i.as_str()),
                Cell::text(p.public_key.to_base64()),
                p.endpoint
                    .map_or_else(Cell::none, |e| Cell::text(e.to_string())),
                Cell::list(ips),
                p.latest_handshake.map_or_else(Cell::none, Cell::time),
                p.latest_handshake
                    .map_or_else(Cell::none, |t| Cell::number(now.saturating_sub(t))),
                Cell::bytes(p.rx_bytes),
                Cell::bytes(p.tx_bytes),
                Cell::text(if p.is_up(now) { "up" } else { "down" }),
            ]);
        }
    }
    table.print(&a.output);
    Ok(ExitCode::SUCCESS)
}

fn apply(cli: &Cli, a: &IfaceArg) -> Result<ExitCode, Failure> {
    let iface = iface(&a.iface)?;
    let config = read_conf(cli, &iface)?;
    let changes = if a.dry_run {
        device::plan_sync(&iface, &config)
    } else {
        device::sync(&iface, &config)
    }
    .map_err(|e| fail(e).hint(format!("`kwg up {iface}` creates it")))?;
    if changes.is_empty() {
        println!("no changes: {iface} is what its file describes");
    }
    let verb = if a.dry_run { "would " } else { "" };
    for c in changes {
        println!("{verb}{c}");
    }
    Ok(ExitCode::SUCCESS)
}

fn peer_add(cli: &Cli, a: &PeerAdd) -> Result<ExitCode, Failure> {
    let iface = iface(&a.iface)?;
    let key = a
        .public_key
        .parse()
        .map_err(|e| Failure::usage(format!("{}: {e}", a.public_key)))?;
    let mut allowed_ips = Vec::new();
    for c in a
        .allowed_ips
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        allowed_ips.push(c.parse::<Cidr>().map_err(Failure::usage)?);
    }
    let endpoint = a
        .endpoint
        .as_deref()
        .map(Endpoint::parse)
        .transpose()
        .map_err(|e| Failure::usage(format!("--endpoint: {e}")))?;
    let peer = Peer {
        allowed_ips,
        endpoint,
        persistent_keepalive: a.persistent_keepalive,
        ..Peer::new(key)
    };
    // Validates the peer as the file would, before anything is read or locked.
    let mut probe = Config::new(&Interface::default(), &[]).map_err(fail)?;
    probe.add_peer(&peer).map_err(Failure::usage)?;
    let path = conf_path(cli, &iface);
    let _lock = (!a.dry_run)
        .then(|| lock(cli, &iface, &format!("kwg peer add {iface}")))
        .transpose()?;
    let config = read_conf(cli, &iface)?;
    let mut edited = config.clone();
    edited.remove_peer(&key);
    edited.add_peer(&peer).map_err(Failure::usage)?;
    if a.dry_run {
        println!(
            "would add peer {key} to {} and to the live {iface}",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let live = iface.backend().is_some();
    if live {
        device::add_peer(&iface, &peer).map_err(fail)?;
    }
    if let Err(e) = edited.write(&path) {
        if live {
            // Put the live device back as the file says.
            let _ = device::sync(&iface, &config);
        }
        return Err(fail(format!("{}: {e}", path.display())));
    }
    println!(
        "added peer {key} to {}{}",
        path.display(),
        if live {
            format!(" and the live {iface}")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn peer_remove(cli: &Cli, a: &PeerRemove) -> Result<ExitCode, Failure> {
    let iface = iface(&a.iface)?;
    let key = a
        .public_key
        .parse()
        .map_err(|e| Failure::usage(format!("{}: {e}", a.public_key)))?;
    let path = conf_path(cli, &iface);
    let _lock = (!a.dry_run)
        .then(|| lock(cli, &iface, &format!("kwg peer remove {iface}")))
        .transpose()?;
    let mut config = read_conf(cli, &iface)?;
    if !config.remove_peer(&key) {
        return Err(fail(format!("{} has no peer {key}", path.display())));
    }
    if a.dry_run {
        println!(
            "would remove peer {key} from {} and the live {iface}",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let live = iface.backend().is_some();
    if live {
        device::remove_peer(&iface, &key).map_err(fail)?;
    }
    config
        .write(&path)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    println!("removed peer {key}");
    Ok(ExitCode::SUCCESS)
}

/// Tells a person why nothing happens yet.
fn waiting(holder: &str) {
    eprintln!("kwg: waiting for the interface's lock, held by {holder}");
}

/// The lock of an interface (shared with its hub): every command that
/// changes its file, live device or hub state holds it.
fn lock(cli: &Cli, iface: &Iface, purpose: &str) -> Result<kld_fs::lock::Lock, Failure> {
    kld_wg::hub::lock_iface(&cli.state_dir, iface, purpose, waiting).map_err(hub_failure)
}

fn hub(cli: &Cli, name: &str) -> Result<Hub, Failure> {
    let iface = iface(name)?;
    let purpose = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Hub::new(&cli.state_dir, &iface).with_purpose(&format!("kwg {purpose}"), waiting))
}

fn hub_failure(e: kld_wg::hub::HubError) -> Failure {
    use kld_wg::hub::HubError as E;
    let hint = match &e {
        E::NotAHub(..) => Some("`kwg hub init IFACE --network CIDR --endpoint HOST` makes one"),
        E::NoWindow(_) => Some("`kwg enrol list IFACE` lists the windows"),
        E::NoPeer(_) => Some("`kwg hub spokes IFACE` lists the spokes"),
        E::Full(_) => Some("revoke spokes that are gone, or use a larger range"),
        E::Locked(_) => Some("wait for it to finish, or end it"),
        _ => None,
    };
    let usage = matches!(e, E::Invalid(_));
    let f = if usage { Failure::usage(&e) } else { fail(&e) };
    match hint {
        Some(h) => f.hint(h),
        None => f,
    }
}

fn hub_init(cli: &Cli, a: &HubInit) -> Result<ExitCode, Failure> {
    let hub = hub(cli, &a.iface)?;
    let network: Cidr = a.network.parse().map_err(Failure::usage)?;
    let host = Host::parse(&a.endpoint).map_err(|e| Failure::usage(format!("--endpoint: {e}")))?;
    let enrol = match &a.enrol {
        Some(e) => Endpoint::parse(e).map_err(|e| Failure::usage(format!("--enrol: {e}")))?,
        None => Endpoint::new(host.clone(), DEFAULT_ENROL_PORT).map_err(Failure::usage)?,
    };
    let init = Init {
        network,
        endpoint_host: host,
        listen_port: a.listen_port,
        enrol,
        config: conf_path(cli, hub.iface()),
    };
    if a.dry_run {
        let (config, state) = hub.plan_init(&init).map_err(hub_failure)?;
        println!(
            "would write {} (mode 0600, a new private key):",
            init.config.display()
        );
        let key = config
            .interface()
            .private_key
            .as_ref()
            .map(PrivateKey::to_base64);
        let text = config.render();
        let shown = Zeroizing::new(key.map_or(text.to_string(), |k| text.replace(&k, "(new key)")));
        print!("{}", shown.as_str());
        println!(
            "hub {} of {}; spokes reach it at {}, join at {}",
            state.hub_address(),
            state.network,
            state.endpoint,
            state.enrol
        );
        return Ok(ExitCode::SUCCESS);
    }
    let state = hub.init(&init).map_err(hub_failure)?;
    let config = Config::read(&state.config).map_err(fail)?;
    let public = config
        .interface()
        .private_key
        .as_ref()
        .map(PrivateKey::public_key);
    println!(
        "hub {} on {}: address {} of {}, public key {}",
        hub.iface(),
        state.endpoint,
        state.hub_address(),
        state.network,
        public.map_or("?".into(), |k| k.to_base64())
    );
    println!(
        "next: `kwg up {0}`, `kwg hub serve {0}`, `kwg enrol open {0}`",
        hub.iface()
    );
    Ok(ExitCode::SUCCESS)
}

fn hub_serve(cli: &Cli, a: &HubServe) -> Result<ExitCode, Failure> {
    let hub = hub(cli, &a.iface)?;
    let addr = match &a.listen {
        Some(l) => Endpoint::parse(l).map_err(|e| Failure::usage(format!("--listen: {e}")))?,
        None => hub.state().map_err(hub_failure)?.enrol,
    };
    // Many slow clients must cost file descriptors, not joins.
    let fds = kld_wg::server::raise_fd_limit();
    // Start from a compact state: the journal folded into the snapshot.
    hub.compact().map_err(hub_failure)?;
    let listener = std::net::TcpListener::bind(addr.to_string())
        .map_err(|e| fail(format!("cannot listen on {addr}: {e}")))?;
    let mut limits = kld_wg::server::Limits::for_this_process();
    if let Some(n) = a.max_connections {
        limits.max_connections = n as usize;
    }
    eprintln!(
        "kwg: answering joins for {} on {addr} (at most {} connections, {} s each; {fds} files)",
        hub.iface(),
        limits.max_connections,
        limits.deadline.as_secs()
    );
    let log = |line: &str| eprintln!("kwg: {line}");
    hub.serve_with(listener, limits, &log)
        .map_err(|e| fail(format!("stopped answering joins on {addr}: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

fn hub_spokes(cli: &Cli, a: &HubSpokes) -> Result<ExitCode, Failure> {
    let hub = hub(cli, &a.iface)?;
    let state = hub.state().map_err(hub_failure)?;
    let mut table = Table::new(
        "WgSpokeList",
        &[
            ("NAME", "name"),
            ("ADDRESS", "address"),
            ("PEER", "publicKey"),
            ("JOINED", "joined"),
        ],
    );
    for s in &state.spokes {
        table.push(vec![
            // Checked at enrolment, escaped anyway (a state from before).
            Cell::text(printable(&s.name)),
            Cell::text(s.address.to_string()),
            Cell::text(s.public_key.to_base64()),
            Cell::time(s.joined),
        ]);
    }
    table.print(&a.output);
    Ok(ExitCode::SUCCESS)
}

fn enrol_open(cli: &Cli, a: &EnrolOpen) -> Result<ExitCode, Failure> {
    let hub = hub(cli, &a.iface)?;
    if a.dry_run {
        let state = hub.state().map_err(hub_failure)?;
        println!(
            "would open a window on {} for {} joins until {} (joins answered at {})",
            hub.iface(),
            a.joins,
            kld_cli::time::iso_utc(kld_wg::now() + a.duration),
            state.enrol
        );
        return Ok(ExitCode::SUCCESS);
    }
    let token = hub
        .open_window(a.duration, a.joins, kld_wg::now())
        .map_err(hub_failure)?;
    eprintln!(
        "kwg: window {} open for {} joins, {} s; the token is a secret: copy it to each \
         spoke in a file only root can read (or a pipe), and there run \
         `kwg join --iface {} --token-file FILE` (never the token itself as an argument)",
        token.window,
        a.joins,
        a.duration,
        hub.iface()
    );
    let mut line = token.encode();
    line.push('\n');
    write_secret_stdout(line.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to standard output without the standard library's
/// buffer (which would keep a copy of a secret).
fn write_secret_stdout(bytes: &[u8]) -> Result<(), Failure> {
    use std::os::fd::AsFd;
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| fail(format!("cannot write: {e}")))?;
    std::fs::File::from(fd)
        .write_all(bytes)
        .map_err(|e| fail(format!("cannot write: {e}")))
}

fn enrol_close(cli: &Cli, a: &EnrolClose) -> Result<ExitCode, Failure> {
    let hub = hub(cli, &a.iface)?;
    if a.dry_run {
        let state = hub.state().map_err(hub_failure)?;
        if !state.windows.iter().any(|w| w.id == a.window) {
            return Err(hub_failure(kld_wg::hub::HubError::NoWindow(
                a.window.clone(),
            )));
        }
        println!("would close window {}", a.window);
        return Ok(ExitCode::SUCCESS);
    }
    hub.close_window(&a.window).map_err(hub_failure)?;
    println!("closed window {}", a.window);
    Ok(ExitCode::SUCCESS)
}

fn enrol_list(cli: &Cli, a: &EnrolList) -> Result<ExitCode, Failure> {
    let hub = hub(cli, &a.iface)?;
    let state = hub.state().map_err(hub_failure)?;
    let now = kld_wg::now();
    let mut table = Table::new(
        "WgEnrolWindowList",
        &[
            ("WINDOW", "id"),
            ("EXPIRES", "expires"),
            ("JOINS LEFT", "joinsLeft"),
            ("JOINED", "joined"),
            ("STATE", "state"),
        ],
    );
    for w in &state.windows {
        table.push(vec![
            Cell::text(&w.id),
            Cell::time(w.expires),
            Cell::number(u64::from(w.joins_left)),
            Cell::number(w.joined.len() as u64),
            Cell::text(if w.is_open(now) { "open" } else { "closed" }),
        ]);
    }
    table.print(&a.output);
    Ok(ExitCode::SUCCESS)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The most bytes read for a token (it is about 130).
const MAX_TOKEN_TEXT: u64 = 4096;

/// Reads the token from `--token-file` (`-`: standard input), never from
/// the command line: any local user can read a process's arguments.
fn read_token(a: &Join) -> Result<Token, Failure> {
    let source = match (&a.token, &a.token_file) {
        (Some(t), _) if t != "-" => {
            return Err(Failure::usage(
                "a token on the command line can be read by every local user (in /proc or ps) \
                 and spent: it is refused",
            )
            .hint(
                "close that window (`kwg enrol close IFACE WINDOW` on the hub) and open another; \
                 then `kwg join --token-file FILE`, or pipe the token on standard input",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Failure::usage("give the token once: `-` or --token-file"))
        }
        (Some(_), None) | (None, None) => PathBuf::from("-"),
        (None, Some(f)) => f.clone(),
    };
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_TOKEN_TEXT as usize + 1));
    let (what, read) = if source.as_os_str() == "-" {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            eprintln!("kwg: paste the token from `kwg enrol open`, then Enter and Ctrl-D");
        }
        let r = std::io::stdin()
            .lock()
            .take(MAX_TOKEN_TEXT + 1)
            .read_to_end(&mut text);
        ("standard input".to_owned(), r)
    } else {
        let r = std::fs::File::open(&source)
            .and_then(|f| f.take(MAX_TOKEN_TEXT + 1).read_to_end(&mut text));
        (source.display().to_string(), r)
    };
    read.map_err(|e| fail(format!("cannot read the token from {what}: {e}")))?;
    if text.len() as u64 > MAX_TOKEN_TEXT {
        return Err(Failure::usage(format!(
            "{what}: longer than a token ({MAX_TOKEN_TEXT} bytes or more)"
        )));
    }
    let line =
        std::str::from_utf8(&text).map_err(|_| Failure::usage(format!("{what}: not a token")))?;
    Token::decode(line).map_err(|e| Failure::usage(format!("{what}: {e}")))
}

/// The key a join uses, kept (0600) in STATE_DIR/IFACE/join.key until the
/// file is written: a join killed after the hub answered asks again with
/// the same key, and the hub gives the same address again.
fn join_key(cli: &Cli, iface: &Iface, token: &Token) -> Result<PrivateKey, Failure> {
    let path = cli.state_dir.join(iface.as_str()).join("join.key");
    let tag = format!("hub {}\n", token.hub_key);
    if let Ok(text) = kld_wg::key::read_secret(&path) {
        if let Some(rest) = text.strip_prefix(tag.as_str()) {
            if let Ok(key) = PrivateKey::from_base64(rest) {
                return Ok(key);
            }
        }
    }
    let key = PrivateKey::generate();
    let mut text = Zeroizing::new(String::with_capacity(tag.len() + 46));
    text.push_str(&tag);
    text.push_str(&Zeroizing::new(key.to_base64()));
    text.push('\n');
    kld_fs::secret::write(&path, text.as_bytes())
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    Ok(key)
}

fn join(cli: &Cli, a: &Join) -> Result<ExitCode, Failure> {
    let iface = iface(&a.iface)?;
    let token = read_token(a)?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => host_name(),
    };
    kld_wg::hub::check_spoke_name(&name)
        .map_err(|e| Failure::usage(e).hint("choose another with --name (a host name fits)"))?;
    let path = conf_path(cli, &iface);
    let purpose = format!("kwg join --iface {iface}");
    let held = (!a.dry_run)
        .then(|| lock(cli, &iface, &purpose))
        .transpose()?;
    let pending = cli.state_dir.join(iface.as_str()).join("join.key");
    if path.exists() && !a.dry_run && pending.exists() {
        // A join killed after writing the file: the key it kept is the
        // file's key. Finish it.
        let config = read_conf(cli, &iface)?;
        let key = join_key(cli, &iface, &token)?;
        if config.interface().private_key.as_ref() == Some(&key) {
            std::fs::remove_file(&pending)
                .map_err(|e| fail(format!("{}: {e}", pending.display())))?;
            kld_fs::fault::step(|| format!("remove {}", pending.display()));
            println!("finishing the join that wrote {}", path.display());
            if !a.no_up && !iface.exists() {
                kld_wg::link::up(&iface, &config)
                    .map_err(|e| fail(e).context(format!("cannot bring {iface} up")))?;
                println!("{iface} is up");
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    if path.exists() {
        return Err(fail(format!(
            "{} exists already: nothing was changed",
            path.display()
        ))
        .hint(format!(
            "join with another --iface, or `kwg down {iface}` and remove the file first \
             (if a join was cut short after writing it: `kwg down {iface}; kwg up {iface}`)"
        )));
    }
    if a.dry_run {
        println!(
            "would make a new key, join the hub {} at {} (window {}), write {}{}",
            token.hub_key,
            token.enrol,
            token.window,
            path.display(),
            if a.no_up {
                String::new()
            } else {
                format!(" and bring {iface} up")
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let key = join_key(cli, &iface, &token)?;
    // Not held while the hub is asked: a hub of the same name on this host
    // (same state directory) takes this lock to answer.
    drop(held);
    let allocation = kld_wg::enrol::join(&token, &key, &name, kld_wg::now()).map_err(|e| {
        // A definite answer (a refusal, or not the hub): nothing was
        // allocated to this key, so it is not kept. Otherwise (the network
        // failed, maybe after the hub allocated) it is, for a retry.
        let definite = !matches!(e, kld_wg::enrol::JoinError::Network { .. });
        if definite {
            let _ = std::fs::remove_file(&pending);
        }
        let f = fail(e).context("cannot join");
        if definite {
            f.hint("nothing was changed on this host")
        } else {
            f.hint("nothing was changed on this host; run the same `kwg join` again to retry")
        }
    })?;
    kld_fs::fault::step(|| format!("the hub {} answered the join", token.hub_key));
    let interface = Interface {
        addresses: vec![allocation.address],
        private_key: Some(key),
        ..Interface::default()
    };
    let hub_peer = Peer {
        allowed_ips: vec![allocation.network],
        endpoint: Some(allocation.endpoint.clone()),
        persistent_keepalive: Some(25),
        ..Peer::new(token.hub_key)
    };
    let config = Config::new(&interface, &[hub_peer]).map_err(|e| {
        fail(format!(
            "the hub's answer does not make a wg-quick file: {e}"
        ))
    })?;
    let retry = format!(
        "run the same `kwg join` again (it asks with the same key and gets the same address), \
         or on the hub: `kwg revoke --iface IFACE {}`",
        allocation.address.addr
    );
    let _lock = lock(cli, &iface, &purpose)?;
    if path.exists() {
        // Another `kwg join` of this interface (with the same kept key, so
        // the same address) finished first.
        return Err(fail(format!(
            "{} was written by another kwg join meanwhile: nothing more was changed",
            path.display()
        )));
    }
    std::fs::create_dir_all(&cli.config_dir)
        .and_then(|()| config.write(&path))
        .map_err(|e| {
            fail(format!(
                "joined as {}, but cannot write {}: {e}",
                allocation.address,
                path.display()
            ))
            .hint(&retry)
        })?;
    if let Err(e) = std::fs::remove_file(&pending) {
        eprintln!("kwg: warning: cannot remove {}: {e}", pending.display());
    }
    kld_fs::fault::step(|| format!("remove {}", pending.display()));
    println!(
        "joined hub {} as {} ({})",
        token.hub_key,
        allocation.address,
        path.display()
    );
    if !a.no_up {
        kld_wg::link::up(&iface, &config).map_err(|e| {
            fail(e)
                .context(format!("cannot bring {iface} up"))
                .hint(format!(
                    "the file is written: `kwg down {iface}; kwg up {iface}`"
                ))
        })?;
        println!("{iface} is up");
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(cli: &Cli, a: &Revoke) -> Result<ExitCode, Failure> {
    let hub = hub(cli, &a.iface)?;
    if a.dry_run {
        let state = hub.state().map_err(hub_failure)?;
        let s = hub.find(&state, &a.peer).map_err(hub_failure)?;
        println!(
            "would revoke {} ({}, {}) live and in the file",
            s.public_key,
            s.address,
            printable(&s.name)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let s = hub.revoke(&a.peer).map_err(hub_failure)?;
    println!(
        "revoked {} ({}); its address is free again",
        s.public_key, s.address
    );
    Ok(ExitCode::SUCCESS)
}
