//! Host tier for kld-nft and knft: real nf_tables in network namespaces,
//! real TCP traffic between them.
//!
//! The server namespace has `eth0` (to a public client), `wg0` (to a
//! management client) and `eth1` (to a LAN host behind it). Each test builds
//! its own namespaces, which are removed when it ends, pass or fail.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use kld_exec::Cmd;
use kld_nft::{render, Firewall, Nft, SetOp, StateDir, ZoneFile};
use kld_tests::netns::{connect, reaches, veth, Netns, Server};

const WEB: &str = include_str!("../../crates/kld-nft/examples/web-server.toml");

/// A server and its three neighbours.
struct Lab {
    server: Netns,
    public: Netns,
    mgmt: Netns,
    lan: Netns,
    state: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let server = Netns::new("srv").unwrap();
        let public = Netns::new("pub").unwrap();
        let mgmt = Netns::new("mgmt").unwrap();
        let lan = Netns::new("lan").unwrap();
        veth(&server, "eth0", &public, "eth0").unwrap();
        veth(&server, "wg0", &mgmt, "eth0").unwrap();
        veth(&server, "eth1", &lan, "eth0").unwrap();
        for (ns, dev, a4, a6) in [
            (&server, "eth0", "192.0.2.1/24", "2001:db8:1::1/64"),
            (&public, "eth0", "192.0.2.2/24", "2001:db8:1::2/64"),
            (&server, "wg0", "198.51.100.1/24", "fd00:77::1/64"),
            (&mgmt, "eth0", "198.51.100.2/24", "fd00:77::2/64"),
            (&server, "eth1", "10.77.0.1/24", "fd00:10::1/64"),
            (&lan, "eth0", "10.77.0.2/24", "fd00:10::2/64"),
        ] {
            ns.addr(dev, a4).unwrap();
            ns.addr(dev, a6).unwrap();
        }
        lan.ip(&["route", "add", "default", "via", "10.77.0.1"])
            .unwrap();
        Lab {
            server,
            public,
            mgmt,
            lan,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn firewall(&self) -> Firewall {
        Firewall::new(StateDir::new(self.state.path()))
    }

    fn apply(&self, text: &str) {
        let file = ZoneFile::parse(text, "test.toml").unwrap();
        let ruleset = render(&file);
        let fw = self.firewall();
        self.server.run(|| fw.apply(&ruleset, None)).unwrap();
    }

    fn ruleset(&self) -> String {
        self.server.run(|| Nft::new().list_ruleset()).unwrap()
    }

    /// A foreign table, as another tool would make it.
    fn foreign_table(&self) {
        let text = "table ip other {\n\tset keep { type ipv4_addr; elements = { 192.0.2.99 } }\n\
                    \tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t\taccept\n\t}\n}\n";
        self.server.run(|| Nft::new().load(text)).unwrap();
    }

    fn foreign_listing(&self) -> String {
        self.server
            .run(|| Cmd::new("nft").args(["list", "table", "ip", "other"]).run())
            .unwrap()
            .stdout_str()
    }

    /// Runs the knft binary inside the server namespace.
    fn knft(&self, args: &[&str]) -> Result<kld_exec::Output, kld_exec::Error> {
        self.server
            .cmd(&*KNFT)
            .arg("--state-dir")
            .arg(self.state.path())
            .args(args)
            .run()
    }
}

/// The knft binary (release build, shared with the VM tier).
static KNFT: LazyLock<PathBuf> = LazyLock::new(|| {
    kld_tests::vm::build_binaries()
        .expect("building kld's binaries")
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "knft"))
        .expect("kld-cli builds knft")
});

