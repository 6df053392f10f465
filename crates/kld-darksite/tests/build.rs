//! A darksite built end to end from a small signed mirror on disk (real
//! gpg, real files; the packages are stand-ins, apt never sees them): build,
//! verify, reproducibility, a corrupt package, tampering, update and
//! rollback.

use std::fs;
use std::path::Path;

use kld_darksite::build::{self, Options};
use kld_darksite::fetch::Fetcher;
use kld_darksite::publish::gzip;
use kld_darksite::sign::{generate_key, Signer};
use kld_darksite::{verify, Darksite, Error};

mod common;
use common::{Mirror, UPDATED};

fn build(ds: &Darksite, set: &Path, mirror: &Mirror) -> Result<build::Report, Error> {
    let opts = Options {
        jobs: 3,
        ..Options::new(mirror.url())
    };
    build::build(ds, set, &opts, &Fetcher::new().attempts(1), &|_| {})
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(d: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().display().to_string(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn build_verify_reproduce_corrupt_update_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let ds = Darksite::new(tmp.path().join("ds"));

    let r = build(&ds, &set, &mirror).unwrap();
    assert_eq!(r.release, 1);
    assert!(r.new_key);
    // base-files (Essential), apt (minbase), gpgv (apt's first
    // alternative), libc6, openssh-server, init-system-helpers.
    assert_eq!(r.packages, 6);
    assert_eq!((r.download.fetched, r.download.reused), (6, 0));
    let key_mode = fs::metadata(ds.default_key()).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );
    let report = verify::verify(ds.root(), None).unwrap();
    assert_eq!(report.packages, 6);
    assert_eq!(report.signed_by, r.fingerprint);
    let manifest = fs::read_to_string(ds.root().join("current/manifest.json")).unwrap();
    assert!(manifest.contains("\"openssh-server\""));
    assert!(!manifest.contains("unrelated"));

    // Reproducible: another darksite from the same inputs is the same
    // bytes, signatures and keys aside.
    let ds2 = Darksite::new(tmp.path().join("ds2"));
    build(&ds2, &set, &mirror).unwrap();
    let strip = |t: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        t.into_iter()
            .filter(|(p, _)| {
                !p.ends_with("InRelease")
                    && !p.ends_with("Release.gpg")
                    && !p.starts_with("kld-darksite.")
            })
            .collect()
    };
    let (a, b) = (
        strip(tree(&ds.root().join("current/"))),
        strip(tree(&ds2.root().join("current/"))),
    );
    assert_eq!(a.len(), b.len());
    assert!(a == b, "publications differ");

    // An update with nothing changed downloads nothing and keeps the
    // previous publication.
    let r = build(&ds, &set, &mirror).unwrap();
    assert_eq!(
        (r.release, r.download.fetched, r.download.reused),
        (2, 0, 6)
    );
    assert!(!r.new_key);
    assert_eq!(ds.releases(), [1, 2]);

    // A corrupt package on the mirror fails the build by name; the
    // publication in service is untouched.
    let before = tree(&ds.root().join("current/"));
    mirror.publish(&UPDATED);
    let libc = mirror
        .dir
        .join("pool/main/l/libc6/libc6_2.36-9+deb12u1_amd64.deb");
    fs::write(&libc, b"corrupted on the mirror").unwrap();
    let e = build(&ds, &set, &mirror).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("libc6 2.36-9+deb12u1") && msg.contains("expected"),
        "{msg}"
    );
    assert_eq!(tree(&ds.root().join("current/")), before);
    assert_eq!(ds.current(), Some(2));
    assert!(
        !fs::read_dir(ds.store().unwrap().path("x").parent().unwrap())
            .unwrap()
            .flatten()
            .any(|e| fs::read(e.path()).unwrap() == b"corrupted on the mirror")
    );

    // Fixed upstream: the update fetches only what changed.
    mirror.publish(&UPDATED);
    let r = build(&ds, &set, &mirror).unwrap();
    assert_eq!(
        (r.release, r.download.fetched, r.download.reused),
        (3, 1, 5)
    );
    assert_eq!(ds.releases(), [2, 3]);

    // Rollback puts 2 back; there is nothing before 2.
    let rb = ds.rollback(|_| {}).unwrap();
    assert_eq!((rb.from, rb.to), (3, 2));
    assert!(
        fs::read_to_string(ds.root().join("current/dists/t/main/binary-amd64/Packages"))
            .unwrap()
            .contains("Version: 2.36-9\n")
    );
    assert!(ds
        .rollback(|_| {})
        .unwrap_err()
        .to_string()
        .contains("nothing to roll back to"));

    // Tampering is caught by verify: a package, an index, the signature.
    let cur = ds.root().join("current");
    let pkg = cur.join("pool/main/g/gpgv/gpgv_2.2.40-1_amd64.deb");
    let orig = fs::read(&pkg).unwrap();
    fs::remove_file(&pkg).unwrap(); // a hard link into the store: replace, don't write through
    fs::write(&pkg, b"swapped").unwrap();
    let e = verify::verify(ds.root(), None).unwrap_err().to_string();
    assert!(e.contains("gpgv_2.2.40-1_amd64.deb: 7 bytes"), "{e}");
    fs::remove_file(&pkg).unwrap();
    fs::write(&pkg, &orig).unwrap();
    fs::write(cur.join("pool/main/x.deb"), b"stray").unwrap();
    let e = verify::verify(ds.root(), None).unwrap_err().to_string();
    assert!(
        e.contains("pool/main/x.deb: in the pool but in no index"),
        "{e}"
    );
    fs::remove_file(cur.join("pool/main/x.deb")).unwrap();
    let rel = cur.join("dists/t/Release");
    let text = fs::read_to_string(&rel).unwrap();
    fs::write(&rel, text.replace("Label: test", "Label: evil")).unwrap();
    let e = verify::verify(ds.root(), None).unwrap_err().to_string();
    assert!(e.contains("bad signature"), "{e}");
    fs::write(&rel, text).unwrap();
    verify::verify(ds.root(), None).unwrap();
    // Another key does not verify it.
    let e = verify::verify(ds.root(), Some(&mirror.keyring))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad signature"), "{e}");
}

