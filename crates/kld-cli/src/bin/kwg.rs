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
use kld_wg::hub::{Hub, HubInit as Init, DEFAULT_ENROL_PORT};
use kld_wg::key::{PresharedKey, PrivateKey};
use kld_wg::net::Cidr;
use kld_wg::token::Token;

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kwg", || match &cli.command {
        Command::Genkey => print_line(&PrivateKey::generate().to_base64()),
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
    let peer = Peer {
        allowed_ips,
        endpoint: a.endpoint.clone(),
        persistent_keepalive: a.persistent_keepalive,
        ..Peer::new(key)
    };
    let path = conf_path(cli, &iface);
    let config = read_conf(cli, &iface)?;
    let mut edited = config.clone();
    edited.remove_peer(&key);
    // Validates the peer as the file would (the endpoint, for one).
    let mut probe = Config::new(&Interface::default(), &[]);
    probe.add_peer(&peer).map_err(Failure::usage)?;
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

fn hub(cli: &Cli, name: &str) -> Result<Hub, Failure> {
    Ok(Hub::new(&cli.state_dir, &iface(name)?))
}

fn hub_failure(e: kld_wg::hub::HubError) -> Failure {
    use kld_wg::hub::HubError as E;
    let hint = match &e {
        E::NotAHub(..) => Some("`kwg hub init IFACE --network CIDR --endpoint HOST` makes one"),
        E::NoWindow(_) => Some("`kwg enrol list IFACE` lists the windows"),
        E::NoPeer(_) => Some("`kwg hub spokes IFACE` lists the spokes"),
        E::Full(_) => Some("revoke spokes that are gone, or use a larger range"),
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
    let enrol = a.enrol.clone().unwrap_or_else(|| {
        if a.endpoint.contains(':') {
            format!("[{}]:{DEFAULT_ENROL_PORT}", a.endpoint)
        } else {
            format!("{}:{DEFAULT_ENROL_PORT}", a.endpoint)
        }
    });
    let init = Init {
        network,
        endpoint_host: a.endpoint.clone(),
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
        let text = key.map_or(text.clone(), |k| text.replace(&k, "(new key)"));
        print!("{text}");
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
    // Start from a compact state: the journal folded into the snapshot.
    let state = hub.compact().map_err(hub_failure)?;
    let addr = a.listen.clone().unwrap_or(state.enrol);
    let listener = std::net::TcpListener::bind(&addr)
        .map_err(|e| fail(format!("cannot listen on {addr}: {e}")))?;
    eprintln!("kwg: answering joins for {} on {addr}", hub.iface());
    let log = |line: &str| eprintln!("kwg: {line}");
    hub.serve(listener, &log)
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
            Cell::text(&s.name),
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
        "kwg: window {} open for {} joins, {} s; on each spoke: kwg join TOKEN",
        token.window, a.joins, a.duration
    );
    print_line(&token.encode())
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

fn join(cli: &Cli, a: &Join) -> Result<ExitCode, Failure> {
    let iface = iface(&a.iface)?;
    let text = if a.token == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| fail(format!("cannot read the token from standard input: {e}")))?;
        t
    } else {
        a.token.clone()
    };
    let token = Token::decode(&text).map_err(Failure::usage)?;
    let path = conf_path(cli, &iface);
    if path.exists() {
        return Err(fail(format!(
            "{} exists already: nothing was changed",
            path.display()
        ))
        .hint("join with another --iface, or `kwg down` and remove the file first"));
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
    let key = PrivateKey::generate();
    let name = a.name.clone().unwrap_or_else(host_name);
    let allocation = kld_wg::enrol::join(&token, &key, &name, kld_wg::now()).map_err(|e| {
        fail(e)
            .context("cannot join")
            .hint("nothing was changed on this host")
    })?;
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
    let config = Config::new(&interface, &[hub_peer]);
    std::fs::create_dir_all(&cli.config_dir)
        .and_then(|()| config.write(&path))
        .map_err(|e| {
            fail(format!(
                "joined as {}, but cannot write {}: {e}",
                allocation.address,
                path.display()
            ))
            .hint(format!(
                "on the hub: `kwg revoke {}`, then join again",
                allocation.address.addr
            ))
        })?;
    println!(
        "joined hub {} as {} ({})",
        token.hub_key,
        allocation.address,
        path.display()
    );
    if !a.no_up {
        kld_wg::link::up(&iface, &config)
            .map_err(|e| fail(e).context(format!("cannot bring {iface} up")))?;
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
            s.public_key, s.address, s.name
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
