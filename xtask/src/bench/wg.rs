//! The WireGuard rows, run on the host: hubs and a spoke in network
//! namespaces of their own with userspace WireGuard (`wireguard-go`).
//! `kwg show --json` of 500 peers against `wg show all dump` (the issue's
//! pair), and `kwg join` to a hub with 500 peers against `kwg join` to a new
//! hub (the goal is flat: within 1.2x). The two hubs run side by side and each
//! repetition joins both, so the machine's load hits both sides alike.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kld_exec::Cmd;
use kld_tests::netns::{veth, Netns};
use kld_wg::key::PrivateKey;
use kld_wg::token::Token;

use super::Row;

/// The names of the WireGuard rows, for `--only`.
pub const ROWS: [&str; 2] = ["wg-join-peer-500-vs-1", "wg-show-500-peers"];

/// The hub that gets 500 peers.
const HUB: &str = "kbenchhub";
/// The hub that starts empty.
const NEW_HUB: &str = "kbenchnew";
const SPOKE: &str = "kbenchspoke";

/// The fewest repetitions of each side: one run of either takes a few
/// milliseconds, and on a loaded machine medians of fewer swing widely
/// (medians of 5 gave 0.68x to 2.07x for the same join row).
const MIN_REPS: u32 = 50;

/// Runs the rows `wanted` keeps, `reps` times each side (at least
/// [`MIN_REPS`]).
pub fn rows(reps: u32, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Row>> {
    let reps = reps.max(MIN_REPS);
    let kwg = kld_tests::vm::build_binaries()?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "kwg"))
        .context("kld-cli builds no kwg")?;
    let dir = tempfile::tempdir()?;
    let hub = Netns::new("bwgh")?;
    let spoke = Netns::new("bwgs")?;
    veth(&hub, "e0", &spoke, "e0")?;
    hub.addr("e0", "192.0.2.1/24")?;
    spoke.addr("e0", "192.0.2.2/24")?;
    let b = Bench {
        hub: &hub,
        spoke: &spoke,
        kwg: &kwg,
        dir: dir.path(),
    };
    let _link = Link(&hub, HUB);
    let _new_link = Link(&hub, NEW_HUB);
    let token = b.start_hub(HUB, "10.96.0.0/16", 51820)?;
    let _serve = Serve(b.serve(HUB)?);
    let new_token = b.start_hub(NEW_HUB, "10.95.0.0/16", 51830)?;
    let _new_serve = Serve(b.serve(NEW_HUB)?);
    b.wait_for_hub(51821)?;
    b.wait_for_hub(51831)?;

    // Fill the hub to 500 spokes, straight through the library (untimed).
    let parsed = Token::decode(&token)?;
    for i in 0..500 {
        let key = PrivateKey::generate();
        spoke.run(|| kld_wg::enrol::join(&parsed, &key, &format!("fill{i}"), kld_wg::now()))?;
    }
    let mut out = Vec::new();
    if wanted(ROWS[1]) {
        let peers = b.hub_kwg(&["show", HUB, "-H"])?.lines().count();
        if peers != 500 {
            bail!("the hub has {peers} live peers, not 500");
        }
        let (mut base, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            base.push(time(|| {
                hub.run(|| Cmd::new("wg").args(["show", "all", "dump"]).run())
                    .map(drop)
            })?);
            let show = Cmd::new(&kwg).args(["show", "--json"]);
            ours.push(time(|| hub.run(|| show.run()).map(drop))?);
        }
        out.push(Row::new(
            ROWS[1],
            "list every interface's peers, 500 live (handshakes, transfer)",
            "`wg show all dump`",
            "`kwg show --json`",
            base,
            ours,
        ));
    }
    if wanted(ROWS[0]) {
        let (mut first, mut five_hundredth) = (Vec::new(), Vec::new());
        for r in 0..reps {
            // Each side goes first every other time.
            if r % 2 == 0 {
                first.push(b.join(&new_token)?);
                five_hundredth.push(b.join(&token)?);
            } else {
                five_hundredth.push(b.join(&token)?);
                first.push(b.join(&new_token)?);
            }
        }
        out.push(Row::new(
            ROWS[0],
            "a spoke joins a hub (kwg join: new key, exchange, file written)",
            &format!("`kwg join` to a new hub (its peers #1 to #{reps})"),
            &format!(
                "`kwg join` to a hub with 500 peers (#501 to #{})",
                500 + reps
            ),
            first,
            five_hundredth,
        ));
    }
    Ok(out)
}