#[test]
fn unsatisfiable_and_bad_upstream_fail_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let ds = Darksite::new(tmp.path().join("ds"));
    let set = mirror.set(tmp.path(), "\"openssh-server\", \"nosuch\"");
    let e = build(&ds, &set, &mirror).unwrap_err().to_string();
    assert!(
        e.contains("the package set needs nosuch: nosuch: no package of that name"),
        "{e}"
    );
    assert!(!ds.root().join("current").exists());

    // A Release signed by another key than the keyring's is refused.
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let other = tmp.path().join("other.asc");
    generate_key(&other, "someone else").unwrap();
    let other = Signer::open(&other).unwrap();
    let inrelease = mirror.dir.join("dists/t/InRelease");
    let good = fs::read(&inrelease).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let body: String = text
        .split("\n\n")
        .nth(1)
        .unwrap()
        .split("-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap()
        .to_owned();
    fs::write(&inrelease, other.clearsign(body.as_bytes()).unwrap()).unwrap();
    let e = build(&ds, &set, &mirror).unwrap_err().to_string();
    assert!(
        e.contains("bad signature") && e.contains("InRelease"),
        "{e}"
    );
    // A Packages index that is not what the signed Release lists.
    fs::write(&inrelease, &good).unwrap();
    let gz = mirror.dir.join("dists/t/main/binary-amd64/Packages.gz");
    fs::write(&gz, gzip(b"Package: evil\n")).unwrap();
    // (A darksite that cached the good index by its hash would not even
    // read it again: use a new one.)
    let fresh = Darksite::new(tmp.path().join("fresh"));
    let e = build(&fresh, &set, &mirror).unwrap_err().to_string();
    assert!(e.contains("Packages.gz: expected"), "{e}");
    assert!(!ds.root().join("current").exists());
    assert!(!fresh.root().join("current").exists());
}

