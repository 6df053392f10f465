//! `cargo xtask demo`: a narrated tour of kld, run for real in the OpenZFS
//! VM. Each step prints what it is about, the command, and its output; the
//! tour stops at the first step that fails.

use std::process::ExitCode;

use anyhow::{Context, Result};
use kld_exec::quote;
use kld_tests::vm::Vm;

use crate::say;

/// One step of the tour: what it shows, and the command (a line of `sh`).
struct Step {
    say: &'static str,
    run: &'static str,
}

/// The tour. Each kld binary adds its steps here as it is built; a test
/// checks that every binary in kld-cli appears.
const TOUR: &[Step] = &[
    Step {
        say: "This is a real OpenZFS machine (qemu, Debian's cloud kernel)",
        run: "uname -r && echo \"OpenZFS $(cat /sys/module/zfs/version)\"",
    },
    Step {
        say: "Two blank disks become a mirrored pool",
        run: "zpool create -o ashift=12 -O compression=lz4 -O mountpoint=/tank tank mirror $KLD_VM_DISKS \
              && zpool status tank",
    },
    Step {
        say: "Datasets to work with",
        run: "zfs create tank/home && zfs create tank/home/alice && echo hello > /tank/home/alice/notes \
              && zfs list -r tank",
    },
    Step {
        say: "The kld binaries on this machine's PATH",
        run: "ls /kld/bin",
    },
    Step {
        say: "ksnap: snapshot a dataset and a path in one transaction group",
        run: "ksnap create -l pre-upgrade tank/home /tank/home/alice",
    },
    Step {
        say: "ksnap: a whole tree, recursively, and the list in each output mode",
        run: "ksnap create -r tank && ksnap list -r tank && ksnap list -H -p tank/home/alice",
    },
    Step {
        say: "ksnap: something goes wrong; see what changed since the snapshot",
        run: "echo oops > /tank/home/alice/notes && ksnap diff /tank/home/alice pre-upgrade",
    },
    Step {
        say: "ksnap: roll back to the newest snapshot labelled pre-upgrade (dry run, then for real)",
        run: "ksnap rollback --dry-run --destroy-newer tank/home/alice pre-upgrade \
              && ksnap rollback --destroy-newer tank/home/alice pre-upgrade && cat /tank/home/alice/notes",
    },
    Step {
        say: "ksnap: prune hourly snapshots down to the newest (other names are never touched)",
        run: "zfs snapshot tank/home@by-hand && for i in 1 2 3; do ksnap tank/home hourly; sleep 1; done \
              && ksnap prune --label hourly --keep 1 tank/home && ksnap list tank/home",
    },
    Step {
        say: "kdir: a dataset where a directory would go, tuned for PostgreSQL",
        run: "kdir --preset postgres /tank/pgdata && zfs get -o property,value,source recordsize,compression,atime tank/pgdata",
    },
    Step {
        say: "kdir -p: missing parent datasets too, all or nothing",
        run: "kdir -p /tank/srv/app/data && zfs list -r -o name,mountpoint tank/srv",
    },
    Step {
        say: "kdir --migrate: an existing directory becomes a dataset (copy, verify, swap)",
        run: "mkdir -p /tank/home/alice/photos && echo jpeg > /tank/home/alice/photos/cat.jpg \
              && kdir --migrate /tank/home/alice/photos && cat /tank/home/alice/photos/cat.jpg \
              && zfs list tank/home/alice/photos",
    },
    Step {
        say: "kdf: space as ZFS accounts it, with snapshot counts and the pool's totals",
        run: "zfs clone tank/home@by-hand tank/home-test && kdf -r tank",
    },
    Step {
        say: "kdf: each snapshot's unique and written space, and JSON for scripts \
              (compact when piped; its first 300 bytes)",
        run: "kdf --snapshots tank/home && kdf --json -s used -d 1 tank | head -c 300 && echo",
    },
    Step {
        say: "kbe: a boot environment root; the pool boots BE debian (flag R)",
        run: "zfs create -o canmount=off -o mountpoint=none tank/ROOT \
              && zfs create -o canmount=noauto -o mountpoint=/ tank/ROOT/debian \
              && zfs create -o canmount=noauto tank/ROOT/debian/var \
              && zpool set bootfs=tank/ROOT/debian tank && kbe --pool tank list",
    },
    Step {
        say: "kbe: a boot environment before an upgrade (dry run, then for real), booted next",
        run: "kbe --pool tank create --dry-run pre-upgrade debian \
              && kbe --pool tank create pre-upgrade debian \
              && kbe --pool tank activate pre-upgrade && kbe --pool tank list",
    },
    Step {
        say: "kbe: the upgrade went wrong: roll back; the rollback target is protected",
        run: "kbe --pool tank rollback && kbe --pool tank list \
              && { kbe --pool tank destroy pre-upgrade || echo \"(refused, exit $?)\"; }",
    },
    Step {
        say: "kbe: adopt a golden image that arrived by zfs send | zfs receive",
        run: "zfs snapshot -r tank/ROOT/debian@v43 \
              && zfs send -R tank/ROOT/debian@v43 | zfs receive -u tank/golden-v43 \
              && kbe --pool tank create golden-v43 tank/golden-v43 && kbe --pool tank list -v",
    },
    Step {
        say: "kdarksite: the darksite built on the host (above) from real Debian packages, checked here \
              from scratch: both signatures (gpgv, the darksite's own key) and every hash",
        run: "ln -s releases/2 /srv/darksite/current && kdarksite verify /srv/darksite \
              && head -8 /srv/darksite/current/dists/bookworm/Release",
    },
    Step {
        say: "kdarksite: a swapped package is caught; the previous publication goes back in service atomically",
        run: "echo tampered >> $(ls /srv/darksite/releases/2/pool/main/l/less/*.deb) \
              && { kdarksite verify /srv/darksite || echo \"(refused, exit $?)\"; } \
              && kdarksite rollback --dry-run /srv/darksite && kdarksite rollback /srv/darksite \
              && kdarksite verify /srv/darksite",
    },
    Step {
        say: "kdarksite serve: the darksite over HTTP, for installs on a LAN (apt fetches the same files)",
        run: "kdarksite serve /srv/darksite --listen 127.0.0.1:8080 & pid=$!; sleep 1; \
              wget -q -O - http://127.0.0.1:8080/dists/bookworm/main/binary-amd64/Packages | grep -E '^(Package|Version):'; \
              wget -q -O /dev/null http://127.0.0.1:8080/../.kdarksite/signing-key.asc || echo '(nothing outside the publication is served)'; \
              kill $pid",
    },
    Step {
        say: "knft: firewall zones from a TOML file (public: tcp 80, 443 on eth0; management: ssh on wg0)",
        run: "cat /kld/demo/web-server.toml && knft check -f /kld/demo/web-server.toml",
    },
    Step {
        say: "knft: the exact ruleset it would load (dry run), and what would change",
        run: "knft apply --dry-run -f /kld/demo/web-server.toml | head -24 && knft diff -f /kld/demo/web-server.toml",
    },
    Step {
        say: "knft: apply in one transaction to table inet kld; another tool's table is untouched",
        run: "nft add table ip other && knft apply -f /kld/demo/web-server.toml && knft show && nft list tables",
    },
    Step {
        say: "knft: a change that would lock SSH out, applied with --confirm: unconfirmed, it reverts by itself",
        run: "sed 's/service = \"ssh\"/tcp = 2222/' /kld/demo/web-server.toml > /tmp/lockout.toml \
              && knft apply --confirm 3 -f /tmp/lockout.toml && knft diff -f /kld/demo/web-server.toml \
              && sleep 5 && knft diff -f /kld/demo/web-server.toml",
    },
    Step {
        say: "knft: a live set, changed atomically",
        run: "printf '[sets.lb_pool]\\ntype = \"ipv4\"\\n' > /tmp/pool.toml && cat /kld/demo/web-server.toml >> /tmp/pool.toml \
              && knft apply -f /tmp/pool.toml && knft set add lb_pool 10.0.0.5 10.0.0.6 && knft show --sets",
    },
    Step {
        say: "knft: a mistake is refused with its place in the file, and nothing changes",
        run: "sed 's/\"wg0\"/\"eth0\"/' /kld/demo/web-server.toml > /tmp/bad.toml \
              && { knft apply -f /tmp/bad.toml || echo \"(refused, exit $?)\"; }",
    },
    Step {
        say: "knft: roll back to the ruleset before the last apply",
        run: "knft rollback && knft show -H",
    },
    Step {
        say: "kst: the host's health in one line after a scrub (checks without a data source here, \
              such as SMART in a VM, are skipped and say why)",
        run: "zpool scrub -w tank && kst",
    },
    Step {
        say: "kst: a disk drops out of the mirror: DEGRADED is WARNING (exit 1), with the details; \
              the same as Prometheus text for node_exporter",
        run: "zpool offline tank ${KLD_VM_DISKS##* } && { kst || echo \"(exit $?)\"; } \
              && kst --check pools --prometheus | grep -E '^kld_(check_status|pool_online)' \
              && zpool online tank ${KLD_VM_DISKS##* }",
    },
    Step {
        say: "kwg: keys exactly as wg makes them (kwg pubkey and wg pubkey agree)",
        run: "kwg genkey > /tmp/demo.key && kwg pubkey < /tmp/demo.key && wg pubkey < /tmp/demo.key",
    },
    Step {
        say: "kwg: a hub and a spoke, each in a network namespace; the hub gets a key, a file and kernel WireGuard",
        run: "ip netns add hub && ip netns add spoke && ip link add e0 netns hub type veth peer name e0 netns spoke \
              && ip -n hub addr add 192.0.2.1/24 dev e0 && ip -n spoke addr add 192.0.2.2/24 dev e0 \
              && ip -n hub link set e0 up && ip -n spoke link set e0 up \
              && ip netns exec hub kwg hub init wg0 --network 10.250.0.0/16 --endpoint 192.0.2.1 \
              && ip netns exec hub kwg up wg0",
    },
    Step {
        say: "kwg: open an enrolment window for one join; the spoke joins with its token (its key never leaves it)",
        run: "{ ip netns exec hub kwg hub serve wg0 >/tmp/serve.log 2>&1 & echo $! > /tmp/serve.pid; } \
              && ip netns exec hub kwg enrol open wg0 --joins 1 --for 10m > /tmp/token && sleep 1 \
              && ip netns exec spoke kwg --config-dir /tmp/spoke join --iface wg0 --token-file /tmp/token \
              && ip netns exec hub kwg enrol list wg0",
    },
    Step {
        say: "kwg show: a real handshake, transfer counts, the peer up",
        run: "ip netns exec spoke ping -c 2 10.250.0.1 && ip netns exec hub kwg show",
    },
    Step {
        say: "kwg: the same token again is refused, and nothing changes",
        run: "ip netns exec spoke kwg --config-dir /tmp/other join --iface wg1 --token-file /tmp/token \
              || echo \"(refused, exit $?)\"; ip netns exec hub kwg hub spokes wg0",
    },
    Step {
        say: "kwg revoke: live and in the file; the spoke no longer reaches the hub",
        run: "ip netns exec hub kwg revoke --iface wg0 10.250.0.2 \
              && { ip netns exec spoke ping -c 1 -W 2 10.250.0.1 || echo '(no longer reaches the hub)'; } \
              && kill $(cat /tmp/serve.pid) && ip netns exec spoke kwg --config-dir /tmp/spoke down wg0 \
              && ip netns exec hub kwg down wg0 && ip netns del hub && ip netns del spoke",
    },
    Step {
        say: "kseal audit: what a lived-in system would carry into every clone",
        run: "mkdir -p /tmp/golden/etc/ssh /tmp/golden/root /tmp/golden/var/lib/dhcp /tmp/golden/etc/kldload \
              && echo 4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f > /tmp/golden/etc/machine-id \
              && printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\\n-----END OPENSSH PRIVATE KEY-----\\n' > /tmp/golden/etc/ssh/ssh_host_ed25519_key \
              && echo 'zpool status' > /tmp/golden/root/.bash_history \
              && echo 'lease {}' > /tmp/golden/var/lib/dhcp/dhclient.eth0.leases \
              && echo 'ROOT_PASSWORD=hunter2' > /tmp/golden/etc/kldload/install-manifest.env \
              && { kseal audit /tmp/golden || echo \"(findings, exit $?)\"; }",
    },
    Step {
        say: "kseal --dry-run: every operation and the exact change it would make",
        run: "kseal --dry-run /tmp/golden",
    },
    Step {
        say: "kseal: sealed; machine-id is `uninitialized` (systemd's first boot) and the audit is clean",
        run: "kseal /tmp/golden && cat /tmp/golden/etc/machine-id && kseal audit /tmp/golden",
    },
    Step {
        say: "kexport: a ZFS system disk (boot environment and a /home dataset) sealed on a copy, written as qcow2 in one ordered pass (hashed as written), checked and compared by qemu-img; qemu-img checks it again here",
        run: "modprobe loop && truncate -s 256M /tmp/golden.img && lo=$(losetup -f --show /tmp/golden.img) \
              && zpool create -R /mnt/g -O mountpoint=none -O canmount=off golden $lo \
              && zfs create -o canmount=off golden/ROOT \
              && zfs create -o canmount=noauto -o mountpoint=/ golden/ROOT/debian && zfs mount golden/ROOT/debian \
              && zfs create -o mountpoint=/home golden/home && zpool set bootfs=golden/ROOT/debian golden \
              && mkdir -p /mnt/g/etc /mnt/g/home/alice && echo 4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f > /mnt/g/etc/machine-id \
              && echo ls > /mnt/g/home/alice/.bash_history && zpool export golden && losetup -d $lo \
              && kexport --name golden /tmp/golden.img qcow2 /tmp/exports && ls -l /tmp/exports \
              && cat /tmp/exports/golden.qcow2.sha256 && qemu-img check /tmp/exports/golden.qcow2",
    },
    Step {
        say: "kexport refuses a disk in use (here: its pool is imported) and never overwrites an export",
        run: "lo=$(losetup -f --show /tmp/golden.img) && zpool import -d $lo -N golden \
              && { kexport --no-seal --name other /tmp/golden.img raw /tmp/exports || echo \"(refused, exit $?)\"; } \
              && zpool export golden && losetup -d $lo \
              && { kexport --name golden /tmp/golden.img qcow2 /tmp/exports || echo \"(refused, exit $?)\"; }",
    },
    Step {
        say: "ksnap refuses a hostile name before anything runs",
        run: "ksnap create 'tank/home;reboot' || echo \"(refused, exit $?)\"",
    },
];

