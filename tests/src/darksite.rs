//! A local mirror of real Debian packages for the darksite tests and
//! benchmarks, fetched once from Debian's archive and cached: bookworm's
//! signed `InRelease`, its `main` amd64 `Packages` index (as `.gz`, `.xz`
//! and plain, each checked against the signed Release), and the `.deb`
//! files of the closures the tests need, each checked against the index.
//! The mirror has the archive's own layout and signature, so a darksite
//! built from it checks Debian's real key. It is served on 127.0.0.1 by
//! [`serve`]; nothing else reaches the network.

use std::path::{Path, PathBuf};

use kld_darksite::build::resolve_set;
use kld_darksite::download::{self, Item, Store};
use kld_darksite::fetch::Fetcher;
use kld_darksite::index::Release;
use kld_darksite::set::PackageSet;
use kld_darksite::sign;

use crate::vm::VmError;

/// Where the mirror comes from.
pub const UPSTREAM: &str = "http://deb.debian.org/debian";
/// The suite mirrored.
pub const SUITE: &str = "bookworm";

/// The package set the tests build darksites from: the minimal base system
/// and a few server packages (about 45 MB).
pub const TEST_SET: &str = "name = \"kld-test\"\ndistribution = \"bookworm\"\nbase = \"minbase\"\n\
packages = [\"openssh-server\", \"ca-certificates\", \"less\"]\n";

/// The set the resolve benchmark resolves (only the index is needed):
/// openssh-server, nginx and PostgreSQL with the base system.
pub const RESOLVE_SET: &str =
    "name = \"kld-bench\"\ndistribution = \"bookworm\"\nbase = \"minbase\"\n\
packages = [\"openssh-server\", \"nginx\", \"postgresql\"]\n";

/// The set the fetch benchmark downloads: over 200 packages (about 145 MB,
/// fetched once into the mirror by `cargo xtask bench`).
pub const FETCH_SET: &str = "name = \"kld-bench\"\ndistribution = \"bookworm\"\nbase = \"minbase\"\n\
packages = [\"openssh-server\", \"nginx\", \"postgresql\", \"python3\", \"vim\", \"git\", \"curl\", \"rsync\", \"tmux\", \"sudo\", \"man-db\", \"gnupg\", \"jq\"]\n";

fn err(message: impl std::fmt::Display) -> VmError {
    VmError::Setup(format!("darksite test mirror: {message}"))
}

/// The cache: `$KLD_DARKSITE_CACHE`, or `kld-darksite` in the target
/// directory.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("KLD_DARKSITE_CACHE") {
        Some(dir) => dir.into(),
        None => crate::vm::target_dir().join("kld-darksite"),
    }
}

/// The mirror's root (serve it, or use it as `file://`).
pub fn mirror_dir() -> PathBuf {
    cache_dir().join("mirror")
}

/// Writes `text` as a package set file in `dir` and returns its path.
pub fn write_set(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("writing a package set");
    path
}

