//! A darksite under concurrency and against hostile peers: several builds
//! of one darksite at once, a mirror that oversends or dribbles, signatures
//! by expired keys, stale and replayed Release files, a local package with
//! a name that is not Debian's, a key left readable, gpg homes a killed
//! run left behind.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kld_darksite::build::{self, Options};
use kld_darksite::fetch::{FetchError, Fetcher};
use kld_darksite::upstream::UpstreamError;
use kld_darksite::{verify, Darksite, Error};
use kld_exec::Cmd;

mod common;
use common::{Mirror, UPDATED};

fn opts(mirror: &str) -> Options {
    Options {
        jobs: 3,
        ..Options::new(mirror)
    }
}

fn build_with(ds: &Darksite, set: &Path, o: &Options) -> Result<build::Report, Error> {
    build::build(ds, set, o, &Fetcher::new().attempts(1), &|_| {})
}

/// Every `.deb` of the current publication has the size and hash its
/// manifest gives (verify checks the same against the indices).
fn no_short_debs(ds: &Darksite) {
    let cur = ds.root().join("current");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(cur.join("manifest.json")).unwrap()).unwrap();
    for p in manifest["packages"].as_array().unwrap() {
        let path = cur.join(p["filename"].as_str().unwrap());
        let bytes = fs::read(&path).unwrap();
        assert_eq!(
            bytes.len() as u64,
            p["size"].as_u64().unwrap(),
            "{} is short",
            path.display()
        );
        assert_eq!(
            kld_darksite::fetch::sha256_hex(&bytes),
            p["sha256"].as_str().unwrap()
        );
    }
}

static WAITED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Defect 1: builds of one darksite at once used to delete each other's
/// staging directories, pick the same number and truncate stored packages.
/// Now they take turns on the darksite's lock; every round leaves a
/// darksite that verifies, with no short file.
#[test]
fn concurrent_builds_of_one_darksite_take_turns() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let ds = Darksite::new(tmp.path().join("ds"));
    let url = mirror.url();
    build_with(&ds, &set, &opts(&url)).unwrap();
    for round in 0..3 {
        if round == 1 {
            mirror.publish(&UPDATED);
        }
        let results: Vec<Result<build::Report, Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| build_with(&ds, &set, &opts(&url))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut numbers = Vec::new();
        for r in results {
            numbers.push(r.unwrap_or_else(|e| panic!("round {round}: {e}")).release);
        }
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 4, "each build its own publication");
        verify::verify(ds.root(), None).unwrap();
        no_short_debs(&ds);
        assert_eq!(ds.releases().len(), 2, "{:?}", ds.releases());
        let staging: Vec<_> = fs::read_dir(ds.root().join("releases"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(staging.is_empty(), "{staging:?}");
    }
    // One waiting for another is told who holds the darksite.
    let held = ds.lock("a test holding the darksite", |_| {}).unwrap();
    let waiter = std::thread::spawn({
        let (ds, set, url) = (ds.clone(), set.clone(), mirror.url());
        move || {
            let o = Options {
                waiting: |h| WAITED.lock().unwrap().push(h.to_owned()),
                ..opts(&url)
            };
            build_with(&ds, &set, &o).map(|r| r.release)
        }
    });
    while WAITED.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let said = WAITED.lock().unwrap()[0].clone();
    assert_eq!(
        said,
        format!("pid {} (a test holding the darksite)", std::process::id())
    );
    drop(held);
    waiter.join().unwrap().unwrap();
    verify::verify(ds.root(), None).unwrap();
}

/// A staging directory left by a dead process is removed by the next
/// build; one of a live process is not touched.
#[test]
fn only_dead_staging_directories_are_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let ds = Darksite::new(tmp.path().join("ds"));
    build_with(&ds, &set, &opts(&mirror.url())).unwrap();
    let releases = ds.root().join("releases");
    let dead = releases.join(".staging-2147483647-0");
    let live = releases.join(format!(".staging-{}-999", std::process::id()));
    fs::create_dir_all(dead.join("pool")).unwrap();
    fs::create_dir_all(&live).unwrap();
    build_with(&ds, &set, &opts(&mirror.url())).unwrap();
    assert!(!dead.exists());
    assert!(live.exists());
}

