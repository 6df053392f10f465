//! Host tier for kld-wg and kwg: a hub and two spokes in network namespaces
//! joined by veth, running Debian's userspace WireGuard (`wireguard-go`),
//! with real handshakes and real traffic. Each test builds its own
//! namespaces and interface names (UAPI sockets are shared by all
//! namespaces), and tears everything down, pass or fail.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use kld_exec::{Cmd, Output};
use kld_tests::netns::{connect, veth, Netns, Server};
use kld_wg::enrol::{check_answer, exchange, JoinRequest};
use kld_wg::key::PrivateKey;
use kld_wg::token::Token;

/// The kwg binary (release build, shared with the VM tier; `KLD_TEST_KWG`
/// names another build, e.g. a debug one while working on kwg).
static KWG: LazyLock<PathBuf> = LazyLock::new(|| {
    if let Some(path) = std::env::var_os("KLD_TEST_KWG") {
        return PathBuf::from(path);
    }
    kld_tests::vm::build_binaries()
        .expect("building kld's binaries")
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "kwg"))
        .expect("kld-cli builds kwg")
});

/// One host: a namespace with its own config and state directories.
struct Host {
    ns: Netns,
    dir: tempfile::TempDir,
    iface: String,
}

impl Host {
    fn new(tag: &str, iface: &str) -> Host {
        Host {
            ns: Netns::new(tag).unwrap(),
            dir: tempfile::tempdir().unwrap(),
            iface: iface.to_owned(),
        }
    }

    fn kwg(&self, args: &[&str]) -> Result<Output, kld_exec::Error> {
        self.ns
            .cmd(&*KWG)
            .arg("--config-dir")
            .arg(self.dir.path().join("etc"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(args)
            .run()
    }

    fn ok(&self, args: &[&str]) -> String {
        match self.kwg(args) {
            Ok(o) => o.stdout_str(),
            Err(e) => panic!("kwg {args:?}: {e}"),
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir
            .path()
            .join("etc")
            .join(format!("{}.conf", self.iface))
    }

    /// Everything kwg keeps on this host, to compare before and after.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.file_name().is_some_and(|n| n != "lock") {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the link ends wireguard-go (a namespace's removal would not).
        let _ = self.ns.ip(&["link", "delete", "dev", &self.iface]);
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.iface));
    }
}

/// A `kwg hub serve` process, ended by PID when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hub (192.0.2.1) and two spokes (.2, .3) on a bridge-less star: each
/// spoke has its own veth to the hub.
struct Star {
    hub: Host,
    s1: Host,
    s2: Host,
    _serve: Serve,
}

fn tag() -> String {
    format!("{:x}", std::process::id() % 0xffff)
}

impl Star {
    fn new(t: &str) -> Star {
        let id = tag();
        let hub = Host::new("wgh", &format!("kh{t}{id}"));
        let s1 = Host::new("wgs", &format!("ka{t}{id}"));
        let s2 = Host::new("wgs", &format!("kb{t}{id}"));
        veth(&hub.ns, "e1", &s1.ns, "e0").unwrap();
        veth(&hub.ns, "e2", &s2.ns, "e0").unwrap();
        hub.ns.addr("e1", "192.0.2.1/25").unwrap();
        s1.ns.addr("e0", "192.0.2.2/25").unwrap();
        hub.ns.addr("e2", "192.0.2.129/25").unwrap();
        s2.ns.addr("e0", "192.0.2.130/25").unwrap();
        s2.ns
            .ip(&["route", "add", "192.0.2.0/25", "via", "192.0.2.129"])
            .unwrap();
        s1.ns
            .ip(&["route", "add", "192.0.2.128/25", "via", "192.0.2.1"])
            .unwrap();
        hub.ok(&[
            "hub",
            "init",
            &hub.iface,
            "--network",
            "10.250.0.0/16",
            "--endpoint",
            "192.0.2.1",
            "--enrol",
            "192.0.2.1:51821",
        ]);
        hub.ok(&["up", &hub.iface]);
        let serve = spawn(&hub);
        // Wait until it answers.
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = "192.0.2.1:51821".parse().unwrap();
        let answers = || {
            s1.ns
                .run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
                .is_ok()
        };
        while !answers() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Star {
            hub,
            s1,
            s2,
            _serve: serve,
        }
    }

    fn open(&self, joins: &str, secs: &str) -> String {
        self.hub
            .ok(&[
                "enrol",
                "open",
                &self.hub.iface,
                "--joins",
                joins,
                "--for",
                secs,
            ])
            .trim()
            .to_owned()
    }
}

fn spawn(hub: &Host) -> Serve {
    // kld_exec runs programs to completion; the server runs until killed.
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", hub.ns.name()])
        .arg(&*KWG)
        .arg("--config-dir")
        .arg(hub.dir.path().join("etc"))
        .arg("--state-dir")
        .arg(hub.dir.path().join("state"))
        .args(["hub", "serve", &hub.iface])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Serve(child)
}

