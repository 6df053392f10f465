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

// ---------------------------------------------------------------------
// Under kills and concurrency: every knft change killed after each of its
// steps, in real namespaces, with real TCP traffic telling the rulesets
// apart.

/// The lockout file: SSH (22) is replaced by tcp 2222 in the mgmt zone.
fn lockout() -> String {
    WEB.replace("service = \"ssh\"", "tcp = 2222")
}

/// Which ruleset is live: the old (WEB: mgmt reaches 22) or the new
/// (lockout: mgmt reaches 2222), found by listing and by connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    Old,
    New,
}

/// A lab with the two files, SSH-like servers on 22 and 2222, and the old
/// ruleset applied and confirmed by knft.
struct FaultLab {
    lab: Lab,
    web: PathBuf,
    lockout: PathBuf,
    old_listing: String,
    _servers: Vec<Server>,
}

/// A listing with its counter values taken out.
fn without_counters(listing: &str) -> String {
    let mut out = String::new();
    for line in listing.lines() {
        let mut words: Vec<&str> = Vec::new();
        let mut it = line.split(' ').peekable();
        while let Some(w) = it.next() {
            words.push(w);
            if w.ends_with("counter") && it.peek() == Some(&"packets") {
                for _ in 0..4 {
                    it.next();
                }
            }
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

impl FaultLab {
    fn new() -> FaultLab {
        let lab = Lab::new();
        let dir = tempfile::tempdir().unwrap().keep();
        let web = dir.join("web.toml");
        std::fs::write(&web, WEB).unwrap();
        let lockout_file = dir.join("lockout.toml");
        std::fs::write(&lockout_file, lockout()).unwrap();
        let servers = vec![
            Server::start(&lab.server, "[::]:22").unwrap(),
            Server::start(&lab.server, "[::]:2222").unwrap(),
        ];
        lab.knft(&["apply", "-f", path(&web)]).unwrap();
        let old_listing = without_counters(&lab.table().unwrap());
        FaultLab {
            lab,
            web,
            lockout: lockout_file,
            old_listing,
            _servers: servers,
        }
    }

    /// A std Command running knft in the server namespace (for the
    /// fault-injection harness, which needs to see its signal).
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", self.lab.server.name()])
            .arg(&*KNFT)
            .arg("--state-dir")
            .arg(self.lab.state.path())
            .args(args);
        c
    }

    /// Which ruleset is live; panics on anything else (no table, a mix).
    fn live(&self) -> Live {
        let listing = without_counters(&self.lab.table().expect("table inet kld exists"));
        let live = if listing == self.old_listing {
            Live::Old
        } else {
            assert!(
                listing.contains("mgmt: tcp 2222") && !listing.contains("mgmt: ssh"),
                "neither the old nor the new ruleset is live:\n{listing}"
            );
            Live::New
        };
        let port = match live {
            Live::Old => "198.51.100.1:22",
            Live::New => "198.51.100.1:2222",
        };
        assert!(
            reaches(&self.lab.mgmt, port),
            "{live:?} is live but {port} is not reached"
        );
        live
    }

    /// Which ruleset boot.nft holds; it must exist.
    fn boot(&self) -> Live {
        let text = std::fs::read_to_string(self.lab.state.path().join("boot.nft"))
            .expect("boot.nft is never lost");
        if text.contains("mgmt: tcp 2222") {
            Live::New
        } else {
            assert!(text.contains("mgmt: ssh"), "boot.nft: {text}");
            Live::Old
        }
    }

    fn state_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.lab.state.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "files")
            .collect();
        names.sort();
        names
    }

    /// Nothing half-made is left in the state directory.
    fn assert_settled(&self) {
        let names = self.state_files();
        for n in &names {
            assert!(
                !n.ends_with(".new") && n != "apply.json" && !n.contains(".kld-"),
                "{n} left in the state directory: {names:?}"
            );
        }
    }

    /// Kills the watchers this lab's knft started (they are ours, found by
    /// their state directory on the command line).
    fn kill_watchers(&self) {
        for pid in watchers(self.lab.state.path()) {
            let _ = Cmd::new("kill").args(["-9", &pid.to_string()]).run();
            wait_for_exit(pid);
        }
    }
}

