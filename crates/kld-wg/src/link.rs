//! Bringing an interface up and down from its wg-quick file, as `wg-quick
//! up|down` does, for hosts without wg-quick: the device (kernel, or the
//! userspace implementation when the kernel has no WireGuard), its private
//! key, port and peers, addresses, MTU, routes for the peers' allowed IPs,
//! DNS through `resolvconf`, and the Pre/Post Up/Down hooks.

use std::time::{Duration, Instant};

use kld_exec::Cmd;

use crate::conf::Config;
use crate::device::{self, Iface};
use crate::net::Cidr;

/// Why `up` or `down` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The interface exists already (`up`) or not at all (`down`).
    #[error("{0}")]
    State(String),
    /// A program failed.
    #[error(transparent)]
    Exec(#[from] kld_exec::Error),
    /// The device could not be configured.
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    /// The configuration asks for something kwg does not do.
    #[error("{0}")]
    Unsupported(String),
    /// A step failed and what had been done was undone.
    #[error("{cause} (the interface was removed again)")]
    RolledBack {
        /// The first failure.
        cause: Box<LinkError>,
    },
}

/// The program run when the kernel has no WireGuard: wg-quick's own
/// variable, or `wireguard-go`.
pub fn userspace_program() -> String {
    std::env::var("WG_QUICK_USERSPACE_IMPLEMENTATION").unwrap_or_else(|_| "wireguard-go".into())
}

/// The shell hooks run in: bash, as wg-quick uses, or `sh` on hosts
/// without bash (busybox systems).
pub fn hook_shell() -> &'static str {
    if std::path::Path::new("/bin/bash").exists() {
        "bash"
    } else {
        "sh"
    }
}

/// The default MTU (wg-quick's for a 1500-byte underlay).
pub const DEFAULT_MTU: u32 = 1420;

/// One step of `up` or `down`, as `--dry-run` prints it.
#[derive(Debug, Clone)]
pub enum Step {
    /// Run a program (shown as a command line).
    Run(Cmd),
    /// Run a hook with [`hook_shell`] (`%i` already replaced).
    Hook(String),
    /// Create the device: kernel if possible, else the userspace program.
    Create,
    /// Load the key, port and peers.
    Configure,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Run(c) => f.write_str(&c.display()),
            Step::Hook(h) => write!(f, "{} -c {}", hook_shell(), kld_exec::quote(h)),
            Step::Create => write!(
                f,
                "create the device (kernel WireGuard, or `{} -f` when the kernel has none)",
                userspace_program()
            ),
            Step::Configure => f.write_str("load private key, listen port and peers"),
        }
    }
}

fn ip(args: &[&str]) -> Step {
    Step::Run(Cmd::new("ip").args(args))
}