fn time<E: std::error::Error + Send + Sync + 'static>(
    f: impl FnOnce() -> Result<(), E>,
) -> Result<f64> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64())
}

struct Bench<'a> {
    hub: &'a Netns,
    spoke: &'a Netns,
    kwg: &'a Path,
    dir: &'a Path,
}

impl Bench<'_> {
    fn kwg(&self, side: &str) -> Cmd {
        Cmd::new(self.kwg)
            .arg("--config-dir")
            .arg(self.dir.join(side).join("etc"))
            .arg("--state-dir")
            .arg(self.dir.join(side).join("state"))
    }

    fn hub_kwg(&self, args: &[&str]) -> Result<String> {
        let cmd = self.kwg("hub").args(args);
        Ok(self.hub.run(|| cmd.run())?.stdout_str())
    }

    /// Initialises the hub `iface` (WireGuard on `port`, joins on
    /// `port + 1`), brings it up and opens a window; returns its token.
    fn start_hub(&self, iface: &str, network: &str, port: u16) -> Result<String> {
        let port_text = port.to_string();
        let enrol = format!("192.0.2.1:{}", port + 1);
        self.hub_kwg(&[
            "hub",
            "init",
            iface,
            "--network",
            network,
            "--endpoint",
            "192.0.2.1",
            "--listen-port",
            &port_text,
            "--enrol",
            &enrol,
        ])?;
        self.hub_kwg(&["up", iface])?;
        let token = self.hub_kwg(&["enrol", "open", iface, "--joins", "100000", "--for", "1h"])?;
        Ok(token.trim().to_owned())
    }

    fn serve(&self, iface: &str) -> Result<Child> {
        Ok(Command::new("ip")
            .args(["netns", "exec", self.hub.name()])
            .arg(self.kwg)
            .arg("--config-dir")
            .arg(self.dir.join("hub/etc"))
            .arg("--state-dir")
            .arg(self.dir.join("hub/state"))
            .args(["hub", "serve", iface])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }

    fn wait_for_hub(&self, port: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = std::net::SocketAddr::from(([192, 0, 2, 1], port));
        let answers = || {
            self.spoke
                .run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
                .is_ok()
        };
        while !answers() {
            if Instant::now() > deadline {
                bail!("kwg hub serve never answered");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// One timed `kwg join` with `token` (the spoke's file is removed
    /// afterwards, untimed, for the next one; the hub keeps the peer).
    fn join(&self, token: &str) -> Result<f64> {
        let conf: PathBuf = self.dir.join("spoke/etc").join(format!("{SPOKE}.conf"));
        // The token on standard input: never in argv.
        let cmd = self
            .kwg("spoke")
            .args(["join", "--no-up", "--iface", SPOKE, "--name", "bench"])
            .stdin_bytes(token.to_owned());
        let started = Instant::now();
        let out = self.spoke.run(|| cmd.run())?.stdout_str();
        let took = started.elapsed().as_secs_f64();
        if !out.contains(" as ") {
            bail!("kwg join printed no address: {out}");
        }
        std::fs::remove_file(&conf)?;
        Ok(took)
    }
}

/// Deletes a hub's link (which ends wireguard-go) when dropped.
struct Link<'a>(&'a Netns, &'static str);

impl Drop for Link<'_> {
    fn drop(&mut self) {
        let _ = self.0.ip(&["link", "delete", "dev", self.1]);
    }
}

/// `kwg hub serve`, ended by PID when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
