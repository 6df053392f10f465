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

/// The kwg binary (release build, shared with the VM tier).
static KWG: LazyLock<PathBuf> = LazyLock::new(|| {
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

fn join(spoke: &Host, token: &str) -> Result<Output, kld_exec::Error> {
    spoke.kwg(&[
        "join",
        "--iface",
        &spoke.iface,
        "--name",
        &spoke.iface,
        token,
    ])
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
    let bad = third
        .kwg(&["join", "--iface", &third.iface, "kldwg1:nonsense"])
        .unwrap_err();
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
            endpoint: (i == 1).then(|| "192.0.2.7:51820".to_owned()),
            persistent_keepalive: (i == 2).then_some(25),
            ..Peer::new(PrivateKey::generate().public_key())
        })
        .collect();
    let mut edited = Config::new(&every_key, &peers);
    edited.remove_peer(&peers[1].public_key);
    let configs = [Config::new(&every_key, &peers), edited];
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
    );
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