fn routes(iface: &Iface, config: &Config) -> Result<Vec<Cidr>, LinkError> {
    let table = config.interface().table.as_deref();
    if table == Some("off") {
        return Ok(Vec::new());
    }
    let own: Vec<Cidr> = config
        .interface()
        .addresses
        .iter()
        .map(Cidr::network)
        .collect();
    let mut out: Vec<Cidr> = Vec::new();
    for p in config.peers() {
        for a in &p.allowed_ips {
            let n = a.network();
            if n.prefix == 0 && table.is_none_or(|t| t == "auto") {
                return Err(LinkError::Unsupported(format!(
                    "{iface}: AllowedIPs {a} would route everything through the tunnel; kwg does \
                     not set up wg-quick's policy routing for that: set `Table = off` and route it yourself"
                )));
            }
            let covered = own
                .iter()
                .any(|o| o.prefix <= n.prefix && o.contains(n.addr));
            if !covered && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    // Most specific last, as wg-quick adds them (sorted by prefix).
    out.sort_by_key(|c| std::cmp::Reverse(c.prefix));
    Ok(out)
}

fn hook(iface: &Iface, cmd: &str) -> Step {
    Step::Hook(cmd.replace("%i", iface.as_str()))
}

/// The steps `up` takes, in order.
pub fn plan_up(iface: &Iface, config: &Config) -> Result<Vec<Step>, LinkError> {
    let i = config.interface();
    let name = iface.as_str();
    let mut steps: Vec<Step> = i.pre_up.iter().map(|c| hook(iface, c)).collect();
    steps.push(Step::Create);
    steps.push(Step::Configure);
    for a in &i.addresses {
        let a = a.to_string();
        steps.push(ip(&["address", "add", &a, "dev", name]));
    }
    let mtu = i.mtu.unwrap_or(DEFAULT_MTU).to_string();
    steps.push(ip(&["link", "set", "mtu", &mtu, "up", "dev", name]));
    if !i.dns.is_empty() {
        let cmd = Cmd::new("resolvconf").args(["-a", &format!("tun.{name}"), "-m", "0", "-x"]);
        steps.push(Step::Run(cmd.stdin_bytes(resolv_conf(&i.dns))));
    }
    let table = i.table.clone().filter(|t| t != "auto");
    for r in routes(iface, config)? {
        let r = r.to_string();
        let family = if r.contains(':') { "-6" } else { "-4" };
        let mut args = vec![family, "route", "add", &r, "dev", name];
        if let Some(t) = &table {
            args.extend(["table", t.as_str()]);
        }
        steps.push(ip(&args));
    }
    steps.extend(i.post_up.iter().map(|c| hook(iface, c)));
    Ok(steps)
}

fn resolv_conf(dns: &[String]) -> Vec<u8> {
    let (servers, search): (Vec<&String>, Vec<&String>) = dns
        .iter()
        .partition(|d| d.parse::<std::net::IpAddr>().is_ok());
    let mut t: String = servers
        .iter()
        .map(|s| format!("nameserver {s}\n"))
        .collect();
    if !search.is_empty() {
        let names: Vec<&str> = search.iter().map(|s| s.as_str()).collect();
        t.push_str(&format!("search {}\n", names.join(" ")));
    }
    t.into_bytes()
}

/// The steps `down` takes, in order.
pub fn plan_down(iface: &Iface, config: &Config) -> Vec<Step> {
    let i = config.interface();
    let mut steps: Vec<Step> = i.pre_down.iter().map(|c| hook(iface, c)).collect();
    steps.push(ip(&["link", "delete", "dev", iface.as_str()]));
    if !i.dns.is_empty() {
        steps.push(Step::Run(Cmd::new("resolvconf").args([
            "-d",
            &format!("tun.{iface}"),
            "-f",
        ])));
    }
    steps.extend(i.post_down.iter().map(|c| hook(iface, c)));
    steps
}

fn create(iface: &Iface) -> Result<(), LinkError> {
    let kernel = Cmd::new("ip")
        .args(["link", "add", "dev", iface.as_str(), "type", "wireguard"])
        .run();
    if kernel.is_ok() {
        return Ok(());
    }
    // No kernel WireGuard: the userspace implementation, in the foreground
    // of a process of its own (its self-daemonising mode is unreliable).
    let _ = std::fs::remove_file(iface.socket());
    std::fs::create_dir_all(device::SOCKET_DIR)
        .map_err(|e| LinkError::State(format!("cannot make {}: {e}", device::SOCKET_DIR)))?;
    Cmd::new(userspace_program())
        .args(["-f", iface.as_str()])
        .env("LOG_LEVEL", "error")
        .spawn_detached()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while iface.backend().is_none() {
        if Instant::now() > deadline {
            return Err(LinkError::State(format!(
                "{} started but {} never answered",
                userspace_program(),
                iface.socket().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn run_step(iface: &Iface, config: &Config, step: &Step) -> Result<(), LinkError> {
    match step {
        Step::Run(c) => c.run().map(drop).map_err(LinkError::from),
        Step::Hook(h) => Cmd::new(hook_shell())
            .args(["-c", h])
            .run()
            .map(drop)
            .map_err(LinkError::from),
        Step::Create => create(iface),
        Step::Configure => device::sync(iface, config)
            .map(drop)
            .map_err(LinkError::from),
    }
}

/// Brings `iface` up from `config`. If a step fails, the interface is
/// removed again and the error says so.
pub fn up(iface: &Iface, config: &Config) -> Result<(), LinkError> {
    if iface.exists() {
        return Err(LinkError::State(format!("{iface} already exists")));
    }
    let steps = plan_up(iface, config)?;
    let mut created = false;
    for step in &steps {
        if let Err(e) = run_step(iface, config, step) {
            if created {
                let _ = Cmd::new("ip")
                    .args(["link", "delete", "dev", iface.as_str()])
                    .run();
                let _ = std::fs::remove_file(iface.socket());
                return Err(LinkError::RolledBack { cause: Box::new(e) });
            }
            return Err(e);
        }
        created |= matches!(step, Step::Create);
    }
    Ok(())
}

/// Takes `iface` down (the userspace implementation exits with it).
pub fn down(iface: &Iface, config: &Config) -> Result<(), LinkError> {
    if !iface.exists() {
        return Err(LinkError::State(format!("{iface} does not exist")));
    }
    for step in plan_down(iface, config) {
        run_step(iface, config, &step)?;
    }
    let _ = std::fs::remove_file(iface.socket());
    Ok(())
}