/// A local `.deb` (made here with `dpkg-deb --build`) joins the darksite:
/// it provides a virtual package nothing upstream provides (like the
/// `zfs-modules` package DESIGN.md describes), its own dependencies are
/// followed, and it is published with the archive's layout.
#[test]
fn local_deb_provides_what_upstream_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let pkg = tmp.path().join("pkg");
    fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    fs::create_dir_all(pkg.join("lib/modules")).unwrap();
    fs::write(pkg.join("lib/modules/zfs.ko"), b"a module").unwrap();
    fs::write(
        pkg.join("DEBIAN/control"),
        "Package: kld-zfs-modules\nVersion: 2.1.11-1\nArchitecture: amd64\nMaintainer: kld <kld@localhost>\n\
         Provides: zfs-modules (= 2.1.11)\nDepends: libc6\nSection: kernel\nDescription: prebuilt zfs modules\n",
    )
    .unwrap();
    let deb = tmp.path().join("kld-zfs-modules.deb");
    kld_exec::Cmd::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .run()
        .unwrap();
    let set = tmp.path().join("set.toml");
    fs::write(
        &set,
        format!(
            "distribution = \"t\"\nbase = \"none\"\npackages = [\"zfs-modules (>= 2.1)\"]\nlocal = [\"kld-zfs-modules.deb\"]\nkeyring = \"{}\"\n",
            mirror.keyring.display()
        ),
    )
    .unwrap();
    let ds = Darksite::new(tmp.path().join("ds"));
    let r = build(&ds, &set, &mirror).unwrap();
    assert_eq!(r.packages, 2); // kld-zfs-modules and libc6
    verify::verify(ds.root(), None).unwrap();
    let packages =
        fs::read_to_string(ds.root().join("current/dists/t/main/binary-amd64/Packages")).unwrap();
    assert!(
        packages
            .contains("Filename: pool/main/k/kld-zfs-modules/kld-zfs-modules_2.1.11-1_amd64.deb\n"),
        "{packages}"
    );
    assert!(packages.contains("Priority: optional\n"), "{packages}");
    let published = ds
        .root()
        .join("current/pool/main/k/kld-zfs-modules/kld-zfs-modules_2.1.11-1_amd64.deb");
    assert_eq!(fs::read(published).unwrap(), fs::read(&deb).unwrap());
    // Not a .deb: a clear error, nothing published.
    fs::write(tmp.path().join("bad.deb"), b"junk").unwrap();
    fs::write(
        &set,
        format!(
            "distribution = \"t\"\npackages = []\nlocal = [\"bad.deb\"]\nkeyring = \"{}\"\n",
            mirror.keyring.display()
        ),
    )
    .unwrap();
    let e = build(&ds, &set, &mirror).unwrap_err().to_string();
    assert!(e.contains("bad.deb: not a readable .deb"), "{e}");
    assert_eq!(ds.current(), Some(1));
}

/// Several suites: the highest version wins across them (an updates suite
/// over the release), a NotAutomatic suite (backports) only serves what no
/// other suite has, and a suite's mirror can be another URL.
#[test]
fn several_suites_and_backports() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    mirror.publish_suite(
        "t-updates",
        false,
        &[("libc6", "2.36-9+deb12u4", "Priority: optional\n")],
    );
    mirror.publish_suite(
        "t-backports",
        true,
        &[
            ("gpgv", "2.4.0-1~bpo12+1", "Priority: optional\n"),
            ("only-in-backports", "1.0~bpo12+1", "Priority: optional\n"),
        ],
    );
    // The backports suite from "another mirror" (the same files under a
    // second URL spelling).
    let other = format!("file://{}/", mirror.dir.display());
    let set = tmp.path().join("set.toml");
    fs::write(
        &set,
        format!(
            "distribution = \"t\"\nsuites = [\"t\", \"t-updates\", \"t-backports\"]\n\
             packages = [\"openssh-server\", \"only-in-backports\"]\nkeyring = \"{}\"\n\
             [mirrors]\nt-backports = \"{other}\"\n",
            mirror.keyring.display()
        ),
    )
    .unwrap();
    let ds = Darksite::new(tmp.path().join("ds"));
    build(&ds, &set, &mirror).unwrap();
    let manifest = fs::read_to_string(ds.root().join("current/manifest.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let got: Vec<String> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}={} ({})",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["suite"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        got.contains(&"libc6=2.36-9+deb12u4 (t-updates)".to_owned()),
        "{got:?}"
    );
    assert!(got.contains(&"gpgv=2.2.40-1 (t)".to_owned()), "{got:?}");
    assert!(
        got.contains(&"only-in-backports=1.0~bpo12+1 (t-backports)".to_owned()),
        "{got:?}"
    );
    // Published as one suite, named after the distribution.
    assert!(ds.root().join("current/dists/t/InRelease").is_file());
    assert!(!ds.root().join("current/dists/t-updates").exists());
    verify::verify(ds.root(), None).unwrap();
}