impl Drop for FaultLab {
    fn drop(&mut self) {
        self.kill_watchers();
        if let Some(dir) = self.web.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Lab {
    /// `nft list table inet kld` in the server namespace.
    fn table(&self) -> Option<String> {
        self.server.run(|| Nft::new().list_text()).unwrap()
    }
}

/// The `knft await-confirm` processes of a state directory.
fn watchers(state: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie
            && args.iter().any(|a| a == "await-confirm")
            && args.iter().any(|a| Path::new(a) == state)
        {
            out.push(pid);
        }
    }
    out
}

fn code(r: &Result<kld_exec::Output, kld_exec::Error>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.exit_code().unwrap_or(-1),
    }
}

#[test]
fn knft_apply_killed_at_every_step_leaves_the_old_or_the_new_ruleset() {
    let steps = {
        let lab = FaultLab::new();
        kld_tests::fault::trace(lab.command(&["apply", "-f", path(&lab.lockout)])).unwrap()
    };
    assert!(steps.len() >= 8, "{steps:?}");
    let mut outcomes = Vec::new();
    for n in 1..=steps.len() {
        let lab = FaultLab::new();
        kld_tests::fault::killed_after(lab.command(&["apply", "-f", path(&lab.lockout)]), n)
            .unwrap();
        let after_kill = lab.live();
        let boot = lab.boot();
        // A read-only command changes nothing, whatever it finds.
        let before = lab.state_files();
        let show = lab.lab.knft(&["show"]);
        assert_eq!(code(&show), 0, "step {n}: {show:?}");
        assert_eq!(lab.live(), after_kill, "step {n}: show changed the table");
        assert_eq!(
            lab.state_files(),
            before,
            "step {n}: show changed the state"
        );
        // The next change finishes or undoes the killed one, then works.
        lab.lab.knft(&["apply", "-f", path(&lab.lockout)]).unwrap();
        assert_eq!(lab.live(), Live::New, "step {n}");
        assert_eq!(lab.boot(), Live::New, "step {n}");
        lab.assert_settled();
        // And rollback goes back to a ruleset that really was live.
        lab.lab.knft(&["rollback"]).unwrap();
        let back = lab.live();
        assert_eq!(
            lab.boot(),
            back,
            "step {n}: boot.nft and the live table differ"
        );
        if after_kill == Live::Old {
            assert_eq!(back, Live::Old, "step {n}");
        }
        outcomes.push(format!(
            "{n} ({}): {after_kill:?}/boot {boot:?}",
            steps[n - 1]
        ));
    }
    eprintln!(
        "knft apply, killed after each step:\n{}",
        outcomes.join("\n")
    );
}

