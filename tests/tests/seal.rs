//! Host tier for kld-seal, kseal and kexport: a real Debian root (mmdebstrap,
//! cached) sealed and audited; every export format checked by qemu-img; an
//! upload to a real sshd in a network namespace.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use kld_exec::Cmd;
use kld_tests::netns::{veth, Netns};

static BINS: LazyLock<Vec<PathBuf>> =
    LazyLock::new(|| kld_tests::vm::build_binaries().expect("kld-cli builds"));

fn bin(name: &str) -> PathBuf {
    BINS.iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("kld-cli builds {name}"))
        .clone()
}

static ROOT_TAR: LazyLock<PathBuf> =
    LazyLock::new(|| kld_tests::sealroot::tarball().expect("the Debian root builds"));

/// Runs a command, returning (exit code, stdout, stderr).
fn sh(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(root: &Path, inside: &str, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(inside.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn keygen(path: &Path, pem: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    let mut c = Cmd::new("ssh-keygen").args(["-q", "-N", "", "-t"]);
    c = if pem {
        c.args(["rsa", "-b", "2048", "-m", "PEM"])
    } else {
        c.arg("ed25519")
    };
    c.arg("-f").arg(path).run().unwrap();
}

fn wg_genkey() -> String {
    Cmd::new("wg").arg("genkey").run().unwrap().stdout_str()
}

/// Every file, link and directory of the tree with what identifies its
/// contents (SHA-256, link target) and its mode and owner.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let inside = format!("/{}", p.strip_prefix(root).unwrap().display());
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                kld_seal::hash::sha256_file(&p).unwrap()
            } else {
                "dir".into()
            };
            out.insert(
                inside,
                format!("{what} {:o} {}:{}", m.mode(), m.uid(), m.gid()),
            );
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// What sealing may change, written here independently of kld-seal's rules.
fn seal_may_change(p: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/etc/ssh/ssh_host_",
        "/etc/systemd/system/kld-ssh-hostkeys.service",
        "/etc/systemd/system/multi-user.target.wants/kld-ssh-hostkeys.service",
        "/etc/systemd/system/multi-user.target.wants",
        "/etc/systemd/system",
        "/var/lib/dhcp/",
        "/var/lib/cloud/",
        "/etc/cloud/",
        "/tmp/",
        "/var/tmp/",
        "/var/log/",
        "/var/cache/apt/",
        "/etc/kldload/install-manifest.env",
        "/etc/kldload/ca/root/ca.key",
        "/etc/wireguard/",
        "/var/lib/systemd/random-seed",
        "/var/lib/systemd/credential.secret",
        "/etc/NetworkManager/system-connections/",
        "/root/.bash_history",
        "/root/.ssh/id_ed25519",
        "/home/alice/.bash_history",
        "/home/alice/.python_history",
        "/home/alice/.ssh/id_rsa",
    ];
    PREFIXES
        .iter()
        .any(|x| p == x.trim_end_matches('/') || p.starts_with(x))
}

/// A Debian root, unpacked and lived in: identity, leases, histories, an
/// installer manifest with secrets, keys of every kind, user data.
fn lived_in_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(kld_tests::vm::target_dir()).unwrap();
    kld_tests::sealroot::unpack(&ROOT_TAR, dir.path()).unwrap();
    let r = dir.path();
    write(
        r,
        "/etc/machine-id",
        "4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f\n",
        0o444,
    );
    let _ = std::fs::remove_file(r.join("var/lib/dbus/machine-id"));
    write(
        r,
        "/var/lib/dbus/machine-id",
        "4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f\n",
        0o444,
    );
    write(r, "/var/lib/systemd/random-seed", "seedseedseed", 0o600);
    for t in ["ed25519", "rsa", "ecdsa"] {
        if !r.join(format!("etc/ssh/ssh_host_{t}_key")).exists() {
            keygen(&r.join(format!("etc/ssh/ssh_host_{t}_key")), false);
        }
    }
    write(
        r,
        "/var/lib/dhcp/dhclient.enp1s0.leases",
        "lease { fixed-address 10.0.0.9; }\n",
        0o644,
    );
    write(r, "/var/lib/cloud/instances/i-0123/obj.pkl", "state", 0o600);
    write(r, "/var/log/cloud-init.log", "cloud-init ran\n", 0o640);
    write(
        r,
        "/var/log/journal/4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f/system.journal",
        "LPKSHHRH",
        0o640,
    );
    write(r, "/var/log/syslog", "a log line\n", 0o640);
    write(r, "/var/log/syslog.1", "an old log line\n", 0o640);
    write(r, "/root/.bash_history", "zpool status\n", 0o600);
    write(r, "/home/alice/.bash_history", "ls\n", 0o600);
    write(r, "/home/alice/.python_history", "1+1\n", 0o600);
    write(
        r,
        "/etc/kldload/install-manifest.env",
        "KLDLOAD_HOSTNAME=golden\nKLDLOAD_ROOT_PASSWORD=hunter2\nKLDLOAD_WG_PRIVATE_KEY=abc\n",
        0o600,
    );
    write(r, "/etc/kldload/edition", "server\n", 0o644);
    keygen(&r.join("etc/kldload/ca/root/ca.key"), true);
    write(r, "/etc/wireguard/wg0.key", &wg_genkey(), 0o600);
    write(
        r,
        "/etc/wireguard/wg0.conf",
        &format!(
            "[Interface]\nAddress = 10.77.0.2/24\nPrivateKey = {}\n[Peer]\nPublicKey = x1Ng7tXTFLhWa1gMrURKYzt2Yl5ZGpl3Q3vCiQq3ZHU=\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 10.77.0.0/24\n",
            wg_genkey().trim()
        ),
        0o600,
    );
    std::fs::create_dir_all(r.join("root/.ssh")).unwrap();
    keygen(&r.join("root/.ssh/id_ed25519"), false);
    std::fs::create_dir_all(r.join("home/alice/.ssh")).unwrap();
    keygen(&r.join("home/alice/.ssh/id_rsa"), true);
    write(
        r,
        "/home/alice/.ssh/authorized_keys",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC alice@laptop\n",
        0o600,
    );
    write(
        r,
        "/etc/NetworkManager/system-connections/home.nmconnection",
        "[connection]\nid=home\ntype=wifi\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=correct horse\n",
        0o600,
    );
    write(r, "/tmp/build.o", "junk", 0o644);
    write(
        r,
        "/var/cache/apt/archives/foo_1.0_amd64.deb",
        "!<arch>",
        0o644,
    );
    // User data and configuration that must come through byte for byte.
    write(
        r,
        "/home/alice/docs/notes.txt",
        "remember the milk\n",
        0o644,
    );
    write(r, "/srv/data/table.csv", "a,b\n1,2\n", 0o640);
    write(r, "/etc/myapp.conf", "listen = 8080\n", 0o644);
    write(r, "/root/.profile.d/custom.sh", "export EDITOR=vi\n", 0o644);
    dir
}