/// Where the store cannot be hard-linked into the pool (another file
/// system), the pool gets copies: new files, never a write into the
/// store's.
#[test]
fn a_store_on_another_file_system_is_copied_never_written_through() {
    let shm = Path::new("/dev/shm");
    let tmp = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir_in(shm).unwrap();
    let same_fs = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(tmp.path()).unwrap().dev() == fs::metadata(other.path()).unwrap().dev()
    };
    assert!(!same_fs, "/dev/shm is expected to be another file system");
    let mirror = Mirror::new(tmp.path());
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let ds = Darksite::new(tmp.path().join("ds"));
    fs::create_dir_all(ds.state_dir()).unwrap();
    std::os::unix::fs::symlink(other.path(), ds.state_dir().join("store")).unwrap();
    for _ in 0..3 {
        build_with(&ds, &set, &opts(&mirror.url())).unwrap();
    }
    verify::verify(ds.root(), None).unwrap();
    no_short_debs(&ds);
    for e in fs::read_dir(other.path()).unwrap().flatten() {
        assert!(e.metadata().unwrap().len() > 0, "{:?} truncated", e.path());
    }
}

/// What the hostile server does with one path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hostile {
    /// Serve the file as it is.
    Honest,
    /// The file, then this many more bytes, with no length announced.
    Oversend(u64),
    /// Announce this length (larger than the file) and send the file.
    Announce(u64),
    /// The head, then a byte of the file every 300 ms.
    Dribble,
}

/// A mirror server on 127.0.0.1 that misbehaves on the paths it is told;
/// counts the body bytes it managed to send.
struct HostileServer {
    url: String,
    sent: Arc<AtomicU64>,
    rules: Arc<Mutex<Vec<(String, Hostile)>>>,
}

impl HostileServer {
    fn start(root: PathBuf) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let rules: Arc<Mutex<Vec<(String, Hostile)>>> = Arc::new(Mutex::new(Vec::new()));
        let (s2, r2) = (Arc::clone(&sent), Arc::clone(&rules));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, sent, rules) = (root.clone(), Arc::clone(&s2), Arc::clone(&r2));
                std::thread::spawn(move || serve_one(stream, &root, &sent, &rules));
            }
        });
        HostileServer { url, sent, rules }
    }

    fn rule(&self, suffix: &str, h: Hostile) {
        self.rules.lock().unwrap().push((suffix.to_owned(), h));
    }
}

fn serve_one(
    mut stream: TcpStream,
    root: &Path,
    sent: &AtomicU64,
    rules: &Mutex<Vec<(String, Hostile)>>,
) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let how = rules
        .lock()
        .unwrap()
        .iter()
        .find(|(s, _)| path.ends_with(s.as_str()))
        .map_or(Hostile::Honest, |(_, h)| *h);
    let Ok(data) = fs::read(root.join(path.trim_start_matches('/'))) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let count = |n: usize| sent.fetch_add(n as u64, Ordering::SeqCst);
    match how {
        Hostile::Honest => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            );
            if stream.write_all(&data).is_ok() {
                count(data.len());
            }
        }
        Hostile::Announce(len) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(&data).is_ok() {
                count(data.len());
            }
        }
        Hostile::Oversend(extra) => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            if stream.write_all(&data).is_err() {
                return;
            }
            count(data.len());
            let junk = vec![b'x'; 64 << 10];
            let mut left = extra;
            while left > 0 {
                let n = left.min(junk.len() as u64) as usize;
                if stream.write_all(&junk[..n]).is_err() {
                    return;
                }
                count(n);
                left -= n as u64;
            }
        }
        Hostile::Dribble => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            );
            for byte in &data {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                count(1);
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}

