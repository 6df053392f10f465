//! A real Debian bookworm root for the seal tests: minbase with
//! openssh-server and cloud-init, built once with mmdebstrap from Debian's
//! archive and cached as a tarball under `target/kld-seal/`, keyed by a hash
//! of its inputs. Each test unpacks its own copy.

use std::path::{Path, PathBuf};

use kld_exec::Cmd;
use sha2::{Digest, Sha256};

/// What goes into the root besides minbase.
pub const PACKAGES: &[&str] = &[
    "openssh-server",
    "cloud-init",
    "systemd",
    "dbus",
    "isc-dhcp-client",
];
/// Bumped when the way the root is built changes.
const FORMAT: &str = "kld-seal-root-1";

/// The cached root tarball, built first if needed (a minute or two).
pub fn tarball() -> Result<PathBuf, kld_exec::Error> {
    let version = Cmd::new("dpkg-query")
        .args(["-W", "-f=${Version}", "mmdebstrap"])
        .run()?
        .stdout_str();
    let key = Sha256::digest(format!("{FORMAT}\n{version}\n{PACKAGES:?}\n").as_bytes());
    let key: String = key.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = crate::vm::target_dir().join("kld-seal");
    let tar = dir.join(format!("root-{key}.tar"));
    if tar.exists() {
        return Ok(tar);
    }
    std::fs::create_dir_all(&dir).map_err(|e| io("creating the cache", e))?;
    let partial = dir.join(format!(".root-{key}.tar.partial-{}", std::process::id()));
    Cmd::new("mmdebstrap")
        .args(["--mode=root", "--variant=minbase", "--quiet"])
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg("--format=tar")
        .arg("bookworm")
        .arg(&partial)
        .run()?;
    std::fs::rename(&partial, &tar).map_err(|e| io("caching the root", e))?;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("root-") && p != tar {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(tar)
}

fn io(what: &str, e: std::io::Error) -> kld_exec::Error {
    kld_exec::Error::Io {
        command: what.to_owned(),
        source: e,
    }
}

/// Unpacks the root into `dir` (which must exist), owners and modes kept.
pub fn unpack(tar: &Path, dir: &Path) -> Result<(), kld_exec::Error> {
    Cmd::new("tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(tar)
        .arg("-C")
        .arg(dir)
        .run()
        .map(drop)
}