/// Whether `from` reaches a TCP server at `addr` through the tunnel within
/// a deadline (the first packet waits for a handshake).
fn tunnel_reaches(from: &Host, addr: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if connect(&from.ns, addr, Duration::from_secs(2)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// `kwg join` with the token on standard input (never in argv).
fn join(spoke: &Host, token: &str) -> Result<Output, kld_exec::Error> {
    spoke
        .ns
        .cmd(&*KWG)
        .arg("--config-dir")
        .arg(spoke.dir.path().join("etc"))
        .arg("--state-dir")
        .arg(spoke.dir.path().join("state"))
        .args(["join", "--iface", &spoke.iface, "--name", &spoke.iface, "-"])
        .stdin_bytes(token.to_owned())
        .run()
}

#[test]
fn hub_and_two_spokes_join_talk_refuse_and_revoke() {
    let star = Star::new("j");
    let Star { hub, s1, s2, .. } = &star;
    let token = star.open("2", "10m");
    assert!(token.starts_with("kldwg1:"), "{token}");

    let j1 = join(s1, &token).unwrap().stdout_str();
    assert!(j1.contains("as 10.250.0.2/16"), "{j1}");
    let j2 = join(s2, &token).unwrap().stdout_str();
    assert!(j2.contains("as 10.250.0.3/16"), "{j2}");

    // Traffic: spoke to hub, and spoke to spoke through the hub.
    let _at_hub = Server::start(&hub.ns, "0.0.0.0:7000").unwrap();
    let _at_s2 = Server::start(&s2.ns, "0.0.0.0:7000").unwrap();
    assert!(tunnel_reaches(s1, "10.250.0.1:7000"), "spoke 1 -> hub");
    assert!(tunnel_reaches(s2, "10.250.0.1:7000"), "spoke 2 -> hub");
    let seen = connect(&s1.ns, "10.250.0.3:7000", Duration::from_secs(10));
    assert_eq!(
        seen.unwrap(),
        "10.250.0.2",
        "spoke 1 -> spoke 2 through the hub"
    );

    // kwg show reports both peers up, with traffic.
    let json: serde_json::Value =
        serde_json::from_str(&hub.ok(&["show", &hub.iface, "--json"])).unwrap();
    assert_eq!(json["apiVersion"], "kld/v1");
    assert_eq!(json["kind"], "WgPeerList");
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{json}");
    for p in items {
        assert_eq!(p["state"], "up", "{p}");
        assert!(p["rxBytes"].as_u64().unwrap() > 0, "{p}");
    }
    let scripted = hub.ok(&["show", &hub.iface, "-H"]);
    assert_eq!(scripted.lines().count(), 2, "{scripted}");
    // Every interface: only the hub's, though the spokes' UAPI sockets
    // (other namespaces) are in the same directory.
    let all: serde_json::Value = serde_json::from_str(&hub.ok(&["show", "--json"])).unwrap();
    let all = all["items"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter().all(|p| p["interface"] == hub.iface.as_str()),
        "{all:?}"
    );

    // apply (syncconf): with one peer changed in the file, only that peer
    // is touched; the other keeps its session (same handshake).
    let handshakes = |json: &serde_json::Value| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["publicKey"].as_str().unwrap().to_owned(),
                    p["latestHandshake"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = handshakes(&json);
    let hub_conf = hub
        .dir
        .path()
        .join("etc")
        .join(format!("{}.conf", hub.iface));
    let text = std::fs::read_to_string(&hub_conf).unwrap();
    std::fs::write(
        &hub_conf,
        text.replace(
            "AllowedIPs = 10.250.0.3/32",
            "AllowedIPs = 10.250.0.3/32, 10.251.0.0/24",
        ),
    )
    .unwrap();
    let applied = hub.ok(&["apply", &hub.iface, "--dry-run"]);
    assert_eq!(applied.lines().count(), 1, "{applied}");
    assert!(applied.starts_with("would update peer"), "{applied}");
    hub.ok(&["apply", &hub.iface]);
    let after: serde_json::Value =
        serde_json::from_str(&hub.ok(&["show", &hub.iface, "--json"])).unwrap();
    assert_eq!(handshakes(&after), before, "sessions kept");
    assert!(after.to_string().contains("10.251.0.0/24"));
    std::fs::write(&hub_conf, text).unwrap();
    assert!(hub.ok(&["apply", &hub.iface]).contains("update peer"));

    // Refusals change nothing on either side.
    let third = Host::new("wgs", &format!("kc{}", tag()));
    veth(&hub.ns, "e3", &third.ns, "e0").unwrap();
    hub.ns.addr("e3", "198.51.100.1/24").unwrap();
    third.ns.addr("e0", "198.51.100.2/24").unwrap();
    third
        .ns
        .ip(&["route", "add", "192.0.2.0/24", "via", "198.51.100.1"])
        .unwrap();
    let refused = |token: &str, why: &str| {
        let before = (hub.files(), third.files());
        let err = join(&third, token).unwrap_err();
        assert_eq!(err.exit_code(), Some(1), "{err}");
        assert!(err.stderr().contains(why), "{why}: {err}");
        assert!(err.stderr().contains("nothing was changed"), "{err}");
        assert_eq!(
            (hub.files(), third.files()),
            before,
            "{why}: something changed"
        );
        assert!(!third.conf().exists());
    };
    refused(&token, "no joins left");
    let fresh = star.open("5", "10m");
    let forged = Token::decode(&fresh).unwrap().with_secret([7; 32]).encode();
    refused(&forged, "not signed with this window's secret");
    let other_hub = Token::decode(&fresh)
        .unwrap()
        .with_hub_key(PrivateKey::generate().public_key())
        .encode();
    refused(&other_hub, "another hub");
    let short = star.open("5", "1s");
    std::thread::sleep(Duration::from_secs(2));
    refused(&short, "expired");
    let bad = join(&third, "kldwg1:nonsense").unwrap_err();
    assert_eq!(bad.exit_code(), Some(2), "{bad}");

    // A replayed join message is refused, and changes nothing.
    let fresh = Token::decode(&fresh).unwrap();
    let key = PrivateKey::generate();
    let req = JoinRequest::new(&fresh, &key, "replay", kld_wg::now());
    let first = third.ns.run(|| exchange(&fresh.enrol, &req)).unwrap();
    check_answer(&fresh, &key, &req, first).unwrap();
    let before = hub.files();
    let again = third.ns.run(|| exchange(&fresh.enrol, &req)).unwrap();
    let err = check_answer(&fresh, &key, &req, again).unwrap_err();
    assert!(err.to_string().contains("replayed"), "{err}");
    assert_eq!(hub.files(), before);

    // Revoke spoke 1: it no longer reaches the hub; its address is free again.
    let dry = hub.ok(&["revoke", "--iface", &hub.iface, "--dry-run", "10.250.0.2"]);
    assert!(dry.contains("would revoke"), "{dry}");
    assert!(connect(&s1.ns, "10.250.0.1:7000", Duration::from_secs(5)).is_ok());
    hub.ok(&["revoke", "--iface", &hub.iface, "10.250.0.2"]);
    assert!(connect(&s1.ns, "10.250.0.1:7000", Duration::from_secs(3)).is_err());
    assert!(
        tunnel_reaches(s2, "10.250.0.1:7000"),
        "spoke 2 still reaches the hub"
    );
    let conf = std::fs::read_to_string(
        hub.dir
            .path()
            .join("etc")
            .join(format!("{}.conf", hub.iface)),
    )
    .unwrap();
    assert!(!conf.contains("10.250.0.2/32"), "{conf}");
    let spokes = hub.ok(&["hub", "spokes", &hub.iface, "-H"]);
    assert!(
        !spokes.contains("10.250.0.2\t") && spokes.contains("10.250.0.3"),
        "{spokes}"
    );
    let j3 = join(&third, &star.open("1", "10m")).unwrap().stdout_str();
    assert!(
        j3.contains("as 10.250.0.2/16"),
        "revoked address reused: {j3}"
    );
}

#[test]
fn two_joins_at_once_get_different_addresses() {
    let star = Star::new("c");
    let token = star.open("2", "10m");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| join(&star.s1, &token));
        let b = s.spawn(|| join(&star.s2, &token));
        (a.join().unwrap(), b.join().unwrap())
    });
    let address = |o: Output| {
        let text = o.stdout_str();
        let at = text.find(" as ").unwrap();
        text[at + 4..].split_whitespace().next().unwrap().to_owned()
    };
    let (a, b) = (address(a.unwrap()), address(b.unwrap()));
    assert_ne!(a, b);
    let mut both = [a, b];
    both.sort();
    assert_eq!(both, ["10.250.0.2/16", "10.250.0.3/16"]);
    let _server = Server::start(&star.hub.ns, "0.0.0.0:7000").unwrap();
    assert!(tunnel_reaches(&star.s1, "10.250.0.1:7000"));
    assert!(tunnel_reaches(&star.s2, "10.250.0.1:7000"));
}