#[test]
fn knft_apply_confirm_killed_at_every_step_never_loses_the_firewall() {
    let steps = {
        let lab = FaultLab::new();
        let t = kld_tests::fault::trace(lab.command(&[
            "apply",
            "-f",
            path(&lab.lockout),
            "--confirm",
            "600",
        ]))
        .unwrap();
        lab.kill_watchers();
        t
    };
    assert!(
        steps.iter().any(|s| s.contains("await-confirm")),
        "{steps:?}"
    );
    let mut outcomes = Vec::new();
    for n in 1..=steps.len() {
        // Killed, and its deadline passes: the watcher (if it was started)
        // or the next command reverts to the table that was live before.
        let lab = FaultLab::new();
        kld_tests::fault::killed_after(
            lab.command(&["apply", "-f", path(&lab.lockout), "--confirm", "2"]),
            n,
        )
        .unwrap();
        let after_kill = lab.live();
        assert_eq!(
            lab.boot(),
            Live::Old,
            "step {n}: an unconfirmed change reached boot.nft"
        );
        let watcher = watchers(lab.lab.state.path());
        for pid in &watcher {
            wait_for_exit(*pid);
        }
        // show never reverts: with no watcher, an overdue change is still
        // live after it, and show says so.
        std::thread::sleep(Duration::from_millis(2100));
        let before = lab.live();
        let show = lab.lab.knft(&["show"]).unwrap().stdout_str();
        assert_eq!(lab.live(), before, "step {n}: show changed the table");
        if before == Live::New {
            assert!(watcher.is_empty(), "step {n}: the watcher did not revert");
            assert!(
                show.contains("interrupted") || show.contains("not confirmed in time"),
                "step {n}: show does not say what it found: {show}"
            );
        }
        // The next change reverts or undoes it first, to the old table.
        let confirm = lab.lab.knft(&["confirm"]);
        assert_eq!(code(&confirm), 1, "step {n}: {confirm:?}");
        assert_eq!(lab.live(), Live::Old, "step {n}");
        assert_eq!(lab.boot(), Live::Old, "step {n}");
        lab.assert_settled();

        // Killed with a long deadline: confirm keeps it if it took effect.
        let lab = FaultLab::new();
        kld_tests::fault::killed_after(
            lab.command(&["apply", "-f", path(&lab.lockout), "--confirm", "600"]),
            n,
        )
        .unwrap();
        let long_kill = lab.live();
        let confirm = lab.lab.knft(&["confirm"]);
        let confirmed = code(&confirm) == 0;
        assert!(confirmed || code(&confirm) == 1, "step {n}: {confirm:?}");
        let live = lab.live();
        assert_eq!(
            lab.boot(),
            live,
            "step {n}: confirm left boot.nft and the table apart"
        );
        assert_eq!(live == Live::New, confirmed, "step {n}: {confirm:?}");
        lab.assert_settled();
        lab.kill_watchers();
        outcomes.push(format!(
            "{n} ({}): {after_kill:?} then {before:?} after the deadline; long deadline {long_kill:?}, confirm {}",
            steps[n - 1],
            if confirmed { "kept it" } else { "found nothing" }
        ));
    }
    eprintln!(
        "knft apply --confirm, killed after each step:\n{}",
        outcomes.join("\n")
    );
}