#[test]
fn a_sealed_debian_root_audits_clean_and_keeps_user_data() {
    let dir = lived_in_root();
    let r = dir.path();
    let kseal = bin("kseal");

    let (code, out, _) = sh(std::process::Command::new(&kseal)
        .args(["audit", "--json"])
        .arg(r));
    assert_eq!(code, 1, "the lived-in root has findings");
    let findings: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(findings["apiVersion"], "kld/v1");
    assert_eq!(findings["kind"], "SealAuditFindingList");
    let found = |path: &str| {
        findings["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["path"] == path)
    };
    for p in [
        "/etc/machine-id",
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/wireguard/wg0.key",
        "/etc/wireguard/wg0.conf",
        "/etc/kldload/install-manifest.env",
        "/etc/kldload/ca/root/ca.key",
        "/root/.ssh/id_ed25519",
        "/var/lib/dhcp/dhclient.enp1s0.leases",
        "/home/alice/.bash_history",
        "/etc/NetworkManager/system-connections/home.nmconnection",
    ] {
        assert!(found(p), "audit misses {p}: {out}");
    }

    // A dry run lists every operation and changes nothing.
    let before = snapshot(r);
    let (code, out, err) = sh(std::process::Command::new(&kseal).arg("--dry-run").arg(r));
    assert_eq!(code, 0, "{err}");
    for op in kld_seal::Op::DEFAULT {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{op}\t"))),
            "{op} not listed:\n{out}"
        );
    }
    assert!(out.contains("machine-id\twrite\t/etc/machine-id"), "{out}");
    assert_eq!(snapshot(r), before, "--dry-run changed the tree");

    let (code, out, err) = sh(std::process::Command::new(&kseal).arg(r));
    assert_eq!(code, 0, "{out}{err}");
    let after = snapshot(r);
    for (path, was) in &before {
        if !seal_may_change(path) {
            assert_eq!(after.get(path), Some(was), "{path} changed or went");
        }
    }
    for path in after.keys() {
        assert!(
            before.contains_key(path) || seal_may_change(path),
            "{path} appeared"
        );
    }
    assert_eq!(
        after.get("/home/alice/.ssh/authorized_keys"),
        before.get("/home/alice/.ssh/authorized_keys"),
        "authorized_keys is kept by default"
    );

    let (code, out, err) = sh(std::process::Command::new(&kseal).arg("audit").arg(r));
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "not clean after sealing: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("etc/machine-id")).unwrap(),
        "uninitialized\n"
    );
    assert_eq!(
        std::fs::read_link(r.join("var/lib/dbus/machine-id")).unwrap(),
        Path::new("/etc/machine-id")
    );
    let conf = std::fs::read_to_string(r.join("etc/wireguard/wg0.conf")).unwrap();
    assert!(
        !conf.contains("PrivateKey") && conf.contains("Endpoint = 192.0.2.1:51820"),
        "{conf}"
    );
    assert!(
        r.join("var/log/syslog").exists()
            && std::fs::metadata(r.join("var/log/syslog")).unwrap().len() == 0
    );

    // cloud-init: exactly one file sets datasource_list, on one line ending in None.
    let mut definers = Vec::new();
    for e in walkdir(&r.join("etc/cloud")) {
        let text = std::fs::read_to_string(&e).unwrap_or_default();
        for l in text.lines().filter(|l| l.starts_with("datasource_list")) {
            definers.push((e.clone(), l.to_owned()));
        }
    }
    assert_eq!(definers.len(), 1, "{definers:?}");
    assert!(definers[0].1.trim_end().ends_with("None ]"), "{definers:?}");
    assert!(definers[0].1.contains("NoCloud") && definers[0].1.contains("ConfigDrive"));

    // First boot: the unit is installed and enabled, and what it runs
    // creates the host keys in the sealed system.
    let unit = r.join("etc/systemd/system/kld-ssh-hostkeys.service");
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        kld_seal::SSH_HOSTKEYS_UNIT
    );
    assert_eq!(
        std::fs::read_link(
            r.join("etc/systemd/system/multi-user.target.wants/kld-ssh-hostkeys.service")
        )
        .unwrap(),
        Path::new("/etc/systemd/system/kld-ssh-hostkeys.service")
    );
    assert!(!r.join("etc/ssh/ssh_host_ed25519_key").exists());
    Cmd::new("chroot")
        .arg(r)
        .args(["/usr/bin/ssh-keygen", "-A"])
        .run()
        .unwrap();
    assert!(r.join("etc/ssh/ssh_host_ed25519_key").exists());
    std::fs::remove_file(r.join("etc/ssh/ssh_host_ed25519_key")).unwrap();
    for t in ["rsa", "ecdsa"] {
        let _ = std::fs::remove_file(r.join(format!("etc/ssh/ssh_host_{t}_key")));
    }

    // A key planted afterwards is caught, by content, wherever it is.
    keygen(&r.join("srv/data/backup.bin"), true);
    let (code, out, _) = sh(std::process::Command::new(&kseal)
        .args(["audit", "-H"])
        .arg(r));
    assert_eq!(code, 1);
    assert!(out.contains("private-key\t/srv/data/backup.bin"), "{out}");
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_first_boot_unit_is_valid() {
    let unit =
        kld_tests::vm::workspace_root().join("crates/kld-seal/systemd/kld-ssh-hostkeys.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert_eq!(text, kld_seal::SSH_HOSTKEYS_UNIT);
    assert!(text.contains("ExecStart=/usr/bin/ssh-keygen -A"));
    assert!(text.contains("Before=ssh.service"));
    kld_tests::units::verify(&[&unit]);
}

#[test]
fn kseal_refuses_bad_input_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = sh(std::process::Command::new(bin("kseal")).arg(dir.path()));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("kseal: error:") && err.contains("not a system root"),
        "{err}"
    );
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/machine-id"),
        "4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f\n",
    )
    .unwrap();
    let (code, _, err) = sh(std::process::Command::new(bin("kseal"))
        .args(["--only", "machine-id,nope"])
        .arg(dir.path()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown seal operation `nope`"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/machine-id")).unwrap(),
        "4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f\n"
    );
    // --only runs just what it names.
    let (code, _, err) = sh(std::process::Command::new(bin("kseal"))
        .args(["--only", "histories"])
        .arg(dir.path()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/machine-id")).unwrap(),
        "4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f\n"
    );
}