#[test]
fn the_systemd_units_are_valid() {
    let dir = kld_tests::vm::workspace_root().join("crates/kld-wg/systemd");
    let tmp = tempfile::tempdir().unwrap();
    for (file, instance) in [
        ("kwg@.service", "kwg@wg0.service"),
        ("kwg-hub@.service", "kwg-hub@wg0.service"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/kwg "), "{text}");
        // The packaged path does not exist on a build machine: point it at
        // the built binary so `verify` checks everything else for real.
        let text = text.replace("/usr/bin/kwg", &KWG.display().to_string());
        std::fs::write(tmp.path().join(instance), text).unwrap();
    }
    kld_tests::units::verify(&[
        &tmp.path().join("kwg@wg0.service"),
        &tmp.path().join("kwg-hub@wg0.service"),
    ]);
}

/// Files kld writes (a hub's, with peers, and one using every key) are
/// accepted by `wg-quick strip`, whose output is what `Config::strip`
/// gives, and by `wg setconf` on a live wireguard-go device.
#[test]
fn files_kld_writes_are_accepted_by_wg_quick_strip_and_wg_setconf() {
    use kld_wg::conf::{Config, Interface, Peer};
    use kld_wg::key::PresharedKey;
    let host = Host::new("wgf", &format!("kf{}", tag()));
    let dir = host.dir.path().join("etc");
    std::fs::create_dir_all(&dir).unwrap();
    let every_key = Interface {
        addresses: vec![
            "10.9.0.1/24".parse().unwrap(),
            "fd00:9::1/64".parse().unwrap(),
        ],
        listen_port: Some(51999),
        private_key: Some(PrivateKey::generate()),
        dns: vec!["192.0.2.53".into(), "example.com".into()],
        mtu: Some(1380),
        table: Some("off".into()),
        fwmark: Some("0x42".into()),
        pre_up: vec!["true".into()],
        post_up: vec!["echo up %i".into()],
        pre_down: vec!["true".into()],
        post_down: vec!["echo down %i".into()],
        save_config: Some(false),
    };
    let peers: Vec<Peer> = (0..3)
        .map(|i| Peer {
            preshared_key: (i == 0).then(PresharedKey::generate),
            allowed_ips: vec![format!("10.9.0.{}/32", i + 2).parse().unwrap()],
            endpoint: (i == 1).then(|| "192.0.2.7:51820".parse().unwrap()),
            persistent_keepalive: (i == 2).then_some(25),
            ..Peer::new(PrivateKey::generate().public_key())
        })
        .collect();
    let mut edited = Config::new(&every_key, &peers).unwrap();
    edited.remove_peer(&peers[1].public_key);
    let configs = [Config::new(&every_key, &peers).unwrap(), edited];
    // A live device to load them into, brought up as wg-quick would:
    // address, MTU, a route for a peer's network outside the address's.
    let first = Config::new(
        &Interface {
            addresses: vec!["10.9.0.1/24".parse().unwrap()],
            mtu: Some(1380),
            private_key: Some(PrivateKey::generate()),
            ..Interface::default()
        },
        &[Peer {
            allowed_ips: vec![
                "10.77.0.0/16".parse().unwrap(),
                "10.9.0.5/32".parse().unwrap(),
            ],
            ..Peer::new(PrivateKey::generate().public_key())
        }],
    )
    .unwrap();
    first.write(&host.conf()).unwrap();
    let plan = host.ok(&["up", "--dry-run", &host.iface]);
    assert!(plan.contains("-4 route add 10.77.0.0/16 dev"), "{plan}");
    assert!(!plan.contains("10.9.0.5"), "covered by the address: {plan}");
    assert!(!host
        .ns
        .cmd("ip")
        .args(["link"])
        .run()
        .unwrap()
        .stdout_str()
        .contains(&host.iface));
    host.ok(&["up", &host.iface]);
    let link = host
        .ns
        .cmd("ip")
        .args(["addr", "show", "dev", &host.iface])
        .run()
        .unwrap()
        .stdout_str();
    assert!(
        link.contains("mtu 1380") && link.contains("inet 10.9.0.1/24"),
        "{link}"
    );
    let routes = host
        .ns
        .cmd("ip")
        .args(["route"])
        .run()
        .unwrap()
        .stdout_str();
    assert!(
        routes.contains(&format!("10.77.0.0/16 dev {}", host.iface)),
        "{routes}"
    );
    // apply with the file unchanged changes nothing.
    assert!(host.ok(&["apply", &host.iface]).contains("no changes"));
    for config in &configs {
        let path = dir.join("check.conf");
        config.write(&path).unwrap();
        let stripped = Cmd::new("wg-quick")
            .arg("strip")
            .arg(&path)
            .run()
            .unwrap()
            .stdout_str();
        // wg-quick prints one more newline at the end.
        assert_eq!(stripped.trim_end(), config.strip().trim_end());
        host.ns
            .cmd("wg")
            .args(["setconf", &host.iface, "/dev/stdin"])
            .stdin_bytes(stripped)
            .run()
            .unwrap();
        let dump = host
            .ns
            .cmd("wg")
            .args(["show", &host.iface, "dump"])
            .run()
            .unwrap()
            .stdout_str();
        assert_eq!(dump.lines().count(), 1 + config.peers().len(), "{dump}");
        for p in config.peers() {
            assert!(dump.contains(&p.public_key.to_base64()), "{dump}");
        }
        assert!(
            dump.lines().next().unwrap().contains("\t51999\t0x42"),
            "{dump}"
        );
        assert_eq!(show_as_dump(&host), dump_peers(&dump), "{dump}");
    }
}

/// A peer as both `wg show dump` and `kwg show --json` report it:
/// key, endpoint, allowed IPs (sorted), latest handshake, rx, tx.
type PeerRow = (String, String, Vec<String>, u64, u64, u64);

fn dump_peers(dump: &str) -> Vec<PeerRow> {
    let none = |v: &str| {
        if v == "(none)" {
            String::new()
        } else {
            v.to_owned()
        }
    };
    let mut rows: Vec<PeerRow> = dump
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let mut ips: Vec<String> = f[3]
                .split(',')
                .filter(|i| *i != "(none)")
                .map(str::to_owned)
                .collect();
            ips.sort();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            (f[0].to_owned(), none(f[2]), ips, n(4), n(5), n(6))
        })
        .collect();
    rows.sort();
    rows
}

