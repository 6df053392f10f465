//! The darksite host tier, over real Debian packages: version comparison
//! against `dpkg --compare-versions` over the archive's own versions, the
//! closure against apt's, a darksite built by `kdarksite` from a mirror
//! served on 127.0.0.1, then an install from it with no network at all, and
//! a corrupt package that must not reach the published tree.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use kld_darksite::build::resolve_set;
use kld_darksite::fetch::Fetcher;
use kld_darksite::index::PackagesIndex;
use kld_darksite::set::PackageSet;
use kld_darksite::version::Version;
use kld_exec::Cmd;
use kld_tests::darksite::{self, ScratchApt, TEST_SET};

/// The prepared mirror (fetched by `cargo xtask test` before the tests
/// run; fetched here if it is missing).
static MIRROR: LazyLock<PathBuf> = LazyLock::new(|| {
    darksite::prepare(&[TEST_SET], &mut |m| eprintln!("{m}")).expect("the darksite test mirror")
});

fn index() -> PackagesIndex {
    let text =
        std::fs::read_to_string(MIRROR.join("dists/bookworm/main/binary-amd64/Packages")).unwrap();
    PackagesIndex::parse(text).unwrap()
}

fn dpkg_order(a: &str, b: &str) -> Ordering {
    let holds = |op: &str| {
        Cmd::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .run()
            .is_ok()
    };
    if holds("lt") {
        Ordering::Less
    } else if holds("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

#[test]
fn versions_order_like_dpkg_over_the_archive() {
    let idx = index();
    assert!(
        idx.packages.len() > 60_000,
        "{} packages",
        idx.packages.len()
    );
    let mut texts: Vec<String> = idx.packages.iter().map(|p| p.version.to_string()).collect();
    texts.sort();
    texts.dedup();
    let mut versions: Vec<Version> = texts.iter().map(|t| Version::parse(t).unwrap()).collect();
    versions.sort();
    // Neighbours in our order (the closest calls), and pseudo-random pairs.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let step = (versions.len() / 3000).max(1);
    for i in (0..versions.len() - 1).step_by(step) {
        pairs.push((versions[i].to_string(), versions[i + 1].to_string()));
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while pairs.len() < 6000 {
        let a = &texts[next() as usize % texts.len()];
        let b = &texts[next() as usize % texts.len()];
        pairs.push((a.clone(), b.clone()));
    }
    // The same version written differently, and each reversed.
    for v in ["1.0", "1:2.3-4", "0.9~rc1"] {
        pairs.push((v.into(), format!("0:{v}")));
    }
    pairs.push(("1.0".into(), "1.0-0".into()));
    let chunks: Vec<&[(String, String)]> = pairs.chunks(pairs.len().div_ceil(4)).collect();
    let mismatches: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(a, b)| {
                            let ours = Version::parse(a).unwrap().cmp(&Version::parse(b).unwrap());
                            let theirs = dpkg_order(a, b);
                            (ours != theirs)
                                .then(|| format!("{a} vs {b}: ours {ours:?}, dpkg {theirs:?}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    eprintln!(
        "compared {} version pairs with dpkg --compare-versions ({} distinct versions in the archive)",
        pairs.len(),
        texts.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} differ from dpkg:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn closures_match_apt() {
    let apt = ScratchApt::new(&format!("file://{}", MIRROR.display()));
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", MIRROR.display());
    let cases = [
        ("minbase", "base = \"minbase\"\npackages = []"),
        ("server", "base = \"minbase\"\npackages = [\"openssh-server\", \"ca-certificates\", \"less\"]"),
        ("ssh-alone", "base = \"none\"\npackages = [\"openssh-server\"]"),
        ("tools-alone", "base = \"none\"\npackages = [\"ca-certificates\", \"less\", \"apt\"]"),
        // The benchmark's set (only the index is needed to compare).
        ("web-db", "base = \"minbase\"\npackages = [\"openssh-server\", \"nginx\", \"postgresql\"]"),
        ("desktop-ish", "base = \"important\"\npackages = [\"systemd-sysv\", \"python3\", \"mailutils\", \"vim\"]"),
    ];
    let mut report = Vec::new();
    for (name, body) in cases {
        let path = darksite::write_set(
            tmp.path(),
            name,
            &format!("distribution = \"bookworm\"\n{body}\n"),
        );
        let set = PackageSet::load(&path).unwrap();
        let r = resolve_set(
            set,
            &url,
            &Fetcher::new(),
            &darksite::cache_dir().join("indices"),
        )
        .unwrap();
        assert!(
            r.resolution.is_complete(),
            "{name}: {:?}",
            r.resolution.unsatisfied
        );
        let ours: BTreeSet<String> = r
            .resolution
            .packages
            .iter()
            .map(|(id, _)| {
                format!(
                    "{}={}",
                    r.universe.pkg(*id).name,
                    r.universe.pkg(*id).version
                )
            })
            .collect();
        // apt is asked for the same roots in the same order.
        let mut roots: Vec<String> = kld_darksite::resolve::base_packages(&r.universe, r.set.base)
            .into_iter()
            .map(|(id, _)| r.universe.pkg(id).name.clone())
            .collect();
        roots.extend(r.set.package_texts.iter().cloned());
        let theirs = apt.simulate(&roots);
        let only_ours: Vec<&String> = ours.difference(&theirs).collect();
        let only_apt: Vec<&String> = theirs.difference(&ours).collect();
        report.push(format!(
            "{name}: {} packages; only ours: {only_ours:?}; only apt's: {only_apt:?}",
            ours.len()
        ));
        assert!(
            only_ours.is_empty() && only_apt.is_empty(),
            "{}",
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}

fn kdarksite() -> PathBuf {
    kld_tests::vm::build_binaries()
        .unwrap()
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "kdarksite"))
        .expect("kld-cli builds kdarksite")
}

/// A scratch directory that `_apt` (apt's unprivileged downloader) can
/// read, as apt needs for keys and file:// repositories.
fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

const INSTALL: &str = r##"set -e
ip link set lo up
"$KDARKSITE" serve "$DS" --listen 127.0.0.1:8080 &
pid=$!
trap 'kill $pid' EXIT
i=0; while ! (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mmdebstrap --variant=minbase --mode=root \
  --setup-hook='mkdir -p "$1$(dirname "$KEY")" && cp "$KEY" "$1$KEY"' \
  --customize-hook='printf "#!/bin/sh\nexit 101\n" > "$1/usr/sbin/policy-rc.d" && chmod 755 "$1/usr/sbin/policy-rc.d"' \
  --customize-hook='chroot "$1" apt-get install -y -q --no-install-recommends openssh-server' \
  --customize-hook='chroot "$1" dpkg-query -W -f "INSTALLED \${Package} \${Version} \${db:Status-Abbrev}\n" openssh-server' \
  bookworm "$ROOT" "deb [signed-by=$KEY] http://127.0.0.1:8080/ bookworm main"
"##;

fn install(
    script_dir: &Path,
    kdarksite: &Path,
    ds: &Path,
    key: &Path,
    root: &Path,
) -> Result<String, kld_exec::Error> {
    let script = script_dir.join("install.sh");
    std::fs::write(&script, INSTALL).unwrap();
    // bash for /dev/tcp; no network at all: a network namespace of its own
    // with only a loopback device.
    Cmd::new("unshare")
        .args(["-n", "bash"])
        .arg(&script)
        .env("KDARKSITE", kdarksite)
        .env("DS", ds)
        .env("KEY", key)
        .env("ROOT", root)
        .run()
        .map(|o| o.stdout_str() + &String::from_utf8_lossy(&o.stderr))
}

/// The proof: kdarksite builds a darksite of real packages from a mirror
/// on 127.0.0.1, then with no network mmdebstrap installs a root from it
/// with signatures checked, and apt-get installs a set package inside.
/// A key that did not sign it is refused.
#[test]
fn offline_install_from_a_signed_darksite() {
    let kdarksite = kdarksite();
    let tmp = open_tempdir();
    let url = darksite::serve(&MIRROR).unwrap();
    let set = darksite::write_set(tmp.path(), "set", TEST_SET);
    let ds = tmp.path().join("ds");
    let out = Cmd::new(&kdarksite)
        .arg("build")
        .arg(&set)
        .args(["--mirror", &url, "--out"])
        .arg(&ds)
        .run()
        .unwrap();
    assert!(
        out.stdout_str().contains("published 122 packages"),
        "{}",
        out.stdout_str()
    );
    let out = Cmd::new(&kdarksite).arg("verify").arg(&ds).run().unwrap();
    assert!(
        out.stdout_str().contains("verified: 122 packages"),
        "{}",
        out.stdout_str()
    );

    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("kld-darksite.gpg");
    std::fs::copy(ds.join("current/kld-darksite.gpg"), &key).unwrap();
    let root = tmp.path().join("root");
    let log = install(tmp.path(), &kdarksite, &ds, &key, &root)
        .unwrap_or_else(|e| panic!("offline install failed: {e}"));
    assert!(
        log.contains("INSTALLED openssh-server 1:9.2p1-2+deb12u"),
        "{log}"
    );
    assert!(root.join("usr/sbin/sshd").is_file());
    assert!(root.join("usr/bin/apt-get").is_file());

    // Signature checking is on: another key is refused.
    let other_dir = tmp.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other_secret = other_dir.join("secret.asc");
    kld_darksite::sign::generate_key(&other_secret, "not the darksite").unwrap();
    let other = kld_darksite::sign::Signer::open(&other_secret).unwrap();
    let other_key = keys.join("other.gpg");
    std::fs::write(&other_key, other.public_key(false).unwrap()).unwrap();
    let e = install(
        tmp.path(),
        &kdarksite,
        &ds,
        &other_key,
        &tmp.path().join("root2"),
    )
    .expect_err("a root from a darksite signed by another key");
    let text = e.to_string();
    assert!(
        text.contains("NO_PUBKEY") || text.contains("not signed"),
        "{text}"
    );
}

/// A corrupted `.deb` on the mirror fails the build, by name, and the
/// publication in service stays as it was.
#[test]
fn corrupt_package_on_the_mirror_never_reaches_the_darksite() {
    let kdarksite = kdarksite();
    let tmp = open_tempdir();
    let set = darksite::write_set(tmp.path(), "set", TEST_SET);
    let ds = tmp.path().join("ds");
    let good = darksite::serve(&MIRROR).unwrap();
    Cmd::new(&kdarksite)
        .arg("build")
        .arg(&set)
        .args(["--mirror", &good, "--out"])
        .arg(&ds)
        .run()
        .unwrap();
    // A copy of the mirror (hard links) with one package corrupted, and a
    // package the darksite's store does not have yet so it is fetched.
    let bad_mirror = tmp.path().join("bad-mirror");
    Cmd::new("cp")
        .args(["-al"])
        .arg(&*MIRROR)
        .arg(&bad_mirror)
        .run()
        .unwrap();
    let less = Cmd::new("find")
        .arg(bad_mirror.join("pool"))
        .args(["-name", "less_*.deb"])
        .run()
        .unwrap()
        .stdout_str()
        .trim()
        .to_owned();
    let mut bytes = std::fs::read(&less).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::remove_file(&less).unwrap();
    std::fs::write(&less, &bytes).unwrap();
    let store = ds.join(".kdarksite/store");
    for e in std::fs::read_dir(&store).unwrap().flatten() {
        if std::fs::read(e.path()).unwrap() != bytes
            && e.metadata().unwrap().len() == bytes.len() as u64
        {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let before = std::fs::read_link(ds.join("current")).unwrap();
    let bad = darksite::serve(&bad_mirror).unwrap();
    let e = Cmd::new(&kdarksite)
        .args(["update", "--mirror", &bad])
        .arg(&ds)
        .run()
        .expect_err("a build with a corrupt package");
    let msg = e.stderr();
    assert!(
        msg.contains("could not be downloaded") && msg.contains("less "),
        "{msg}"
    );
    assert!(msg.contains("nothing was published"), "{msg}");
    assert_eq!(std::fs::read_link(ds.join("current")).unwrap(), before);
    Cmd::new(&kdarksite).arg("verify").arg(&ds).run().unwrap();
    // Nothing corrupt entered the store either.
    for e in std::fs::read_dir(&store).unwrap().flatten() {
        assert_ne!(
            std::fs::read(e.path()).unwrap(),
            bytes,
            "{}",
            e.path().display()
        );
    }
}