pub fn run() -> Result<ExitCode> {
    crate::vm::prepare()?;
    let mut files = darksite_on_the_host()?;
    files.push((
        "/kld/demo/web-server.toml".to_owned(),
        include_bytes!("../../crates/kld-nft/examples/web-server.toml").to_vec(),
    ));
    say("booting the OpenZFS VM with two blank disks");
    let run = Vm::new()
        .disks(2)
        .with_program("/usr/bin/gpgv")
        .run_with_files(&script(), &files, &mut std::io::stdout())
        .context("running the tour")?;
    if run.exit_code == 0 {
        say(&format!(
            "tour finished: {} steps (VM boot to first step {:.1} s)",
            TOUR.len(),
            run.boot_to_script.as_secs_f64()
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        say("the tour stopped at a failing step (see above)");
        Ok(ExitCode::FAILURE)
    }
}

/// Builds a small darksite on the host with `kdarksite`, from the local
/// mirror of real Debian packages, twice (the second build is an update
/// that downloads nothing), and returns its publications as files for the
/// VM's `/srv/darksite` (its secret key stays on the host).
fn darksite_on_the_host() -> Result<Vec<(String, Vec<u8>)>> {
    let mirror = crate::vm::prepare_darksite_mirror(&[kld_tests::darksite::TEST_SET])?;
    let kdarksite = kld_tests::vm::build_binaries()?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "kdarksite"))
        .context("kld-cli did not build kdarksite")?;
    let url = kld_tests::darksite::serve(&mirror)?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let set = kld_tests::darksite::write_set(
        tmp.path(),
        "demo",
        "name = \"demo\"\ndistribution = \"bookworm\"\nbase = \"none\"\npackages = [\"less\"]\n",
    );
    let out = tmp.path().join("darksite");
    say(&format!(
        "on the host, a darksite from the mirror of real Debian packages on {url}:"
    ));
    for _ in 0..2 {
        let cmd = kld_exec::Cmd::new(&kdarksite)
            .arg("build")
            .arg(&set)
            .args(["--mirror", &url, "--out"])
            .arg(&out);
        println!(
            "$ {}",
            cmd.display()
                .replace(&kdarksite.display().to_string(), "kdarksite")
        );
        print!("{}", cmd.run()?.stdout_str());
    }
    let mut files = Vec::new();
    collect(&out.join("releases"), &out, &mut files)?;
    Ok(files
        .into_iter()
        .map(|(rel, bytes)| (format!("/srv/darksite/{rel}"), bytes))
        .collect())
}