/// Makes sure the mirror holds the closures of `sets` (TOML texts),
/// fetching only what is missing. Idempotent; seconds when done.
pub fn prepare(sets: &[&str], say: &mut dyn FnMut(&str)) -> Result<PathBuf, VmError> {
    let mirror = mirror_dir();
    let marker = |set: &str| {
        let key = kld_darksite::fetch::sha256_hex(set.as_bytes());
        cache_dir().join(format!("ready-{}", &key[..16]))
    };
    if sets.iter().all(|s| marker(s).exists()) {
        return Ok(mirror);
    }
    let fetcher = Fetcher::new();
    let dists = mirror.join("dists").join(SUITE);
    std::fs::create_dir_all(&dists).map_err(err)?;
    let inrelease = dists.join("InRelease");
    if !inrelease.exists() {
        say(&format!("fetching {SUITE}'s InRelease from {UPSTREAM}"));
        let signed = fetcher
            .get(
                &format!("{UPSTREAM}/dists/{SUITE}/InRelease"),
                kld_darksite::fetch::MAX_RELEASE,
            )
            .map_err(err)?;
        sign::verify_inline(
            Path::new(kld_darksite::set::DEBIAN_KEYRING),
            &signed,
            "InRelease",
        )
        .map_err(err)?;
        std::fs::write(&inrelease, &signed).map_err(err)?;
    }
    let (text, _) = sign::verify_inline(
        Path::new(kld_darksite::set::DEBIAN_KEYRING),
        &std::fs::read(&inrelease).map_err(err)?,
        "InRelease",
    )
    .map_err(err)?;
    let release = Release::parse(&String::from_utf8_lossy(&text)).map_err(err)?;
    for ext in [".gz", ".xz"] {
        let path = format!("main/binary-amd64/Packages{ext}");
        let dest = dists.join(&path);
        if dest.exists() {
            continue;
        }
        let f = release
            .file(&path)
            .ok_or_else(|| err(format!("Release lists no {path}")))?;
        say(&format!("fetching {path} ({} MB)", f.size >> 20));
        std::fs::create_dir_all(dest.parent().expect("has a parent")).map_err(err)?;
        fetcher
            .fetch_verified(
                &format!("{UPSTREAM}/dists/{SUITE}/{path}"),
                &dest,
                f.size,
                &f.sha256,
            )
            .map_err(err)?;
    }
    let plain = dists.join("main/binary-amd64/Packages");
    if !plain.exists() {
        let gz = std::fs::read(dists.join("main/binary-amd64/Packages.gz")).map_err(err)?;
        let text = kld_darksite::upstream::decompress(&gz, "gz").map_err(err)?;
        let f = release
            .file("main/binary-amd64/Packages")
            .ok_or_else(|| err("Release lists no main/binary-amd64/Packages"))?;
        if kld_darksite::fetch::sha256_hex(text.as_bytes()) != f.sha256 {
            return Err(err("the decompressed Packages does not match the Release"));
        }
        std::fs::write(&plain, text).map_err(err)?;
    }
    let store = Store::open(&cache_dir().join("store")).map_err(err)?;
    let tmp = tempfile::tempdir().map_err(err)?;
    for set_text in sets {
        if marker(set_text).exists() {
            continue;
        }
        let set_path = write_set(tmp.path(), "set", set_text);
        let set = PackageSet::load(&set_path).map_err(err)?;
        let url = format!("file://{}", mirror.display());
        let r = resolve_set(set, &url, &fetcher, &cache_dir().join("indices")).map_err(err)?;
        if !r.resolution.is_complete() {
            return Err(err(format!(
                "the set does not resolve: {:?}",
                r.resolution.unsatisfied
            )));
        }
        let items: Vec<Item> = r
            .resolution
            .packages
            .iter()
            .map(|(id, _)| {
                let p = r.universe.pkg(*id);
                Item {
                    label: format!("{} {}", p.name, p.version),
                    url: format!("{UPSTREAM}/{}", p.filename),
                    size: p.size,
                    sha256: p.sha256.clone(),
                }
            })
            .collect();
        let missing = items.iter().filter(|i| !store.has(i)).count();
        if missing > 0 {
            say(&format!(
                "fetching {missing} of {} packages from {UPSTREAM} (once; cached in {})",
                items.len(),
                cache_dir().display()
            ));
        }
        download::download(&fetcher, &store, &items, 6, &|_| {}).map_err(err)?;
        for (id, _) in &r.resolution.packages {
            let p = r.universe.pkg(*id);
            let dest = mirror.join(&p.filename);
            if dest.exists() {
                continue;
            }
            std::fs::create_dir_all(dest.parent().expect("has a parent")).map_err(err)?;
            std::fs::hard_link(store.path(&p.sha256), &dest)
                .or_else(|_| std::fs::copy(store.path(&p.sha256), &dest).map(|_| ()))
                .map_err(err)?;
        }
        std::fs::write(marker(set_text), b"").map_err(err)?;
    }
    Ok(mirror)
}

/// A scratch apt that sees only a mirror, with an empty dpkg status (for
/// comparing closures with apt's and for benchmarks).
pub struct ScratchApt {
    dir: tempfile::TempDir,
}

impl ScratchApt {
    /// An apt whose only source is `url` (signed by Debian's archive
    /// key), with its lists updated.
    pub fn new(url: &str) -> ScratchApt {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("status"), "").unwrap();
        std::fs::write(
            d.join("etc/sources.list"),
            format!(
                "deb [signed-by={}] {url} bookworm main\n",
                kld_darksite::set::DEBIAN_KEYRING
            ),
        )
        .unwrap();
        let conf = format!(
            "Dir \"{root}/\";\nDir::State \"{root}/state/\";\nDir::State::status \"{root}/status\";\n\
             Dir::Cache \"{root}/cache/\";\nDir::Etc \"{root}/etc/\";\nDir::Log \"{root}/log/\";\n\
             APT::Architecture \"amd64\";\nAPT::Architectures {{ \"amd64\"; }};\nAcquire::Languages \"none\";\n\
             APT::Sandbox::User \"root\";\nDebug::NoLocking \"true\";\nAPT::Install-Recommends \"false\";\n",
            root = d.display()
        );
        std::fs::write(d.join("apt.conf"), conf).unwrap();
        let apt = ScratchApt { dir };
        apt.cmd("apt-get").args(["update", "-q"]).run().unwrap();
        apt
    }

    /// `program` (apt-get, apt-cache) run with this apt's configuration.
    pub fn cmd(&self, program: &str) -> kld_exec::Cmd {
        kld_exec::Cmd::new(program).env("APT_CONFIG", self.dir.path().join("apt.conf"))
    }

    /// The packages `apt-get install -s` would install, as name=version.
    pub fn simulate(&self, packages: &[String]) -> std::collections::BTreeSet<String> {
        let out = self
            .cmd("apt-get")
            .args(["install", "-s", "-q", "--no-install-recommends"])
            .args(packages)
            .run()
            .unwrap();
        out.stdout_str()
            .lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .map(|l| {
                let mut w = l.split_whitespace();
                let name = w.next().unwrap();
                let version = w.next().unwrap().trim_start_matches('(');
                format!("{name}={version}")
            })
            .collect()
    }
}