/// A raw disk of a size that is not a whole number of MiB, with data in it.
fn source_disk(dir: &Path) -> PathBuf {
    let src = dir.join("source.raw");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len((48 << 20) + 4096).unwrap();
    use std::os::unix::fs::FileExt;
    for (i, off) in [0u64, 1 << 20, 17 << 20, (48 << 20) - 512]
        .iter()
        .enumerate()
    {
        f.write_all_at(format!("block {i} of the golden disk").as_bytes(), *off)
            .unwrap();
    }
    src
}

fn qemu_format(ext: &str) -> &str {
    match ext {
        "vhd" => "vpc",
        "ova" => "vmdk",
        x => x,
    }
}

#[test]
fn every_export_format_verifies_against_its_source() {
    let dir = tempfile::tempdir_in(kld_tests::vm::target_dir()).unwrap();
    let src = source_disk(dir.path());
    let out = dir.path().join("out");
    let (code, stdout, err) = sh(std::process::Command::new(bin("kexport"))
        .args([
            "--no-seal",
            "--name",
            "golden",
            "--cpus",
            "3",
            "--memory",
            "3072",
            "--json",
        ])
        .arg(&src)
        .arg("all")
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["kind"], "ExportList");
    assert_eq!(list["items"].as_array().unwrap().len(), 5);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let want: Vec<String> = ["ova", "qcow2", "raw", "vhd", "vmdk"]
        .iter()
        .flat_map(|f| [format!("golden.{f}"), format!("golden.{f}.sha256")])
        .collect();
    assert_eq!(names, want, "only finished outputs, no temporary names");
    Cmd::new("sha256sum")
        .arg("-c")
        .args(names.iter().filter(|n| n.ends_with(".sha256")))
        .current_dir(&out)
        .run()
        .unwrap();

    for f in ["qcow2", "vmdk", "vhd", "raw"] {
        let p = out.join(format!("golden.{f}"));
        if matches!(f, "qcow2" | "vmdk") {
            Cmd::new("qemu-img")
                .args(["check", "-f", qemu_format(f)])
                .arg(&p)
                .run()
                .unwrap();
        }
        Cmd::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", qemu_format(f)])
            .arg(&src)
            .arg(&p)
            .run()
            .unwrap();
    }
    let info = Cmd::new("qemu-img")
        .args(["info", "--output=json", "-f", "vpc"])
        .arg(out.join("golden.vhd"))
        .run()
        .unwrap()
        .stdout_str();
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["virtual-size"].as_u64().unwrap(),
        49 << 20,
        "VHD rounded up to whole MiB"
    );
    assert!(info["format-specific"].to_string().contains("vpc") || info["format"] == "vpc");
    let vmdk_info = Cmd::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(out.join("golden.vmdk"))
        .run()
        .unwrap()
        .stdout_str();
    assert!(vmdk_info.contains("streamOptimized"), "{vmdk_info}");

    // The OVA: .ovf first, then the .vmdk, then the manifest; the manifest's
    // sums are the members'; the descriptor says what was given.
    let ova = out.join("golden.ova");
    let members = Cmd::new("tar")
        .arg("-tf")
        .arg(&ova)
        .run()
        .unwrap()
        .stdout_str();
    assert_eq!(
        members.lines().collect::<Vec<_>>(),
        ["golden.ovf", "golden.vmdk", "golden.mf"]
    );
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    Cmd::new("tar")
        .arg("-xf")
        .arg(&ova)
        .arg("-C")
        .arg(&x)
        .run()
        .unwrap();
    let mf = std::fs::read_to_string(x.join("golden.mf")).unwrap();
    for m in ["golden.ovf", "golden.vmdk"] {
        let sum = Cmd::new("sha256sum")
            .arg(x.join(m))
            .run()
            .unwrap()
            .stdout_str();
        let line = format!("SHA256({m})= {}", sum.split(' ').next().unwrap());
        assert!(mf.lines().any(|l| l == line), "{line} not in\n{mf}");
    }
    let ovf = std::fs::read_to_string(x.join("golden.ovf")).unwrap();
    assert!(
        ovf.contains("<rasd:VirtualQuantity>3</rasd:VirtualQuantity>"),
        "{ovf}"
    );
    assert!(
        ovf.contains("<rasd:VirtualQuantity>3072</rasd:VirtualQuantity>"),
        "{ovf}"
    );
    Cmd::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vmdk"])
        .arg(&src)
        .arg(x.join("golden.vmdk"))
        .run()
        .unwrap();

    // Never overwritten: an existing output is an error, and nothing changes.
    let before = kld_seal::hash::sha256_file(&out.join("golden.qcow2")).unwrap();
    let (code, _, err) = sh(std::process::Command::new(bin("kexport"))
        .args(["--no-seal", "--name", "golden"])
        .arg(&src)
        .arg("qcow2")
        .arg(&out));
    assert_eq!(code, 1);
    assert!(
        err.contains("already exists") && err.contains("kexport: hint:"),
        "{err}"
    );
    assert_eq!(
        kld_seal::hash::sha256_file(&out.join("golden.qcow2")).unwrap(),
        before
    );
    // With qcow2 (the first of `all`) gone and the others there, `all`
    // writes nothing: every output is checked before the first is made.
    for f in ["golden.qcow2", "golden.qcow2.sha256"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let listing = |d: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files = listing(&out);
    let (code, _, err) = sh(std::process::Command::new(bin("kexport"))
        .args(["--no-seal", "--name", "golden"])
        .arg(&src)
        .arg("all")
        .arg(&out));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(listing(&out), files);
}