#[test]
fn knft_confirm_and_rollback_killed_at_every_step_finish_when_run_again() {
    let setup = || {
        let lab = FaultLab::new();
        lab.lab
            .knft(&["apply", "-f", path(&lab.lockout), "--confirm", "600"])
            .unwrap();
        lab
    };
    let confirm_steps = {
        let lab = setup();
        kld_tests::fault::steps(lab.command(&["confirm"])).unwrap()
    };
    for n in 1..=confirm_steps {
        let lab = setup();
        kld_tests::fault::killed_after(lab.command(&["confirm"]), n).unwrap();
        assert_eq!(lab.live(), Live::New, "confirm step {n}");
        let again = lab.lab.knft(&["confirm"]);
        // Done already (exit 1, nothing pending) or done now.
        assert!(code(&again) <= 1, "confirm step {n}: {again:?}");
        assert_eq!(lab.live(), Live::New, "confirm step {n}");
        assert_eq!(lab.boot(), Live::New, "confirm step {n}");
        lab.assert_settled();
    }
    let rollback_steps = {
        let lab = setup();
        lab.lab.knft(&["confirm"]).unwrap();
        kld_tests::fault::steps(lab.command(&["rollback"])).unwrap()
    };
    for n in 1..=rollback_steps {
        let lab = setup();
        lab.lab.knft(&["confirm"]).unwrap();
        kld_tests::fault::killed_after(lab.command(&["rollback"]), n).unwrap();
        lab.live();
        lab.boot();
        let again = lab.lab.knft(&["rollback"]);
        assert!(code(&again) <= 1, "rollback step {n}: {again:?}");
        assert_eq!(lab.live(), Live::Old, "rollback step {n}");
        assert_eq!(lab.boot(), Live::Old, "rollback step {n}");
        lab.assert_settled();
    }
    // The watcher's revert, killed at each of its steps: run again, it (or
    // rollback) finishes.
    let token = |lab: &FaultLab| {
        let pending: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(lab.lab.state.path().join("pending.json")).unwrap(),
        )
        .unwrap();
        pending["token"].as_str().unwrap().to_owned()
    };
    let overdue = || {
        let lab = FaultLab::new();
        lab.lab
            .knft(&["apply", "-f", path(&lab.lockout), "--confirm", "1"])
            .unwrap();
        lab.kill_watchers();
        std::thread::sleep(Duration::from_millis(1100));
        lab
    };
    let watch_steps = {
        let lab = overdue();
        let t = token(&lab);
        kld_tests::fault::steps(lab.command(&["await-confirm", &t])).unwrap()
    };
    assert!(watch_steps >= 2, "the watcher reverts in steps");
    for n in 1..=watch_steps {
        let lab = overdue();
        let t = token(&lab);
        kld_tests::fault::killed_after(lab.command(&["await-confirm", &t]), n).unwrap();
        lab.live();
        assert_eq!(lab.boot(), Live::Old, "watcher step {n}");
        let again = lab.lab.knft(&["rollback"]);
        assert!(code(&again) <= 1, "watcher step {n}: {again:?}");
        assert_eq!(lab.live(), Live::Old, "watcher step {n}");
        assert_eq!(lab.boot(), Live::Old, "watcher step {n}");
        lab.assert_settled();
    }
    eprintln!(
        "knft confirm: {confirm_steps} kill points; knft rollback: {rollback_steps}; knft await-confirm: {watch_steps}"
    );
}

#[test]
fn concurrent_applies_serialise_and_one_confirm_window_wins() {
    const N: u16 = 6;
    let lab = FaultLab::new();
    let dir = lab.web.parent().unwrap().to_owned();
    let files: Vec<PathBuf> = (0..N)
        .map(|i| {
            let f = dir.join(format!("port{i}.toml"));
            std::fs::write(
                &f,
                WEB.replace("service = \"ssh\"", &format!("tcp = {}", 3000 + i)),
            )
            .unwrap();
            f
        })
        .collect();
    let run_all = |extra: &[&str]| -> Vec<Result<kld_exec::Output, kld_exec::Error>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = files
                .iter()
                .map(|f| {
                    let mut args = vec!["apply", "-f", path(f)];
                    args.extend_from_slice(extra);
                    let lab = &lab;
                    s.spawn(move || lab.lab.knft(&args))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    // Plain applies: all succeed, one after another; the last one is live
    // and is what loads at boot.
    let results = run_all(&[]);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let listing = lab.lab.table().unwrap();
    let port = (3000..3000 + N)
        .find(|p| listing.contains(&format!("mgmt: tcp {p}")))
        .expect("one of the files is live");
    let boot = std::fs::read_to_string(lab.lab.state.path().join("boot.nft")).unwrap();
    assert!(boot.contains(&format!("mgmt: tcp {port}")), "{boot}");
    assert!(
        reaches(&lab.lab.mgmt, &format!("198.51.100.1:{port}")) || {
            // No server on that port: refused (RST) fast rather than dropped.
            connect_refused(&lab.lab.mgmt, &format!("198.51.100.1:{port}"))
        }
    );
    lab.assert_settled();
    // With a confirmation window: exactly one wins, the others are told.
    let results = run_all(&["--confirm", "600"]);
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(r.stderr().contains("awaits confirmation"), "{r}");
    }
    assert_eq!(watchers(lab.lab.state.path()).len(), 1);
    lab.lab.knft(&["confirm"]).unwrap();
    lab.assert_settled();
}

/// Whether a connection is refused at once (the port is open in the
/// firewall, nothing listens).
fn connect_refused(ns: &Netns, addr: &str) -> bool {
    matches!(
        connect(ns, addr, Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
