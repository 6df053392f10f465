//! The WireGuard rows, run on the host: a hub and a spoke in network
//! namespaces of their own with userspace WireGuard (`wireguard-go`).
//! `kwg join` as the hub's 500th peer against `kwg join` as its first (the
//! goal is flat: within 1.2x), and `kwg show --json` of 500 peers against
//! `wg show IFACE dump`.

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

const HUB: &str = "kbenchhub";
const SPOKE: &str = "kbenchspoke";

/// Runs the rows `wanted` keeps, `reps` times each side.
pub fn rows(reps: u32, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Row>> {
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
    let _link = Link(&hub);
    b.hub_kwg(&[
        "hub",
        "init",
        HUB,
        "--network",
        "10.96.0.0/16",
        "--endpoint",
        "192.0.2.1",
        "--enrol",
        "192.0.2.1:51821",
    ])?;
    b.hub_kwg(&["up", HUB])?;
    let _serve = Serve(b.serve()?);
    let token = b.hub_kwg(&["enrol", "open", HUB, "--joins", "100000", "--for", "1h"])?;
    let token = token.trim().to_owned();
    b.wait_for_hub()?;

    let mut out = Vec::new();
    let want_join = wanted(ROWS[0]);
    let first = if want_join {
        b.joins(reps, &token)?
    } else {
        Vec::new()
    };
    // Fill the hub to 499 spokes, straight through the library (untimed).
    let parsed = Token::decode(&token)?;
    for i in 0..499 {
        let key = PrivateKey::generate();
        spoke.run(|| kld_wg::enrol::join(&parsed, &key, &format!("fill{i}"), kld_wg::now()))?;
    }
    if want_join {
        let five_hundredth = b.joins(reps, &token)?;
        out.push(Row::new(
            ROWS[0],
            "a spoke joins a hub (kwg join: new key, exchange, file written)",
            "`kwg join` as the hub's peer #1",
            "`kwg join` as the hub's peer #500",
            first,
            five_hundredth,
        ));
    }
    if wanted(ROWS[1]) {
        // One more spoke: 500 live peers.
        let key = PrivateKey::generate();
        spoke.run(|| kld_wg::enrol::join(&parsed, &key, "last", kld_wg::now()))?;
        let peers = b.hub_kwg(&["show", HUB, "-H"])?.lines().count();
        if peers != 500 {
            bail!("the hub has {peers} live peers, not 500");
        }
        let (mut base, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            base.push(time(|| {
                hub.run(|| Cmd::new("wg").args(["show", HUB, "dump"]).run())
                    .map(drop)
            })?);
            let show = Cmd::new(&kwg).args(["show", HUB, "--json"]);
            ours.push(time(|| hub.run(|| show.run()).map(drop))?);
        }
        out.push(Row::new(
            ROWS[1],
            "list 500 live peers (handshakes, transfer)",
            "`wg show IFACE dump`",
            "`kwg show IFACE --json`",
            base,
            ours,
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

    fn serve(&self) -> Result<Child> {
        Ok(Command::new("ip")
            .args(["netns", "exec", self.hub.name()])
            .arg(self.kwg)
            .arg("--config-dir")
            .arg(self.dir.join("hub/etc"))
            .arg("--state-dir")
            .arg(self.dir.join("hub/state"))
            .args(["hub", "serve", HUB])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }

    fn wait_for_hub(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = "192.0.2.1:51821".parse().expect("an address");
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

    /// `reps` timed joins, each undone afterwards (revoked on the hub, the
    /// spoke's file removed), so each lands at the same peer count.
    fn joins(&self, reps: u32, token: &str) -> Result<Vec<f64>> {
        let conf: PathBuf = self.dir.join("spoke/etc").join(format!("{SPOKE}.conf"));
        let mut runs = Vec::new();
        for _ in 0..reps {
            let cmd = self.kwg("spoke").args([
                "join", "--no-up", "--iface", SPOKE, "--name", "bench", token,
            ]);
            let started = Instant::now();
            let out = self.spoke.run(|| cmd.run())?.stdout_str();
            runs.push(started.elapsed().as_secs_f64());
            let address = out
                .split(" as ")
                .nth(1)
                .and_then(|s| s.split('/').next())
                .context("kwg join printed no address")?
                .to_owned();
            self.hub_kwg(&["revoke", "--iface", HUB, &address])?;
            std::fs::remove_file(&conf)?;
        }
        Ok(runs)
    }
}

/// Deletes the hub's link (which ends wireguard-go) when dropped.
struct Link<'a>(&'a Netns);

impl Drop for Link<'_> {
    fn drop(&mut self) {
        let _ = self.0.ip(&["link", "delete", "dev", HUB]);
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