#[test]
fn kexport_refuses_a_source_in_use_and_bad_names() {
    let dir = tempfile::tempdir_in(kld_tests::vm::target_dir()).unwrap();
    let src = source_disk(dir.path());
    let out = dir.path().join("out");
    let (code, _, err) = sh(std::process::Command::new(bin("kexport"))
        .args(["--no-seal", "--name", "../x"])
        .arg(&src)
        .arg("raw")
        .arg(&out));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid export name"), "{err}");
    let (code, _, err) = sh(std::process::Command::new(bin("kexport"))
        .args(["--no-seal"])
        .arg(&src)
        .arg("vpc")
        .arg(&out));
    assert_eq!(code, 2, "{err}");

    let lo = Cmd::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(&src)
        .run()
        .unwrap()
        .stdout_str();
    let lo = lo.trim().to_owned();
    let result = sh(std::process::Command::new(bin("kexport"))
        .args(["--no-seal", "--name", "a"])
        .arg(&src)
        .arg("raw")
        .arg(&out));
    let as_dev = sh(std::process::Command::new(bin("kexport"))
        .args(["--no-seal", "--name", "b"])
        .arg(&lo)
        .arg("raw")
        .arg(&out));
    let _ = Cmd::new("losetup").args(["-d", &lo]).run();
    assert_eq!(result.0, 1, "{}", result.2);
    assert!(
        result.2.contains("in use") && result.2.contains(&lo),
        "{}",
        result.2
    );
    // The loop device itself is not in use (nothing holds or mounts it).
    assert_eq!(as_dev.0, 0, "{}", as_dev.2);
    assert!(!out.join("a.raw").exists());
    // With --no-seal kexport still refuses a zfs-less sealing: without it,
    // a disk without a ZFS pool cannot be sealed.
    let (code, _, err) = sh(std::process::Command::new(bin("kexport"))
        .args(["--name", "c"])
        .arg(&src)
        .arg("raw")
        .arg(&out));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no importable ZFS pool") || err.contains("zpool"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "only b.raw and its checksum: {left:?}");
}