fn hostile_build(ds: &Darksite, set: &Path, url: &str) -> Result<build::Report, Error> {
    let fetcher = Fetcher::new().attempts(1).timeouts(
        Duration::from_secs(1),
        Duration::from_secs(2),
        1 << 20,
    );
    build::build(ds, set, &opts(url), &fetcher, &|_| {})
}

/// Defect 11: a mirror that sends more than the signed metadata allows is
/// stopped there; one that dribbles is stopped by the whole-transfer
/// deadline; an InRelease is capped before its signature is checked.
#[test]
fn a_hostile_mirror_is_stopped_at_the_signed_size_and_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let server = HostileServer::start(mirror.dir.clone());

    // An index followed by 200 MB: stopped just past its signed size.
    server.rule("Packages.gz", Hostile::Oversend(200 << 20));
    let ds = Darksite::new(tmp.path().join("ds1"));
    let e = hostile_build(&ds, &set, &server.url).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            Error::Upstream(UpstreamError::Fetch(FetchError::TooLarge { .. }))
        ),
        "{msg}"
    );
    assert!(
        msg.contains("Packages.gz: expected at most") && msg.contains("got more"),
        "{msg}"
    );
    let sent = server.sent.swap(0, Ordering::SeqCst);
    eprintln!("oversent index: the server got {sent} bytes out of 200 MB");
    assert!(sent < 64 << 20, "{sent} bytes were taken");
    assert!(!ds.root().join("current").exists());

    // A length announced beyond the signed size: refused before the body.
    server.rules.lock().unwrap().clear();
    server.rule("9.2p1-2_amd64.deb", Hostile::Announce(1 << 30));
    let e = hostile_build(&ds, &set, &server.url)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("9.2p1-2_amd64.deb: expected at most") && e.contains("Content-Length"),
        "{e}"
    );

    // A package sent a byte every 300 ms: the body deadline (2 s plus its
    // size at 1 MB/s) ends it though no read waits a second.
    server.rules.lock().unwrap().clear();
    server.rule("9.2p1-2_amd64.deb", Hostile::Dribble);
    let e = hostile_build(&ds, &set, &server.url)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("openssh-server 1:9.2p1-2") && e.contains("could not be downloaded"),
        "{e}"
    );
    assert!(!ds.root().join("current").exists());

    // An InRelease of 400 MB is not read past the cap.
    server.rules.lock().unwrap().clear();
    server.sent.store(0, Ordering::SeqCst);
    server.rule("InRelease", Hostile::Oversend(400 << 20));
    let e = hostile_build(&ds, &set, &server.url)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("InRelease: expected at most 8388608 bytes"),
        "{e}"
    );
    let sent = server.sent.swap(0, Ordering::SeqCst);
    eprintln!("oversent InRelease: the server got {sent} bytes out of 400 MB");
    assert!(sent < 64 << 20, "{sent} bytes were taken");

    // Honest again: the same darksite builds.
    server.rules.lock().unwrap().clear();
    hostile_build(&ds, &set, &server.url).unwrap();
    verify::verify(ds.root(), None).unwrap();
}

/// gpg in a scratch home, with a faked clock when asked.
fn gpg(home: &Path, time: Option<&str>) -> Cmd {
    let mut c = Cmd::new("gpg")
        .args([
            "--batch",
            "--no-tty",
            "--quiet",
            "--pinentry-mode",
            "loopback",
        ])
        .args(["--passphrase", ""])
        .env("GNUPGHOME", home);
    if let Some(t) = time {
        c = c.args(["--faked-system-time", t]);
    }
    c
}