fn collect(
    dir: &std::path::Path,
    root: &std::path::Path,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, root, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("below the root")
                .display()
                .to_string();
            out.push((rel, std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// The tour as one `sh` script.
fn script() -> String {
    let mut script = String::from("n=0\n");
    for step in TOUR {
        let run = step.run.split_whitespace().collect::<Vec<_>>().join(" ");
        script.push_str(&format!(
            "n=$((n + 1))\nprintf '\\n== %s. %s\\n$ %s\\n' \"$n\" {say} {cmd}\n\
             sh -c {cmd} 2>&1 || {{ echo \"demo: step $n failed\"; exit 1; }}\n",
            say = quote(step.say),
            cmd = quote(&run),
        ));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo shows all of kld that exists: every binary of kld-cli has a
    /// step that runs it.
    #[test]
    fn every_binary_is_in_the_tour() {
        let bins = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/kld-cli/src/bin");
        for entry in std::fs::read_dir(bins).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let shown = TOUR
                .iter()
                .any(|s| s.run.split_whitespace().any(|w| w == name));
            assert!(shown, "the demo tour has no step running {name}");
        }
    }

    #[test]
    fn the_script_is_valid_sh() {
        let out = kld_exec::Cmd::new("sh").args(["-n", "-c", &script()]).run();
        assert!(out.is_ok(), "{out:?}");
    }
}