/// Whether an SSH server answers at `addr` from `ns`: its banner starts
/// with `SSH-`.
fn sshd_answers(ns: &Netns, addr: std::net::SocketAddr) -> bool {
    use std::io::Read;
    use std::time::Duration;
    ns.run(|| -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut banner = [0u8; 4];
        s.read_exact(&mut banner)?;
        Ok(&banner == b"SSH-")
    })
    .unwrap_or(false)
}

/// An sshd in its own namespace, reached from a client namespace.
struct SshLab {
    server: Netns,
    client: Netns,
    dir: tempfile::TempDir,
    sshd: std::process::Child,
}

impl Drop for SshLab {
    fn drop(&mut self) {
        let _ = Cmd::new("kill").arg(self.sshd.id().to_string()).run();
        let _ = self.sshd.wait();
    }
}

impl SshLab {
    fn new() -> SshLab {
        let server = Netns::new("sshd").unwrap();
        let client = Netns::new("scp").unwrap();
        veth(&server, "eth0", &client, "eth0").unwrap();
        server.addr("eth0", "10.98.0.1/24").unwrap();
        client.addr("eth0", "10.98.0.2/24").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"), false);
        keygen(&d.join("client_key"), false);
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir(d.join("uploads")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = format!(
            "ListenAddress 10.98.0.1:22\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile none\nSubsystem sftp internal-sftp\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let sshd = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                server.name(),
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(d.join("sshd_config"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let lab = SshLab {
            server,
            client,
            dir,
            sshd,
        };
        // Ready when sshd sends its banner (sshd then waits for ours, so a
        // read to the end would only time out).
        let ready = (0..100).any(|_| {
            let up = sshd_answers(&lab.client, "10.98.0.1:22".parse().unwrap());
            if !up {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            up
        });
        assert!(ready, "sshd in the namespace never answered");
        lab
    }

    fn known_hosts(&self, key_pub: &Path) -> PathBuf {
        let key = std::fs::read_to_string(key_pub).unwrap();
        let mut f = key.split_whitespace();
        let line = format!("10.98.0.1 {} {}\n", f.next().unwrap(), f.next().unwrap());
        let p = self.dir.path().join(format!(
            "known_hosts-{}",
            key_pub.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&p, line).unwrap();
        p
    }

    fn kexport(
        &self,
        known_hosts: &Path,
        src: &Path,
        out: &Path,
        name: &str,
    ) -> (i32, String, String) {
        let uploads = self.dir.path().join("uploads");
        sh(std::process::Command::new("ip")
            .args(["netns", "exec", self.client.name()])
            .arg(bin("kexport"))
            .args(["--no-seal", "--name", name, "--upload"])
            .arg(format!("root@10.98.0.1:{}", uploads.display()))
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("--identity")
            .arg(self.dir.path().join("client_key"))
            .arg(src)
            .arg("qcow2")
            .arg(out))
    }
}

#[test]
fn upload_needs_the_known_host_key_and_is_verified() {
    let lab = SshLab::new();
    let _ = &lab.server;
    let work = tempfile::tempdir_in(kld_tests::vm::target_dir()).unwrap();
    let src = source_disk(work.path());
    let out = work.path().join("out");
    let uploads = lab.dir.path().join("uploads");

    // A different key for the host: refused, nothing uploaded.
    keygen(&lab.dir.path().join("impostor"), false);
    let wrong = lab.known_hosts(&lab.dir.path().join("impostor.pub"));
    let (code, _, err) = lab.kexport(&wrong, &src, &out, "first");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("kexport: error:") && err.contains("kexport: hint:"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&uploads).unwrap().count(),
        0,
        "nothing uploaded"
    );
    // No entry at all: an error too, never a prompt.
    let empty = lab.dir.path().join("known_hosts-empty");
    std::fs::write(&empty, "").unwrap();
    let (code, _, err) = lab.kexport(&empty, &src, &out, "second");
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        std::fs::read_dir(&uploads).unwrap().count(),
        0,
        "nothing uploaded"
    );

    // The real key: uploaded, verified, under the final names only.
    let right = lab.known_hosts(&lab.dir.path().join("host_key.pub"));
    let (code, stdout, err) = lab.kexport(&right, &src, &out, "third");
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains(&format!("{}/third.qcow2", uploads.display())),
        "{stdout}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["third.qcow2", "third.qcow2.sha256"]);
    Cmd::new("sha256sum")
        .args(["-c", "third.qcow2.sha256"])
        .current_dir(&uploads)
        .run()
        .unwrap();
    assert_eq!(
        kld_seal::hash::sha256_file(&uploads.join("third.qcow2")).unwrap(),
        kld_seal::hash::sha256_file(&out.join("third.qcow2")).unwrap()
    );
}

// ---------------------------------------------------------------------
// Under kills and against the running system.

/// A small system tree with something for every default operation, cheap
/// enough to make once per kill point.
fn small_root(r: &Path) {
    write(
        r,
        "/etc/machine-id",
        "4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f\n",
        0o444,
    );
    write(
        r,
        "/var/lib/dbus/machine-id",
        "4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f\n",
        0o444,
    );
    write(r, "/var/lib/systemd/random-seed", "seedseedseed", 0o600);
    write(
        r,
        "/etc/ssh/ssh_host_ed25519_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        0o600,
    );
    write(
        r,
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "ssh-ed25519 AAAA host\n",
        0o644,
    );
    write(r, "/etc/ssh/sshd_config", "PermitRootLogin no\n", 0o644);
    write(
        r,
        "/var/lib/dhcp/dhclient.eth0.leases",
        "lease { }\n",
        0o644,
    );
    write(r, "/var/log/syslog", "a log line\n", 0o640);
    write(r, "/var/log/journal/4f1c/system.journal", "LPKSHHRH", 0o640);
    write(r, "/root/.bash_history", "zpool status\n", 0o600);
    write(r, "/home/alice/.bash_history", "ls\n", 0o600);
    write(r, "/home/alice/notes.txt", "remember the milk\n", 0o644);
    write(
        r,
        "/etc/wireguard/wg0.key",
        "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n",
        0o600,
    );
    write(
        r,
        "/etc/kldload/install-manifest.env",
        "KLDLOAD_ROOT_PASSWORD=hunter2\n",
        0o600,
    );
    write(r, "/tmp/build.o", "junk", 0o644);
    write(r, "/var/tmp/cache.bin", "junk", 0o644);
    write(
        r,
        "/var/cache/apt/archives/foo_1.0_amd64.deb",
        "!<arch>",
        0o644,
    );
    write(r, "/etc/myapp.conf", "listen = 8080\n", 0o644);
}

/// A small root in `parent/root`, with a sibling `parent/outside` that no
/// seal may touch.
fn small_world(parent: &Path) -> PathBuf {
    let root = parent.join("root");
    small_root(&root);
    write(parent, "/outside/keep.txt", "not part of the tree\n", 0o644);
    write(parent, "/outside/tmp/also-kept", "x", 0o644);
    root
}

#[test]
fn kseal_killed_at_every_step_finishes_when_run_again() {
    let kseal = bin("kseal");
    let reference = tempfile::tempdir().unwrap();
    let root = small_world(reference.path());
    let steps = kld_tests::fault::trace({
        let mut c = std::process::Command::new(&kseal);
        c.arg(&root);
        c
    })
    .unwrap();
    assert!(steps.len() >= 10, "{steps:?}");
    let sealed = snapshot(&root);
    let outside = snapshot(&reference.path().join("outside"));
    let (code, out, err) = sh(std::process::Command::new(&kseal).arg("audit").arg(&root));
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "the reference is not clean: {err}"
    );
    for n in 1..=steps.len() {
        let dir = tempfile::tempdir().unwrap();
        let root = small_world(dir.path());
        let mut c = std::process::Command::new(&kseal);
        c.arg(&root);
        kld_tests::fault::killed_after(c, n).unwrap();
        let (code, out, err) = sh(std::process::Command::new(&kseal).arg(&root));
        assert_eq!(
            code,
            0,
            "step {n} ({}): the re-run failed: {out}{err}",
            steps[n - 1]
        );
        assert_eq!(
            snapshot(&root),
            sealed,
            "step {n} ({}): not the same seal",
            steps[n - 1]
        );
        let (code, out, err) = sh(std::process::Command::new(&kseal).arg("audit").arg(&root));
        assert_eq!((code, out.as_str()), (0, ""), "step {n}: not clean: {err}");
        assert_eq!(
            snapshot(&dir.path().join("outside")),
            outside,
            "step {n}: outside touched"
        );
    }
    eprintln!(
        "kseal (tree): {} kill points, each finished by a re-run",
        steps.len()
    );
}

/// A tiny root that kseal can run in (chrooted): `small_root`, kseal and
/// the libraries it links.
fn chroot_with_kseal(r: &Path) {
    small_root(r);
    let kseal = bin("kseal");
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    std::fs::copy(&kseal, r.join("kseal")).unwrap();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::copy(&sh, r.join("bin/sh")).unwrap();
    for program in [&kseal, &sh] {
        let ldd = Cmd::new("ldd").arg(program).run().unwrap().stdout_str();
        for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
            let to = r.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(lib, &to).unwrap();
        }
    }
}

#[test]
fn kseal_refuses_the_running_system_however_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    chroot_with_kseal(r);
    std::os::unix::fs::symlink("/", r.join("link-to-root")).unwrap();
    std::fs::create_dir_all(r.join("mnt/bind")).unwrap();
    let before = snapshot(r);
    let cases: &[(&str, &str)] = &[
        ("kseal /", "/kseal /"),
        ("kseal ../ from /tmp", "cd /tmp && /kseal ../"),
        ("kseal of a symlink to /", "/kseal /link-to-root"),
        ("kseal //./", "/kseal //./"),
    ];
    for (what, script) in cases {
        let (code, out, err) = sh(std::process::Command::new("chroot")
            .arg(r)
            .args(["/bin/sh", "-c", script]));
        assert_eq!(code, 2, "{what}: {out}{err}");
        assert!(
            err.contains("kseal: error:") && err.contains("running system"),
            "{what}: {err}"
        );
        assert!(err.contains("kseal: hint:"), "{what}: {err}");
        assert_eq!(snapshot(r), before, "{what} changed the tree");
    }
    // A bind mount of / (in a mount namespace of its own).
    let (code, out, err) = sh(std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c"])
        .arg(format!(
            "mount --bind {r} {r}/mnt/bind && chroot {r} /kseal /mnt/bind",
            r = r.display()
        )));
    assert_eq!(code, 2, "bind mount: {out}{err}");
    assert!(err.contains("running system"), "bind mount: {err}");
    assert_eq!(snapshot(r), before, "the bind mount case changed the tree");
    // A dry run of the running system changes nothing and is allowed.
    let (code, out, err) =
        sh(std::process::Command::new("chroot")
            .arg(r)
            .args(["/kseal", "--dry-run", "/"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("machine-id\twrite\t/etc/machine-id"), "{out}");
    assert_eq!(snapshot(r), before);
}

#[test]
fn kseal_dry_run_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_world(dir.path());
    // More lines than a pipe holds, so that the writes outlast the reader.
    for i in 0..5000 {
        write(&root, &format!("/tmp/junk-{i}"), "x", 0o644);
    }
    let mut child = std::process::Command::new(bin("kseal"))
        .arg("--dry-run")
        .arg(&root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe.
    {
        use std::io::BufRead;
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        assert!(!line.is_empty());
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err, "", "nothing is said on a closed pipe");
    assert_eq!(
        out.status.code(),
        Some(141),
        "the conventional status of a closed pipe"
    );
}