#[test]
fn web_server_zones_over_ipv4_and_ipv6_and_foreign_tables_survive() {
    let lab = Lab::new();
    lab.foreign_table();
    let foreign = lab.foreign_listing();
    let _servers: Vec<Server> = [80, 443, 22]
        .iter()
        .map(|p| Server::start(&lab.server, &format!("[::]:{p}")).unwrap())
        .collect();
    // Before: nothing filters.
    assert!(reaches(&lab.public, "192.0.2.1:22"));
    lab.apply(WEB);
    for addr in [
        "192.0.2.1:80",
        "192.0.2.1:443",
        "[2001:db8:1::1]:80",
        "[2001:db8:1::1]:443",
    ] {
        assert!(reaches(&lab.public, addr), "public -> {addr} should pass");
    }
    for addr in ["192.0.2.1:22", "[2001:db8:1::1]:22"] {
        assert!(
            !reaches(&lab.public, addr),
            "public -> {addr} should be dropped"
        );
    }
    for addr in ["198.51.100.1:22", "[fd00:77::1]:22"] {
        assert!(reaches(&lab.mgmt, addr), "mgmt -> {addr} should pass");
    }
    for addr in ["198.51.100.1:80", "[fd00:77::1]:443"] {
        assert!(
            !reaches(&lab.mgmt, addr),
            "mgmt -> {addr} should be dropped"
        );
    }
    // The LAN interface is in no zone: dropped.
    assert!(!reaches(&lab.lan, "10.77.0.1:80"));
    assert_eq!(
        lab.foreign_listing(),
        foreign,
        "apply left the foreign table alone"
    );
    // Drops are counted per zone.
    let live = lab.server.run(|| lab.firewall().live()).unwrap().unwrap();
    let dropped = live
        .chain("in_public")
        .unwrap()
        .rules
        .last()
        .unwrap()
        .packets;
    assert!(dropped.is_some_and(|n| n >= 2), "{dropped:?}");
    lab.server.run(|| lab.firewall().rollback()).unwrap();
    assert_eq!(
        lab.foreign_listing(),
        foreign,
        "rollback left the foreign table alone"
    );
    assert!(
        reaches(&lab.public, "192.0.2.1:22"),
        "rolled back to no kld table"
    );
    assert!(lab.server.run(|| lab.firewall().live()).unwrap().is_none());
}

#[test]
fn a_rate_limited_service_drops_the_excess() {
    let lab = Lab::new();
    let _server = Server::start(&lab.server, "[::]:25").unwrap();
    lab.apply(
        "[zones.public]\ninterfaces = [\"eth0\"]\n[[zones.public.allow]]\ntcp = 25\nrate = \"1/minute\"\nburst = 3\n",
    );
    let outcomes: Vec<bool> = (0..8)
        .map(|_| reaches(&lab.public, "192.0.2.1:25"))
        .collect();
    let passed = outcomes.iter().filter(|ok| **ok).count();
    assert!((1..=4).contains(&passed), "{outcomes:?}");
    assert!(
        !outcomes[7],
        "the last attempts exceed the limit: {outcomes:?}"
    );
}

#[test]
fn connection_limits_hold_per_source() {
    let lab = Lab::new();
    let _server = Server::start(&lab.server, "[::]:9000").unwrap();
    lab.apply(
        "[zones.public]\ninterfaces = [\"eth0\"]\n[[zones.public.allow]]\ntcp = 9000\nconnlimit = 2\n",
    );
    // Two connections held open; the third from the same source is refused.
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            lab.public
                .run(|| {
                    std::net::TcpStream::connect_timeout(
                        &"192.0.2.1:9000".parse().unwrap(),
                        Duration::from_secs(1),
                    )
                })
                .unwrap()
        })
        .collect();
    assert!(!reaches(&lab.public, "192.0.2.1:9000"));
    drop(held);
}

#[test]
fn forwarding_masquerade_and_port_forwards_carry_traffic() {
    let lab = Lab::new();
    let forwarding = lab.server.run(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .and_then(|()| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"))
    });
    assert_eq!(forwarding.unwrap().trim(), "1");
    let _outside = Server::start(&lab.public, "[::]:7000").unwrap();
    let _inside = Server::start(&lab.lan, "[::]:80").unwrap();
    let zones = "[zones.public]\ninterfaces = [\"eth0\"]\nmasquerade = true\n\
                 [zones.lan]\ninterfaces = [\"eth1\"]\n";
    lab.apply(zones);
    assert!(
        !reaches(&lab.lan, "192.0.2.2:7000"),
        "forward is dropped by default"
    );
    lab.apply(&format!(
        "{}forward_to = [\"public\"]\n[[port_forward]]\nzone = \"public\"\nport = 8080\nto = \"10.77.0.2:80\"\n",
        zones
    ));
    // The public host sees the server's address: masqueraded.
    let seen = connect(&lab.lan, "192.0.2.2:7000", Duration::from_secs(2)).unwrap();
    assert_eq!(seen, "192.0.2.1");
    // Nothing comes back the other way uninvited, but the port forward does.
    assert!(!reaches(&lab.public, "10.77.0.2:80"));
    let seen = connect(&lab.public, "192.0.2.1:8080", Duration::from_secs(2)).unwrap();
    assert_eq!(seen, "192.0.2.2", "the LAN host sees the public client");
}