fn show_as_dump(host: &Host) -> Vec<PeerRow> {
    let json: serde_json::Value =
        serde_json::from_str(&host.ok(&["show", &host.iface, "--json"])).unwrap();
    let mut rows: Vec<PeerRow> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut ips: Vec<String> = p["allowedIps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect();
            ips.sort();
            (
                p["publicKey"].as_str().unwrap().to_owned(),
                p["endpoint"].as_str().unwrap_or("").to_owned(),
                ips,
                p["latestHandshake"].as_u64().unwrap_or(0),
                p["rxBytes"].as_u64().unwrap(),
                p["txBytes"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

// ---------------------------------------------------------------------
// Trust under kills, concurrency and hostile peers (issue 17).

/// A hub in a namespace of its own, answering joins on 127.0.0.1 there,
/// with a live wireguard-go device; spokes made in the same namespace
/// join with `--no-up` (their files only), so many are cheap.
struct LoopHub {
    host: Host,
    port: u16,
    serve: Option<Serve>,
}

impl LoopHub {
    fn new(t: &str, up: bool) -> LoopHub {
        let host = Host::new("wgl", &format!("kl{t}{}", tag()));
        let port = 40000 + (std::process::id() % 20000) as u16;
        let enrol = format!("127.0.0.1:{port}");
        host.ok(&[
            "hub",
            "init",
            &host.iface,
            "--network",
            "10.60.0.0/16",
            "--endpoint",
            "127.0.0.1",
            "--enrol",
            &enrol,
        ]);
        if up {
            host.ok(&["up", &host.iface]);
        }
        LoopHub {
            host,
            port,
            serve: None,
        }
    }

    fn serve(&mut self, prefix: &[&str]) {
        let h = &self.host;
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", h.ns.name()])
            .args(prefix)
            .arg(&*KWG)
            .arg("--config-dir")
            .arg(h.dir.path().join("etc"))
            .arg("--state-dir")
            .arg(h.dir.path().join("state"))
            .args(["hub", "serve", &h.iface])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(h.dir.path().join("serve.log")).unwrap())
            .spawn()
            .unwrap();
        self.serve = Some(Serve(child));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while h
            .ns
            .run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
            .is_err()
        {
            assert!(Instant::now() < deadline, "kwg hub serve never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn open(&self, joins: u32) -> String {
        self.host
            .ok(&[
                "enrol",
                "open",
                &self.host.iface,
                "--joins",
                &joins.to_string(),
                "--for",
                "1h",
            ])
            .trim()
            .to_owned()
    }

    /// A spoke's `kwg join --no-up` (its own directories), token on stdin.
    fn join(&self, spoke: &Path, name: &str, token: &str) -> Result<Output, kld_exec::Error> {
        self.host
            .ns
            .cmd(&*KWG)
            .arg("--config-dir")
            .arg(spoke.join("etc"))
            .arg("--state-dir")
            .arg(spoke.join("state"))
            .args([
                "join", "--no-up", "--iface", "kwspoke0", "--name", name, "-",
            ])
            .stdin_bytes(token.to_owned())
            .run()
    }

    fn state(&self) -> serde_json::Value {
        // Read through kwg (snapshot and journal together).
        let text = self.host.ok(&["hub", "spokes", &self.host.iface, "--json"]);
        serde_json::from_str(&text).unwrap()
    }

    /// The spokes' (key, address) the hub's state holds.
    fn spokes(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self.state()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["publicKey"].as_str().unwrap().to_owned(),
                    s["address"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// The peers of the hub's wg-quick file: key and allowed IPs.
    fn file_peers(&self) -> Vec<(String, Vec<String>)> {
        let c = kld_wg::conf::Config::read(&self.host.conf()).unwrap();
        let mut v: Vec<(String, Vec<String>)> = c
            .peers()
            .iter()
            .map(|p| {
                let mut ips: Vec<String> = p.allowed_ips.iter().map(|c| c.to_string()).collect();
                ips.sort();
                (p.public_key.to_base64(), ips)
            })
            .collect();
        v.sort();
        v
    }

    /// The live device's peers: key and allowed IPs.
    fn live_peers(&self) -> Vec<(String, Vec<String>)> {
        let dump = self
            .host
            .ns
            .cmd("wg")
            .args(["show", &self.host.iface, "dump"])
            .run()
            .unwrap()
            .stdout_str();
        let mut v: Vec<(String, Vec<String>)> = dump_peers(&dump)
            .into_iter()
            .map(|(k, _, ips, ..)| (k, ips))
            .collect();
        v.sort();
        v
    }

    /// The hub's state, its file and its live device agree: every spoke
    /// is a peer with its /32, the file and the device hold the same
    /// peers, and no address is given twice.
    fn check_agree(&self, live: bool) {
        let spokes = self.spokes();
        let file = self.file_peers();
        for (key, addr) in &spokes {
            let want = (key.clone(), vec![format!("{addr}/32")]);
            assert!(
                file.contains(&want),
                "spoke {key} {addr} not in the file: {file:?}"
            );
        }
        let mut addrs: Vec<&String> = spokes.iter().map(|(_, a)| a).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(
            addrs.len(),
            spokes.len(),
            "an address given twice: {spokes:?}"
        );
        let mut ips: Vec<&Vec<String>> = file.iter().map(|(_, i)| i).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(
            ips.len(),
            file.len(),
            "two peers with the same address: {file:?}"
        );
        if live {
            assert_eq!(
                self.live_peers(),
                file,
                "the live device and the file differ"
            );
        }
    }

    /// `kwg ARGS` as a std Command (for the fault harness).
    fn command(&self, args: &[&str]) -> std::process::Command {
        let h = &self.host;
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", h.ns.name()])
            .arg(&*KWG)
            .arg("--config-dir")
            .arg(h.dir.path().join("etc"))
            .arg("--state-dir")
            .arg(h.dir.path().join("state"))
            .args(args);
        c
    }
}

fn pubkey() -> String {
    PrivateKey::generate().public_key().to_base64()
}

/// Issue 17, 13: an endpoint is `HOST:PORT` and nothing else, wherever it
/// comes from; 15: spoke names are checked at enrolment and escaped on
/// output; 14: a token in argv is refused.
#[test]
fn endpoints_names_and_tokens_are_checked_wherever_they_come_from() {
    let mut hub = LoopHub::new("t", false);
    let h = &hub.host;
    let injected = format!(
        "192.0.2.1:51820\n[Peer]\nPublicKey = {}\nAllowedIPs = 0.0.0.0/0",
        pubkey()
    );
    // kwg hub init: nothing written.
    let before = h.files();
    let e = h
        .kwg(&[
            "hub",
            "init",
            "kwother0",
            "--network",
            "10.61.0.0/24",
            "--endpoint",
            &injected,
        ])
        .unwrap_err();
    assert_eq!(e.exit_code(), Some(2), "{e}");
    let e = h
        .kwg(&[
            "hub",
            "init",
            "kwother0",
            "--network",
            "10.61.0.0/24",
            "--endpoint",
            "192.0.2.1",
            "--enrol",
            "192.0.2.1:1\nx",
        ])
        .unwrap_err();
    assert_eq!(e.exit_code(), Some(2), "{e}");
    assert_eq!(h.files(), before);
    // kwg peer add: the file is untouched.
    let e = h
        .kwg(&[
            "peer",
            "add",
            &h.iface,
            &pubkey(),
            "--allowed-ips",
            "10.60.9.9/32",
            "--endpoint",
            &injected,
        ])
        .unwrap_err();
    assert_eq!(e.exit_code(), Some(2), "{e}");
    assert!(e.stderr().contains("not an endpoint"), "{e}");
    assert_eq!(h.files(), before);
    h.ok(&[
        "peer",
        "add",
        &h.iface,
        &pubkey(),
        "--allowed-ips",
        "10.60.9.9/32",
        "--endpoint",
        "[fd00::1]:51820",
    ]);

    // A hub whose state names an endpoint with a second line (written by
    // an older kwg, or by hand) does not serve it: the spoke gets nothing.
    hub.serve(&[]);
    let token = hub.open(10);
    let h = &hub.host;
    let spoke = tempfile::tempdir().unwrap();
    let state_file = h.dir.path().join("state").join(&h.iface).join("hub.json");
    let good = std::fs::read_to_string(&state_file).unwrap();
    h.ok(&["hub", "spokes", &h.iface]); // the journal is folded in below
    let json = good.replace(
        "\"127.0.0.1:51820\"",
        &serde_json::to_string(&injected).unwrap(),
    );
    assert_ne!(json, good);
    std::fs::write(&state_file, json).unwrap();
    let e = hub.join(spoke.path(), "s1", &token).unwrap_err();
    assert!(e.stderr().contains("cannot join"), "{e}");
    assert!(!spoke.path().join("etc/kwspoke0.conf").exists());
    std::fs::write(&state_file, &good).unwrap();

    // Names: a bad one is refused before anything is sent...
    for bad in [
        "a\u{1b}[31mred",
        "two\nlines",
        "tab\there",
        "",
        &"n".repeat(65),
        ".hidden",
    ] {
        let e = hub.join(spoke.path(), bad, &token).unwrap_err();
        assert_eq!(e.exit_code(), Some(2), "{bad:?}: {e}");
        assert!(e.stderr().contains("spoke name"), "{e}");
    }
    // ...and by the hub, from a client that does not check.
    let t = Token::decode(&token).unwrap();
    let key = PrivateKey::generate();
    let req = JoinRequest::new(
        &t,
        &key,
        "x\u{1b}]0;owned\u{7}\n\tforged\trow",
        kld_wg::now(),
    );
    let answer = h.ns.run(|| exchange(&t.enrol, &req)).unwrap();
    let e = check_answer(&t, &key, &req, answer).unwrap_err();
    assert!(e.to_string().contains("spoke name"), "{e}");
    // A good one joins; the token on the command line is refused.
    let ok = hub
        .join(spoke.path(), "s-1.example_2", &token)
        .unwrap()
        .stdout_str();
    assert!(ok.contains(" as 10.60.0.2/16"), "{ok}");
    let argv =
        h.ns.cmd(&*KWG)
            .arg("--config-dir")
            .arg(spoke.path().join("etc2"))
            .arg("--state-dir")
            .arg(spoke.path().join("state"))
            .args(["join", "--no-up", "--iface", "kwspoke1", &token])
            .run()
            .unwrap_err();
    assert_eq!(argv.exit_code(), Some(2), "{argv}");
    assert!(argv.stderr().contains("command line"), "{argv}");
    assert!(argv.stderr().contains("--token-file"), "{argv}");
    assert!(!spoke.path().join("etc2").exists());
    let file = spoke.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let by_file =
        h.ns.cmd(&*KWG)
            .arg("--config-dir")
            .arg(spoke.path().join("etc2"))
            .arg("--state-dir")
            .arg(spoke.path().join("state"))
            .args([
                "join",
                "--no-up",
                "--iface",
                "kwspoke1",
                "--name",
                "s2",
                "--token-file",
            ])
            .arg(&file)
            .run()
            .unwrap()
            .stdout_str();
    assert!(by_file.contains(" as 10.60.0.3/16"), "{by_file}");
    // kwg enrol open prints the safe form, never `kwg join TOKEN`.
    let open = h.kwg(&["enrol", "open", &h.iface]).unwrap();
    let said = String::from_utf8_lossy(&open.stderr);
    assert!(
        said.contains("--token-file") && !said.contains("join TOKEN"),
        "{said}"
    );

    // A name an older hub let in is escaped on output: one row each.
    let evil = "x\u{1b}[2J\n10.60.0.99\tforged";
    // Fold the journal into the snapshot (serve does at its start), so the
    // edit below is the whole truth.
    drop(hub.serve.take());
    hub.serve(&[]);
    drop(hub.serve.take());
    let h = &hub.host;
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let spokes = state["spokes"].as_array_mut().unwrap();
    assert_eq!(spokes.len(), 2, "{spokes:?}");
    spokes[0]["name"] = evil.into();
    std::fs::write(&state_file, state.to_string()).unwrap();
    let rows = h.ok(&["hub", "spokes", &h.iface, "-H"]);
    assert_eq!(rows.lines().count(), 2, "{rows:?}");
    assert!(!rows.contains('\u{1b}'), "{rows:?}");
    assert!(rows.contains("x\\e[2J\\n10.60.0.99\\tforged"), "{rows:?}");
}

/// Reads `VmRSS` (kB) and the number of open file descriptors of `pid`.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// Issue 17, 9: 1000 slow connections (one byte every 2 s, reopened when
/// the server closes them) held against a server limited to 1024 open
/// files, while real `kwg join`s run: every join succeeds, the server
/// keeps running and within its bounds. Bounded: 1000 connections, at
/// most a minute, loopback inside a namespace.
#[test]
fn a_slow_client_flood_does_not_keep_joins_out_or_end_the_server() {
    const FLOOD: usize = 1000;
    const JOINS: usize = 8;
    let mut hub = LoopHub::new("f", false);
    hub.serve(&["prlimit", "--nofile=1024:1024"]);
    let pid = hub.serve.as_ref().unwrap().0.id();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe.file_name(), KWG.file_name(), "{exe:?} is the server");
    let token = hub.open(JOINS as u32);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], hub.port));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let held_max = std::sync::atomic::AtomicUsize::new(0);
    let reopened = std::sync::atomic::AtomicUsize::new(0);
    let (rss_before, fds_before) = rss_and_fds(pid);
    let mut figures = Vec::new();
    std::thread::scope(|s| {
        // The flood: FLOOD connections, each sending a byte of a request
        // every 2 s, reopened when closed.
        s.spawn(|| {
            hub.host.ns.run(|| {
                use std::io::Write;
                let open =
                    || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
                let mut conns: Vec<Option<std::net::TcpStream>> =
                    (0..FLOOD).map(|_| open()).collect();
                let started = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(60)
                {
                    let mut held = 0;
                    for c in conns.iter_mut() {
                        let alive = c.as_mut().is_some_and(|s| s.write_all(b"{").is_ok());
                        if alive {
                            held += 1;
                        } else {
                            *c = open();
                            reopened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    held_max.fetch_max(held, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_secs(2));
                }
            });
        });
        // Let it fill the server, then join for real, one after another.
        std::thread::sleep(Duration::from_secs(4));
        let (rss, fds) = rss_and_fds(pid);
        figures.push(format!("flooded: server RSS {rss} kB, {fds} fds"));
        let mut served = 0;
        for i in 0..JOINS {
            if i == JOINS / 2 {
                // Past the server's deadline: the first flood was closed
                // and reopened; the second half joins against that.
                std::thread::sleep(Duration::from_secs(10));
                let (rss, fds) = rss_and_fds(pid);
                figures.push(format!("12 s in: server RSS {rss} kB, {fds} fds"));
            }
            let spoke = tempfile::tempdir().unwrap();
            let started = Instant::now();
            let out = hub.join(spoke.path(), &format!("real{i}"), &token);
            let took = started.elapsed();
            match out {
                Ok(o) => {
                    assert!(
                        o.stdout_str().contains(" as 10.60.0."),
                        "{}",
                        o.stdout_str()
                    );
                    served += 1;
                    figures.push(format!("join {i}: {:.2} s", took.as_secs_f64()));
                }
                Err(e) => {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("join {i} under the flood failed after {took:?}: {e}");
                }
            }
        }
        let (rss, fds) = rss_and_fds(pid);
        figures.push(format!(
            "after {served} joins: server RSS {rss} kB, {fds} fds (before the flood {rss_before} kB, {fds_before} fds)"
        ));
        assert!(fds <= 1024, "{fds} fds");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // Still serving, and every join is in the state.
    let serve = hub.serve.as_mut().unwrap();
    assert!(
        serve.0.try_wait().unwrap().is_none(),
        "kwg hub serve exited"
    );
    assert_eq!(hub.spokes().len(), JOINS);
    hub.check_agree(false);
    let log = std::fs::read_to_string(hub.host.dir.path().join("serve.log")).unwrap();
    eprintln!(
        "flood figures: {} connections held at most, {} reopened; {}\nserver log (tail): {}",
        held_max.load(std::sync::atomic::Ordering::Relaxed),
        reopened.load(std::sync::atomic::Ordering::Relaxed),
        figures.join("; "),
        log.lines().rev().take(4).collect::<Vec<_>>().join(" | ")
    );
    assert!(held_max.load(std::sync::atomic::Ordering::Relaxed) >= FLOOD * 9 / 10);
}

/// N `kwg peer add`, `kwg enrol open`, `kwg revoke` and joins at once on
/// one hub with a live device: all serialise on the interface's lock;
/// nothing is lost, no address is given twice, and the state, the file
/// and the live device agree.
#[test]
fn concurrent_peer_adds_enrols_revokes_and_joins_leave_one_consistent_hub() {
    let mut hub = LoopHub::new("k", true);
    hub.serve(&[]);
    let token = hub.open(100);
    let dirs: Vec<tempfile::TempDir> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    // Two spokes to revoke.
    for (i, d) in dirs[..2].iter().enumerate() {
        hub.join(d.path(), &format!("old{i}"), &token).unwrap();
    }
    let old: Vec<String> = hub.spokes().into_iter().map(|(_, a)| a).collect();
    assert_eq!(old.len(), 2);
    let added: Vec<String> = (0..6).map(|_| pubkey()).collect();
    let h = &hub.host;
    let (tokens, joined) = std::thread::scope(|s| {
        let mut adds = Vec::new();
        for (i, k) in added.iter().enumerate() {
            adds.push(s.spawn(move || {
                h.ok(&[
                    "peer",
                    "add",
                    &h.iface,
                    k,
                    "--allowed-ips",
                    &format!("10.61.{i}.0/24"),
                ])
            }));
        }
        let opens: Vec<_> = (0..4).map(|_| s.spawn(|| hub.open(1))).collect();
        let revokes: Vec<_> = old
            .iter()
            .map(|a| s.spawn(move || h.ok(&["revoke", "--iface", &h.iface, a])))
            .collect();
        let joins: Vec<_> = dirs[2..]
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let token = &token;
                let hub = &hub;
                s.spawn(move || {
                    hub.join(d.path(), &format!("new{i}"), token)
                        .unwrap()
                        .stdout_str()
                })
            })
            .collect();
        for a in adds {
            a.join().unwrap();
        }
        for r in revokes {
            r.join().unwrap();
        }
        let tokens: Vec<String> = opens.into_iter().map(|o| o.join().unwrap()).collect();
        let joined: Vec<String> = joins.into_iter().map(|j| j.join().unwrap()).collect();
        (tokens, joined)
    });
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "four windows, four tokens");
    let windows = h.ok(&["enrol", "list", &h.iface, "-H"]);
    assert_eq!(windows.lines().count(), 5, "{windows}");
    let spokes = hub.spokes();
    assert_eq!(spokes.len(), 6, "{spokes:?} after {joined:?}");
    for a in &old {
        // Revoked; its address may have gone to a new spoke.
        assert!(
            spokes.iter().all(|(_, s)| s != a)
                || joined.iter().any(|j| j.contains(&format!(" as {a}/")))
        );
    }
    let file = hub.file_peers();
    for (i, k) in added.iter().enumerate() {
        assert!(
            file.contains(&(k.clone(), vec![format!("10.61.{i}.0/24")])),
            "peer {k} lost: {file:?}"
        );
    }
    assert_eq!(file.len(), 6 + 6, "{file:?}");
    hub.check_agree(true);
}

/// Kills `make()` after each of its steps in turn; after each kill
/// `recover(n)` runs (the documented recovery) and `check(n)` checks the
/// world. Returns the number of steps.
fn kill_at_every_step(
    what: &str,
    mut setup: impl FnMut(usize) -> std::process::Command,
    mut recover: impl FnMut(usize),
    mut check: impl FnMut(usize),
) -> usize {
    let steps = kld_tests::fault::trace(setup(0)).unwrap();
    assert!(!steps.is_empty(), "{what} has no steps");
    check(0);
    eprintln!("{what}: {} steps: {steps:?}", steps.len());
    for n in 1..=steps.len() {
        kld_tests::fault::killed_after(setup(n), n).unwrap();
        recover(n);
        check(n);
    }
    steps.len()
}

/// `kwg peer add` and `kwg revoke` killed after each step, then run
/// again: the file and the live device agree with each other and with
/// the hub's state; nothing half-written, nothing lost.
#[test]
fn peer_add_and_revoke_killed_at_every_step_then_rerun() {
    let mut hub = LoopHub::new("p", true);
    hub.serve(&[]);
    let token = hub.open(1000);
    let key = std::cell::RefCell::new(String::new());
    let args = |k: &str, i: usize| -> Vec<String> {
        [
            "peer",
            "add",
            &hub.host.iface,
            k,
            "--allowed-ips",
            &format!("10.62.{i}.0/24"),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let n = kill_at_every_step(
        "kwg peer add",
        |i| {
            *key.borrow_mut() = pubkey();
            let a = args(&key.borrow(), i);
            hub.command(&a.iter().map(String::as_str).collect::<Vec<_>>())
        },
        |i| {
            let a = args(&key.borrow(), i);
            hub.host
                .ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
        },
        |i| {
            let k = key.borrow().clone();
            assert!(
                hub.file_peers()
                    .contains(&(k, vec![format!("10.62.{i}.0/24")])),
                "after kill {i}"
            );
            hub.check_agree(true);
        },
    );
    eprintln!("fault table: kwg peer add: {n} kill points, each re-run finished the add");

    // Revoke: a fresh spoke each time, killed after step n, revoked again.
    let victim = std::cell::RefCell::new(String::new());
    let n = kill_at_every_step(
        "kwg revoke",
        |i| {
            let d = tempfile::tempdir().unwrap();
            let out = hub
                .join(d.path(), &format!("v{i}"), &token)
                .unwrap()
                .stdout_str();
            let at = out.find(" as ").unwrap() + 4;
            let addr = out[at..].split('/').next().unwrap().to_owned();
            *victim.borrow_mut() = addr.clone();
            hub.command(&["revoke", "--iface", &hub.host.iface, &addr])
        },
        |_| {
            let addr = victim.borrow().clone();
            match hub.host.kwg(&["revoke", "--iface", &hub.host.iface, &addr]) {
                Ok(_) => {}
                // Killed after its last step: the revoke was whole.
                Err(e) => assert!(e.stderr().contains("no peer"), "{e}"),
            }
        },
        |_| {
            let addr = victim.borrow().clone();
            assert!(hub.spokes().iter().all(|(_, a)| *a != addr));
            assert!(hub
                .file_peers()
                .iter()
                .all(|(_, ips)| ips[0] != format!("{addr}/32")));
            hub.check_agree(true);
        },
    );
    eprintln!("fault table: kwg revoke: {n} kill points, each re-run finished the revoke");
}

/// `kwg enrol open` killed after each step: a window recorded without its
/// token is listed (and can be closed), never half-recorded; the next
/// open works.
#[test]
fn enrol_open_killed_at_every_step() {
    let hub = LoopHub::new("e", false);
    let windows = || {
        hub.host
            .ok(&["enrol", "list", &hub.host.iface, "-H"])
            .lines()
            .count()
    };
    let n = kill_at_every_step(
        "kwg enrol open",
        |_| hub.command(&["enrol", "open", &hub.host.iface]),
        |_| {
            let before = windows();
            let t = hub.open(1);
            assert!(t.starts_with("kldwg1:"));
            assert_eq!(windows(), before + 1);
        },
        |_| hub.check_agree(false),
    );
    // Count: the traced run, and per kill one killed (recorded or not) and one re-run.
    let listed = windows();
    // The traced run's window, and per kill the killed run's (recorded,
    // its token never printed: nobody can join through it) and the re-run's.
    assert_eq!(listed, 1 + 2 * n, "{listed} windows after {n} kills");
    eprintln!("fault table: kwg enrol open: {n} kill points; a killed open leaves at most an unused window");
}

/// `kwg join` (the spoke's side, bringing a userspace device up) killed
/// after each step, then run again with the same token (or, once its file
/// is written, `kwg down; kwg up`): the spoke joins once, with the address
/// the hub recorded for its key; the hub gives no address twice and keeps
/// no peer that no spoke holds the key of.
#[test]
fn join_killed_at_every_step_then_rerun() {
    let mut hub = LoopHub::new("s", true);
    hub.serve(&[]);
    let token = hub.open(1000);
    // The spoke lives in the hub's namespace (its own files and device).
    struct Spoke {
        dir: tempfile::TempDir,
        iface: String,
    }
    impl Spoke {
        fn conf(&self) -> PathBuf {
            self.dir
                .path()
                .join("etc")
                .join(format!("{}.conf", self.iface))
        }
    }
    let spoke = Spoke {
        dir: tempfile::tempdir().unwrap(),
        iface: format!("kk{}", tag()),
    };
    let token_file = spoke.dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let join_cmd = || {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", hub.host.ns.name()])
            .arg(&*KWG)
            .arg("--config-dir")
            .arg(spoke.dir.path().join("etc"))
            .arg("--state-dir")
            .arg(spoke.dir.path().join("state"))
            .args([
                "join",
                "--iface",
                &spoke.iface,
                "--name",
                "killed",
                "--token-file",
            ])
            .arg(&token_file);
        c
    };
    let reset = || {
        let _ = hub.host.ns.ip(&["link", "delete", "dev", &spoke.iface]);
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", spoke.iface));
        let _ = std::fs::remove_dir_all(spoke.dir.path().join("etc"));
        let _ = std::fs::remove_dir_all(spoke.dir.path().join("state"));
    };
    let spoke_kwg = |args: &[&str]| {
        hub.host
            .ns
            .cmd(&*KWG)
            .arg("--config-dir")
            .arg(spoke.dir.path().join("etc"))
            .arg("--state-dir")
            .arg(spoke.dir.path().join("state"))
            .args(args)
            .run()
    };
    let joined = std::cell::Cell::new(0usize);
    let n = kill_at_every_step(
        "kwg join",
        |i| {
            if i > 0 {
                reset();
            }
            join_cmd()
        },
        |i| {
            let again = spoke_kwg(&[
                "join",
                "--iface",
                &spoke.iface,
                "--name",
                "killed",
                "--token-file",
                token_file.to_str().unwrap(),
            ]);
            match again {
                Ok(o) => assert!(
                    o.stdout_str().contains(" is up"),
                    "after kill {i}: {}",
                    o.stdout_str()
                ),
                Err(e) => {
                    assert!(e.stderr().contains("exists already"), "after kill {i}: {e}");
                    let _ = spoke_kwg(&["down", &spoke.iface]);
                    spoke_kwg(&["up", &spoke.iface]).unwrap();
                }
            }
        },
        |i| {
            joined.set(joined.get() + 1);
            // The spoke's file names an address; the hub recorded exactly
            // that address for exactly this spoke's key.
            let conf = kld_wg::conf::Config::read(&spoke.conf()).unwrap();
            let key = conf
                .interface()
                .private_key
                .as_ref()
                .unwrap()
                .public_key()
                .to_base64();
            let addr = conf.interface().addresses[0].addr.to_string();
            let spokes = hub.spokes();
            assert!(spokes.contains(&(key, addr)), "after kill {i}: {spokes:?}");
            // One spoke per run: nothing allocated twice, nothing orphaned.
            assert_eq!(spokes.len(), joined.get(), "after kill {i}: {spokes:?}");
            hub.check_agree(true);
            // The spoke's device is up with the hub as its peer.
            let dump = hub
                .host
                .ns
                .cmd("wg")
                .args(["show", &spoke.iface, "dump"])
                .run()
                .unwrap()
                .stdout_str();
            assert_eq!(dump.lines().count(), 2, "after kill {i}: {dump}");
            assert!(!spoke
                .dir
                .path()
                .join("state")
                .join(&spoke.iface)
                .join("join.key")
                .exists());
        },
    );
    reset();
    eprintln!("fault table: kwg join: {n} kill points, each re-run (or down+up) finished the join");
}

/// Issue 17, 9: accept errors never end the server. A cap above what the
/// open-file limit allows (`--max-connections 4096` under 256 files) makes
/// `accept` fail with EMFILE under a flood of 400 connections: the server
/// closes its oldest connection, backs off, goes on, and real joins get in.
#[test]
fn accept_errors_under_a_flood_do_not_end_the_server() {
    let mut hub = LoopHub::new("m", false);
    let h = &hub.host;
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", h.ns.name(), "prlimit", "--nofile=256:256"])
        .arg(&*KWG)
        .arg("--config-dir")
        .arg(h.dir.path().join("etc"))
        .arg("--state-dir")
        .arg(h.dir.path().join("state"))
        .args(["hub", "serve", &h.iface, "--max-connections", "4096"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(h.dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    hub.serve = Some(Serve(child));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], hub.port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while hub
        .host
        .ns
        .run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
        .is_err()
    {
        assert!(Instant::now() < deadline, "kwg hub serve never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = hub.open(3);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            hub.host.ns.run(|| {
                use std::io::Write;
                let open =
                    || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
                let mut conns: Vec<Option<std::net::TcpStream>> =
                    (0..400).map(|_| open()).collect();
                let started = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(60)
                {
                    for c in conns.iter_mut() {
                        if c.as_mut().is_none_or(|s| s.write_all(b"{").is_err()) {
                            *c = open();
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        });
        std::thread::sleep(Duration::from_secs(3));
        for i in 0..3 {
            let spoke = tempfile::tempdir().unwrap();
            let out = hub.join(spoke.path(), &format!("m{i}"), &token);
            if out.is_err() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            assert!(out.unwrap().stdout_str().contains(" as "));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let serve = hub.serve.as_mut().unwrap();
    assert!(
        serve.0.try_wait().unwrap().is_none(),
        "kwg hub serve exited"
    );
    assert_eq!(hub.spokes().len(), 3);
    // Let the summary come out, then check the errors were met and survived.
    let log = std::fs::read_to_string(hub.host.dir.path().join("serve.log")).unwrap();
    assert!(log.contains("cannot take a connection"), "{log}");
    assert!(log.contains("backing off"), "{log}");
}

impl LoopHub {
    /// `kwg hub serve` with `env` set; `None` if it ended before it
    /// answered (killed by a fault at its start).
    fn serve_env(&self, env: &[(&str, String)]) -> Option<Serve> {
        let h = &self.host;
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", h.ns.name()])
            .arg(&*KWG)
            .arg("--config-dir")
            .arg(h.dir.path().join("etc"))
            .arg("--state-dir")
            .arg(h.dir.path().join("state"))
            .args(["hub", "serve", &h.iface])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut serve = Serve(c.spawn().unwrap());
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if serve.0.try_wait().unwrap().is_some() {
                return None;
            }
            if h.ns
                .run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
                .is_ok()
            {
                return Some(serve);
            }
            assert!(Instant::now() < deadline, "kwg hub serve never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The hub's side of a join (`kwg hub serve`, live device) killed after
/// each of its steps, then served again: the spoke's re-run (same kept
/// key) joins, with one address, and the hub's state, file and device
/// agree: a peer the killed hub appended without recording is not left
/// twice, no address is given twice.
#[test]
fn hub_serve_killed_at_every_step_of_a_join_then_rerun() {
    let hub = LoopHub::new("v", true);
    let token = hub.open(1000);
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("trace");
    // Count: serve with a trace, one join, end it by PID.
    {
        let _serve = hub
            .serve_env(&[(kld_fs::fault::TRACE, trace.display().to_string())])
            .unwrap();
        let d = tempfile::tempdir().unwrap();
        hub.join(d.path(), "counted", &token).unwrap();
    }
    let steps: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    eprintln!(
        "kwg hub serve (start and one join): {} steps: {steps:?}",
        steps.len()
    );
    assert!(steps.len() >= 3, "{steps:?}");
    let mut spokes = 1;
    for n in 1..=steps.len() {
        let d = tempfile::tempdir().unwrap();
        let name = format!("k{n}");
        let killed = hub.serve_env(&[(kld_fs::fault::KILL_AFTER, n.to_string())]);
        if let Some(mut serve) = killed {
            // Dies in the middle of answering: the spoke hears nothing.
            let e = hub.join(d.path(), &name, &token).unwrap_err();
            assert!(
                e.stderr().contains("cannot talk to the hub"),
                "kill {n}: {e}"
            );
            let status = serve.0.wait().unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "kill {n}");
        }
        // Served again; the spoke runs the same join again.
        let _serve = hub.serve_env(&[]).unwrap();
        let out = hub.join(d.path(), &name, &token).unwrap().stdout_str();
        assert!(out.contains(" as "), "kill {n}: {out}");
        spokes += 1;
        assert_eq!(hub.spokes().len(), spokes, "kill {n}: one spoke per join");
        hub.check_agree(true);
    }
    eprintln!(
        "fault table: kwg hub serve (join): {} kill points, each re-served and re-joined",
        steps.len()
    );
}

/// A spoke joining with the hub's own interface name and state directory
/// (the demo's layout: two namespaces on one host) does not dead-lock on
/// the interface's lock: the join does not hold it while the hub answers.
#[test]
fn a_spoke_with_the_hubs_name_and_state_dir_joins() {
    let mut hub = LoopHub::new("d", false);
    hub.serve(&[]);
    let token = hub.open(1);
    let h = &hub.host;
    let other = tempfile::tempdir().unwrap();
    let out =
        h.ns.cmd(&*KWG)
            .arg("--config-dir")
            .arg(other.path())
            .arg("--state-dir")
            .arg(h.dir.path().join("state"))
            .args(["join", "--no-up", "--iface", &h.iface, "--name", "same"])
            .stdin_bytes(token)
            .run()
            .unwrap()
            .stdout_str();
    assert!(out.contains(" as 10.60.0.2/16"), "{out}");
    assert_eq!(hub.spokes().len(), 1);
}