/// Serves `dir` on an ephemeral port of 127.0.0.1 for as long as the
/// process lives; returns the base URL.
pub fn serve(dir: &Path) -> Result<String, VmError> {
    let server = kld_darksite::serve::Server::bind(dir, "127.0.0.1:0").map_err(err)?;
    let addr = server.local_addr().map_err(err)?;
    std::thread::spawn(move || server.run());
    Ok(format!("http://{addr}"))
}

/// A small signed mirror of stand-in packages (files that are not really
/// `.deb`s; kdarksite never unpacks them), made in a few hundred
/// milliseconds: for the fault-injection and concurrency tiers, which run
/// a command dozens of times.
pub struct StandIn {
    /// The mirror's root (`file://` URL: [`StandIn::url`]).
    pub dir: PathBuf,
    /// The keyring its Release verifies against.
    pub keyring: PathBuf,
    signer: sign::Signer,
}

/// The stand-in packages: a few with dependencies, as `(name, version,
/// extra fields)`.
pub const STAND_IN: [(&str, &str, &str); 4] = [
    (
        "base-files",
        "12",
        "Essential: yes\nPriority: required\nDepends: libc6\n",
    ),
    ("libc6", "2.36-9", "Priority: optional\n"),
    ("apt", "2.6.1", "Priority: important\nDepends: libc6\n"),
    (
        "openssh-server",
        "1:9.2p1-2",
        "Priority: optional\nDepends: libc6 (>= 2.36)\n",
    ),
];

impl StandIn {
    /// Makes the mirror in `dir`/mirror with `pkgs`, suite `t`.
    pub fn new(dir: &Path, pkgs: &[(&str, &str, &str)]) -> StandIn {
        let key = dir.join("upstream-key.asc");
        sign::generate_key(&key, "stand-in archive").unwrap();
        let signer = sign::Signer::open(&key).unwrap();
        let keyring = dir.join("upstream.gpg");
        std::fs::write(&keyring, signer.public_key(false).unwrap()).unwrap();
        let m = StandIn {
            dir: dir.join("mirror"),
            keyring,
            signer,
        };
        m.publish(pkgs, "Sat, 10 Aug 2024 09:57:52 UTC");
        m
    }

    /// Rewrites the suite with `pkgs` and a Release dated `date`.
    pub fn publish(&self, pkgs: &[(&str, &str, &str)], date: &str) {
        use kld_darksite::fetch::sha256_hex;
        use kld_darksite::publish::{gzip, release_text, Plan};
        let mut stanzas = Vec::new();
        for (name, version, extra) in pkgs {
            let file = format!("pool/main/{}/{name}/{name}_{version}_amd64.deb", &name[..1]);
            // Sizes differ, so that a short or mixed file shows.
            let data = format!("stand-in {name} {version}\n").repeat(50 + name.len() * 20);
            let path = self.dir.join(&file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
            stanzas.push(format!(
                "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{extra}Filename: {file}\nSize: {}\nSHA256: {}\n",
                data.len(),
                sha256_hex(data.as_bytes())
            ));
        }
        let text = stanzas.join("\n").into_bytes();
        let files = vec![
            ("main/binary-amd64/Packages".to_owned(), text.clone()),
            ("main/binary-amd64/Packages.gz".to_owned(), gzip(&text)),
        ];
        let dists = self.dir.join("dists/t");
        for (p, b) in &files {
            std::fs::create_dir_all(dists.join(p).parent().unwrap()).unwrap();
            std::fs::write(dists.join(p), b).unwrap();
        }
        let plan = Plan {
            distribution: "t".into(),
            label: "stand-in".into(),
            date: date.into(),
            architectures: vec!["amd64".into()],
            entries: Vec::new(),
        };
        let release = release_text(&plan, &files).replace("Components: \n", "Components: main\n");
        std::fs::write(
            dists.join("InRelease"),
            self.signer.clearsign(release.as_bytes()).unwrap(),
        )
        .unwrap();
    }

    /// Its `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// Writes a package set over it (`packages` as TOML strings) into
    /// `dir`/set.toml.
    pub fn set(&self, dir: &Path, packages: &str) -> PathBuf {
        write_set(
            dir,
            "set",
            &format!(
                "name = \"stand-in\"\ndistribution = \"t\"\npackages = [{packages}]\nkeyring = \"{}\"\n",
                self.keyring.display()
            ),
        )
    }
}