#[test]
fn a_live_set_change_takes_effect() {
    let lab = Lab::new();
    let _server = Server::start(&lab.server, "[::]:8080").unwrap();
    lab.apply(
        "[sets.lb_pool]\ntype = \"ipv4\"\nelements = [\"192.0.2.50\"]\n\
         [zones.public]\ninterfaces = [\"eth0\"]\n[[zones.public.allow]]\ntcp = 8080\nfrom_set = [\"lb_pool\"]\n",
    );
    let fw = lab.firewall();
    assert!(!reaches(&lab.public, "192.0.2.1:8080"));
    lab.server
        .run(|| fw.set_elements(SetOp::Add, "lb_pool", &["192.0.2.2".into()]))
        .unwrap();
    assert!(reaches(&lab.public, "192.0.2.1:8080"));
    let out = lab.knft(&["set", "del", "lb_pool", "192.0.2.2"]).unwrap();
    assert!(out.stdout_str().contains("deleted from set lb_pool"));
    assert!(!reaches(&lab.public, "192.0.2.1:8080"));
    let err = lab
        .knft(&["set", "add", "lb_pool", "2001:db8::1"])
        .unwrap_err();
    assert_eq!(err.exit_code(), Some(2), "{err}");
    let err = lab.knft(&["set", "add", "nope", "192.0.2.3"]).unwrap_err();
    assert_eq!(err.exit_code(), Some(2), "{err}");
}

#[test]
fn a_file_with_a_mistake_applies_nothing() {
    let lab = Lab::new();
    lab.foreign_table();
    let dir = lab.state.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("web.toml");
    std::fs::write(&good, WEB).unwrap();
    lab.knft(&["apply", "-f", path(&good)]).unwrap();
    let before = lab.ruleset();
    for (name, text) in [
        (
            "unknown-zone.toml",
            format!("{WEB}forward_to = [\"nowhere\"]\n"),
        ),
        ("two-zones.toml", WEB.replace("\"wg0\"", "\"eth0\"")),
        (
            "bad-port.toml",
            WEB.replace("service = \"ssh\"", "tcp = 65536"),
        ),
        (
            "never-matches.toml",
            format!("{WEB}[[zones.mgmt.allow]]\ntcp = 22\nfrom = [\"10.0.0.0/8\"]\n"),
        ),
        ("not-toml.toml", "zones = [".to_owned()),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let err = lab.knft(&["apply", "-f", path(&file)]).unwrap_err();
        assert_eq!(err.exit_code(), Some(2), "{name}: {err}");
        assert!(
            err.stderr()
                .starts_with(&format!("knft: error: {}:", file.display())),
            "{name}: {err}"
        );
        assert_eq!(lab.ruleset(), before, "{name} changed the live ruleset");
    }
}