/// The Release body of an InRelease (the text between the armour lines).
fn release_body(inrelease: &[u8]) -> String {
    let text = String::from_utf8(inrelease.to_vec()).unwrap();
    text.split("\n\n")
        .nth(1)
        .unwrap()
        .split("-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap()
        .to_owned()
}

/// Defect 12: gpgv says EXPKEYSIG for a signature by a key that has
/// expired, with a VALIDSIG line too: refused, as apt refuses it.
#[test]
fn a_release_signed_by_an_expired_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let home = tmp.path().join("gnupg");
    fs::create_dir(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    // Made in 2020, expired a day later; it signs while still valid then.
    gpg(&home, Some("20200101T000000"))
        .args([
            "--quick-gen-key",
            "expired archive <a@example.org>",
            "ed25519",
            "sign",
            "1d",
        ])
        .run()
        .unwrap();
    let keyring = tmp.path().join("expired.gpg");
    let public = gpg(&home, None).args(["--export"]).run().unwrap().stdout;
    fs::write(&keyring, public).unwrap();
    let inrelease = mirror.dir.join("dists/t/InRelease");
    let body = release_body(&fs::read(&inrelease).unwrap());
    let signed = gpg(&home, Some("20200101T120000"))
        .args(["--clearsign", "--digest-algo", "SHA512"])
        .stdin_bytes(body.into_bytes())
        .run()
        .unwrap()
        .stdout;
    fs::write(&inrelease, signed).unwrap();
    let set = tmp.path().join("set.toml");
    fs::write(
        &set,
        format!(
            "distribution = \"t\"\npackages = [\"openssh-server\"]\nkeyring = \"{}\"\n",
            keyring.display()
        ),
    )
    .unwrap();
    let ds = Darksite::new(tmp.path().join("ds"));
    let e = build_with(&ds, &set, &opts(&mirror.url()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad signature") && e.contains("a key that has expired"),
        "{e}"
    );
    assert!(!ds.root().join("current").exists());
}

/// Defect 12: a Release past its Valid-Until is refused; one still valid
/// is taken.
#[test]
fn a_release_past_its_valid_until_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    *mirror.extra.borrow_mut() = "Valid-Until: Sat, 17 Aug 2024 09:57:52 UTC\n".into();
    mirror.publish(&UPDATED);
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let ds = Darksite::new(tmp.path().join("ds"));
    let e = build_with(&ds, &set, &opts(&mirror.url()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("valid until Sat, 17 Aug 2024 09:57:52 UTC, which has passed"),
        "{e}"
    );
    assert!(!ds.root().join("current").exists());
    *mirror.extra.borrow_mut() = "Valid-Until: Fri, 01 Jan 2100 00:00:00 UTC\n".into();
    mirror.publish(&UPDATED);
    build_with(&ds, &set, &opts(&mirror.url())).unwrap();
}

/// Defect 12: a validly signed Release older than the one the darksite was
/// last built from (a replay) is refused, unless asked for.
#[test]
fn a_replayed_older_release_is_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let set = mirror.set(tmp.path(), "\"openssh-server\"");
    let ds = Darksite::new(tmp.path().join("ds"));
    *mirror.date.borrow_mut() = "Sat, 17 Aug 2024 09:00:00 UTC".into();
    mirror.publish(&UPDATED);
    build_with(&ds, &set, &opts(&mirror.url())).unwrap();
    let old_inrelease = {
        *mirror.date.borrow_mut() = "Sat, 10 Aug 2024 09:57:52 UTC".into();
        mirror.publish(&UPDATED);
        fs::read(mirror.dir.join("dists/t/InRelease")).unwrap()
    };
    let e = build_with(&ds, &set, &opts(&mirror.url())).unwrap_err();
    assert!(matches!(e, Error::OlderRelease { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(
            "dated Sat, 10 Aug 2024 09:57:52 UTC, older than the Sat, 17 Aug 2024 09:00:00 UTC"
        ) && msg.contains("--allow-older"),
        "{msg}"
    );
    assert_eq!(ds.current(), Some(1));
    // The same date again is no replay; a newer one is fine.
    *mirror.date.borrow_mut() = "Sat, 17 Aug 2024 09:00:00 UTC".into();
    mirror.publish(&UPDATED);
    build_with(&ds, &set, &opts(&mirror.url())).unwrap();
    // Asked for: built, and the older date becomes the one recorded.
    fs::write(mirror.dir.join("dists/t/InRelease"), &old_inrelease).unwrap();
    let o = Options {
        allow_older: true,
        ..opts(&mirror.url())
    };
    build_with(&ds, &set, &o).unwrap();
    assert_eq!(
        ds.record().unwrap().unwrap().release_dates["t"],
        "Sat, 10 Aug 2024 09:57:52 UTC"
    );
}

/// Defect 17: a local .deb whose Source is not a Debian name (non-ASCII)
/// is an error naming the field, not a panic.
#[test]
fn a_local_deb_with_a_non_ascii_source_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(tmp.path());
    let pkg = tmp.path().join("pkg");
    fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    fs::write(
        pkg.join("DEBIAN/control"),
        "Package: kld-thing\nSource: é\nVersion: 1.0\nArchitecture: amd64\nMaintainer: kld <kld@localhost>\n\
         Description: a package\n",
    )
    .unwrap();
    let deb = tmp.path().join("thing.deb");
    Cmd::new("dpkg-deb")
        .args(["--root-owner-group", "--nocheck", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .run()
        .unwrap();
    let set = tmp.path().join("set.toml");
    fs::write(
        &set,
        format!(
            "distribution = \"t\"\nbase = \"none\"\npackages = [\"kld-thing\"]\nlocal = [\"thing.deb\"]\nkeyring = \"{}\"\n",
            mirror.keyring.display()
        ),
    )
    .unwrap();
    let ds = Darksite::new(tmp.path().join("ds"));
    let e = build_with(&ds, &set, &opts(&mirror.url()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("thing.deb: its Source field \"é\" is not a valid Debian package name"),
        "{e}"
    );
    assert!(!ds.root().join("current").exists());
}

/// Defect 17: a signing key others can read is refused before anything is
/// fetched (the mirror here does not even exist).
#[test]
fn a_readable_key_is_refused_before_any_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key.asc");
    kld_darksite::sign::generate_key(&key, "k").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let set = tmp.path().join("set.toml");
    fs::write(&set, "distribution = \"t\"\npackages = []\n").unwrap();
    let ds = Darksite::new(tmp.path().join("ds"));
    let o = Options {
        key: Some(key),
        ..opts("http://127.0.0.1:9/nowhere")
    };
    let e = build_with(&ds, &set, &o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Sign(kld_darksite::sign::SignError::KeyPermissions { .. })
        ),
        "{e}"
    );
}

/// Defect 8: the gpg homes live in a private directory of the runtime
/// directory, not in /tmp; one a dead process left is removed by the next
/// signer, its agent stopped first.
#[test]
fn a_dead_runs_gpg_home_and_agent_are_swept() {
    let run = kld_fs::secret::runtime_dir().unwrap();
    // A PID that is no longer in use: a child that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let dead = run.join(format!(".kld-{}-{pid}", kld_darksite::sign::GPG_TAG));
    let home = dead.join("0");
    fs::create_dir_all(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dead, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    Cmd::new("gpg-connect-agent")
        .arg("--homedir")
        .arg(&home)
        .arg("/bye")
        .run()
        .unwrap();
    assert!(!agents_of(&home).is_empty(), "the agent started");
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key.asc");
    kld_darksite::sign::generate_key(&key, "k").unwrap();
    assert!(!dead.exists(), "the dead run's gpg home is gone");
    let mut left = agents_of(&home);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = agents_of(&home);
    }
    assert!(left.is_empty(), "agents left running: {left:?}");
}

/// The PIDs of gpg-agents whose home is in `dir`.
fn agents_of(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains("gpg-agent") && cmd.contains(&needle)).then_some(pid)
        })
        .collect()
}