#[test]
fn confirm_keeps_a_change_and_silence_reverts_it() {
    let lab = Lab::new();
    lab.foreign_table();
    let dir = lab.state.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let web = dir.join("web.toml");
    std::fs::write(&web, WEB).unwrap();
    let lockout = dir.join("lockout.toml");
    std::fs::write(&lockout, WEB.replace("service = \"ssh\"", "tcp = 2222")).unwrap();
    let _ssh = Server::start(&lab.server, "[::]:22").unwrap();

    lab.knft(&["apply", "-f", path(&web)]).unwrap();
    let confirmed = lab.ruleset();
    assert!(reaches(&lab.mgmt, "198.51.100.1:22"));

    // A change that cuts SSH off, never confirmed: it reverts by itself,
    // after knft has returned.
    let out = lab
        .knft(&["apply", "-f", path(&lockout), "--confirm", "2"])
        .unwrap();
    let watcher = watcher_pid(&out.stdout_str());
    assert!(
        !reaches(&lab.mgmt, "198.51.100.1:22"),
        "the new ruleset is live"
    );
    let second = lab.knft(&["apply", "-f", path(&web)]).unwrap_err();
    assert!(second.stderr().contains("awaits confirmation"), "{second}");
    wait_for_exit(watcher);
    assert_eq!(lab.ruleset(), confirmed, "reverted exactly");
    assert!(reaches(&lab.mgmt, "198.51.100.1:22"));

    // Confirmed in time: it stays, also past the deadline, and loads at boot.
    let out = lab
        .knft(&["apply", "-f", path(&lockout), "--confirm", "2"])
        .unwrap();
    let watcher = watcher_pid(&out.stdout_str());
    let new = lab.ruleset();
    lab.knft(&["confirm"]).unwrap();
    wait_for_exit(watcher);
    assert_eq!(lab.ruleset(), new, "the confirmed change stays");
    let boot = std::fs::read_to_string(lab.state.path().join("boot.nft")).unwrap();
    assert!(boot.contains("tcp dport { 2222 } accept"));
    assert_eq!(lab.knft(&["confirm"]).unwrap_err().exit_code(), Some(1));

    // And rollback restores the state before it, byte for byte.
    lab.knft(&["rollback"]).unwrap();
    assert_eq!(lab.ruleset(), confirmed);
}

#[test]
fn diff_and_show_read_the_live_table() {
    let lab = Lab::new();
    let dir = lab.state.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let web = dir.join("web.toml");
    std::fs::write(&web, WEB).unwrap();
    let out = lab.knft(&["diff", "-f", path(&web)]).unwrap().stdout_str();
    assert_eq!(out, "+ table inet kld (it does not exist yet)\n");
    lab.knft(&["apply", "-f", path(&web)]).unwrap();
    let out = lab.knft(&["diff", "-f", path(&web)]).unwrap().stdout_str();
    assert!(out.starts_with("no changes"), "{out}");
    let changed = dir.join("changed.toml");
    std::fs::write(&changed, WEB.replace("service = \"ssh\"", "tcp = 2222")).unwrap();
    let out = lab
        .knft(&["diff", "-f", path(&changed)])
        .unwrap()
        .stdout_str();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains("+ in_mgmt: tcp dport { 2222 } accept"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&lab.knft(&["show", "--json"]).unwrap().stdout_str()).unwrap();
    assert_eq!(json["apiVersion"], "kld/v1");
    assert_eq!(json["kind"], "NftZoneList");
    assert_eq!(json["items"][0]["name"], "public");
    assert_eq!(json["items"][0]["match"][0], "iifname eth0");
    let scripted = lab.knft(&["show", "-H"]).unwrap().stdout_str();
    assert_eq!(
        scripted,
        "public\tiifname eth0\t1\t0\nmgmt\tiifname wg0\t1\t0\n"
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The watcher's pid from `knft apply --confirm`'s report.
fn watcher_pid(stdout: &str) -> u32 {
    stdout
        .split("watcher pid ")
        .nth(1)
        .and_then(|rest| {
            rest.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no watcher pid in {stdout:?}"))
}

/// Waits (at most a minute) until a process has ended.
fn wait_for_exit(pid: u32) {
    let until = Instant::now() + Duration::from_secs(60);
    let stat = format!("/proc/{pid}/stat");
    while Instant::now() < until {
        match std::fs::read_to_string(&stat) {
            // Ended, or a zombie waiting for its parent (knft, gone) to reap it.
            Err(_) => return,
            Ok(s)
                if s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                return
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    panic!("the watcher {pid} is still running after a minute");
}

#[test]
fn the_boot_unit_is_valid_and_loads_the_boot_ruleset() {
    let unit = kld_tests::vm::workspace_root().join("crates/kld-nft/systemd/kld-nft.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let boot = format!("{}/boot.nft", kld_nft::DEFAULT_STATE_DIR);
    assert!(
        text.contains(&format!("ExecStart=/usr/sbin/nft -f {boot}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("ConditionPathExists={boot}")),
        "{text}"
    );
    kld_tests::units::verify(&[&unit]);
}

#[test]
fn knft_links_no_zfs_library() {
    let out = Cmd::new("ldd").arg(&*KNFT).run().unwrap().stdout_str();
    assert!(out.contains("libc.so"), "{out}");
    assert!(
        !out.contains("libzfs"),
        "knft must not need libzfs or libzfs_core:\n{out}"
    );
}
