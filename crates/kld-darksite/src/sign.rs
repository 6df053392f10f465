//! OpenPGP through Debian's tools: `gpgv` checks signatures (upstream
//! Release files against the archive keyring, a darksite against its own
//! key), `gpg` makes the darksite's key and signs its Release file. Every
//! `gpg` runs in a `GNUPGHOME` of its own in a private directory of the
//! runtime directory (`/run/kld` for root), whose agent is stopped
//! afterwards, and which the next run sweeps up (agent first) if a kill
//! left it; no secret is ever an argument.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use kld_exec::Cmd;
use kld_fs::secret::PrivateDir;

/// Why signing or checking a signature failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signature does not verify against the keyring.
    #[error("bad signature: {what} is not signed by a key in {}: {detail}", .keyring.display())]
    BadSignature {
        /// What was checked.
        what: String,
        /// The keyring.
        keyring: PathBuf,
        /// What gpgv said.
        detail: String,
    },
    /// A keyring or key file is missing.
    #[error("{what} {} does not exist", .path.display())]
    Missing {
        /// What kind of file.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The secret key file can be read by others.
    #[error("the signing key {} is readable by group or others (mode {mode:o}): chmod 600 it", .path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The key file holds no usable secret key.
    #[error("{} holds no OpenPGP secret key that can sign", .0.display())]
    NoSecretKey(PathBuf),
    /// gpg or gpgv failed.
    #[error(transparent)]
    Exec(#[from] kld_exec::Error),
    /// Temporary files.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SignError {
    let what = what.into();
    move |source| SignError::Io { what, source }
}

/// Checks an inline-signed file (`InRelease`) against `keyring` (a binary
/// OpenPGP keyring); returns the signed text and the signer's fingerprint.
/// The policy is [`check_status`]'s.
pub fn verify_inline(
    keyring: &Path,
    signed: &[u8],
    what: &str,
) -> Result<(Vec<u8>, String), SignError> {
    need(keyring, "keyring")?;
    let home = GpgHome::new(false)?;
    let file = home.dir.join("InRelease");
    std::fs::write(&file, signed).map_err(io("cannot write a temporary file"))?;
    let out = Cmd::new("gpgv")
        .args(["--quiet", "--status-fd", "2", "--keyring"])
        .arg(keyring)
        .args(["--output", "-"])
        .arg(&file)
        .env("GNUPGHOME", &home.dir)
        .run()
        .map_err(|e| bad(e, what, keyring))?;
    let fpr = check_status(&out.stderr).map_err(|detail| SignError::BadSignature {
        what: what.to_owned(),
        keyring: keyring.to_owned(),
        detail,
    })?;
    Ok((out.stdout, fpr))
}

/// Checks a detached signature (`Release.gpg`) over `data`; returns the
/// signer's fingerprint. The policy is [`check_status`]'s.
pub fn verify_detached(
    keyring: &Path,
    signature: &[u8],
    data: &[u8],
    what: &str,
) -> Result<String, SignError> {
    need(keyring, "keyring")?;
    let home = GpgHome::new(false)?;
    let (sig, file) = (home.dir.join("Release.gpg"), home.dir.join("Release"));
    std::fs::write(&sig, signature).map_err(io("cannot write a temporary file"))?;
    std::fs::write(&file, data).map_err(io("cannot write a temporary file"))?;
    let out = Cmd::new("gpgv")
        .args(["--quiet", "--status-fd", "2", "--keyring"])
        .arg(keyring)
        .arg(&sig)
        .arg(&file)
        .env("GNUPGHOME", &home.dir)
        .run()
        .map_err(|e| bad(e, what, keyring))?;
    check_status(&out.stderr).map_err(|detail| SignError::BadSignature {
        what: what.to_owned(),
        keyring: keyring.to_owned(),
        detail,
    })
}

fn bad(e: kld_exec::Error, what: &str, keyring: &Path) -> SignError {
    match e {
        kld_exec::Error::Failed { stderr, .. } => {
            // The policy's words when gpgv's status says why; else gpgv's.
            let detail = check_status(stderr.as_bytes()).err().unwrap_or_else(|| {
                stderr
                    .lines()
                    .filter(|l| !l.starts_with("[GNUPG:]"))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            SignError::BadSignature {
                what: what.to_owned(),
                keyring: keyring.to_owned(),
                detail,
            }
        }
        other => SignError::Exec(other),
    }
}

/// The signature policy, over gpgv's `--status-fd` lines; returns the
/// primary fingerprint of the key that signed, or why the file is refused.
///
/// As apt does: every signature must be good (`GOODSIG` and `VALIDSIG`),
/// and one is enough, except that a signature by a key the keyring does not
/// hold (`ERRSIG` with `NO_PUBKEY`) vouches for nothing and is passed over.
/// Any `BADSIG`, `EXPSIG` (an expired signature), `EXPKEYSIG` (a key that
/// has expired), `REVKEYSIG` (a revoked key) or other `ERRSIG` refuses the
/// file, whatever else it carries.
pub fn check_status(status: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(status);
    let mut good = false;
    let mut valid: Option<String> = None;
    let mut refused: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let key = w.next().unwrap_or("");
        let words: Vec<&str> = w.collect();
        let id = words.first().copied().unwrap_or("?");
        match key {
            "GOODSIG" => good = true,
            // VALIDSIG FPR DATE TS EXPTS VER RES PKALGO HASHALGO CLASS PRIMARY-FPR
            "VALIDSIG" => {
                valid = Some(
                    words
                        .get(9)
                        .or(words.first())
                        .map(|s| (*s).to_owned())
                        .unwrap_or_default(),
                )
            }
            "BADSIG" => refused.push(format!("a bad signature by {id}")),
            "EXPSIG" => refused.push(format!("an expired signature by {id}")),
            "EXPKEYSIG" => refused.push(format!("a signature by {id}, a key that has expired")),
            "REVKEYSIG" => refused.push(format!("a signature by {id}, a revoked key")),
            // ERRSIG KEYID PKALGO HASHALGO CLASS TIME RC [FPR]; RC 9: no key.
            "ERRSIG" if words.get(5) == Some(&"9") => {}
            "ERRSIG" => refused.push(format!(
                "a signature by {id} that cannot be checked (code {})",
                words.get(5).unwrap_or(&"?")
            )),
            _ => {}
        }
    }
    if !refused.is_empty() {
        return Err(format!("gpgv reported {}", refused.join(", ")));
    }
    match valid {
        Some(fpr) if good && !fpr.is_empty() => Ok(fpr),
        _ => Err("gpgv reported no good, valid signature".into()),
    }
}

fn need(path: &Path, what: &'static str) -> Result<(), SignError> {
    if path.exists() {
        Ok(())
    } else {
        Err(SignError::Missing {
            what,
            path: path.to_owned(),
        })
    }
}

/// The tag of the private directory that holds this process's gpg homes,
/// `.kld-darksite-gpg-PID` in [`kld_fs::secret::runtime_dir`].
pub const GPG_TAG: &str = "darksite-gpg";

/// The private directory of this process's gpg homes, while any exists.
static PARENT: Mutex<Weak<PrivateDir>> = Mutex::new(Weak::new());
static SEQ: AtomicU64 = AtomicU64::new(0);

/// A gpg home of its own, `N` in this process's private directory
/// (`/run/kld/.kld-darksite-gpg-PID` for root, `0700`, never a shared
/// temporary directory); its agent is stopped and the directory removed
/// on drop, and a later run's [`sweep`] does both for a killed process.
struct GpgHome {
    dir: PathBuf,
    agent: bool,
    parent: Option<Arc<PrivateDir>>,
}

impl GpgHome {
    /// A new home; `agent` says whether gpg (which starts an agent) will
    /// use it, rather than gpgv alone.
    fn new(agent: bool) -> Result<GpgHome, SignError> {
        sweep();
        let parent = {
            let mut held = PARENT.lock().unwrap_or_else(|p| p.into_inner());
            match held.upgrade() {
                Some(p) => p,
                None => {
                    let run = kld_fs::secret::runtime_dir()
                        .map_err(io("cannot use the runtime directory for gpg"))?;
                    let p = Arc::new(
                        PrivateDir::create(&run, GPG_TAG)
                            .map_err(io("cannot create a private GNUPGHOME"))?,
                    );
                    *held = Arc::downgrade(&p);
                    p
                }
            }
        };
        let dir = parent
            .path()
            .join(SEQ.fetch_add(1, Ordering::SeqCst).to_string());
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io("cannot create a private GNUPGHOME"))?;
        Ok(GpgHome {
            dir,
            agent,
            parent: Some(parent),
        })
    }

    fn gpg(&self) -> Cmd {
        Cmd::new("gpg")
            .args(["--batch", "--no-tty", "--quiet"])
            .env("GNUPGHOME", &self.dir)
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        if self.agent {
            kill_agent(&self.dir);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The last home of the process takes the private directory with it,
        // under the lock so that a new one is not made while it goes.
        let _held = PARENT.lock().unwrap_or_else(|p| p.into_inner());
        self.parent.take();
    }
}

fn kill_agent(home: &Path) {
    let _ = Cmd::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "all"])
        .run();
}

/// Removes the gpg homes that killed kdarksite processes left in
/// [`kld_fs::secret::runtime_dir`], stopping their agents first; returns
/// the directories removed. Every signer runs it before it makes its own.
pub fn sweep() -> Vec<PathBuf> {
    match kld_fs::secret::runtime_dir() {
        Ok(run) => sweep_in(&run),
        Err(_) => Vec::new(),
    }
}

fn sweep_in(run: &Path) -> Vec<PathBuf> {
    PrivateDir::sweep(run, GPG_TAG, |dead| {
        for home in std::fs::read_dir(dead).into_iter().flatten().flatten() {
            kill_agent(&home.path());
        }
    })
}

/// Checks a secret key file before it is used (and before anything is
/// fetched): it must exist and be readable by its owner alone.
pub fn check_key(path: &Path) -> Result<(), SignError> {
    let meta = std::fs::metadata(path).map_err(|_| SignError::Missing {
        what: "signing key",
        path: path.to_owned(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SignError::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Makes a new ed25519 signing key named `uid` and writes its secret part,
/// armored, to `path` (`0600` from its first byte, written atomically,
/// never overwritten).
pub fn generate_key(path: &Path, uid: &str) -> Result<String, SignError> {
    let home = GpgHome::new(true)?;
    let params = format!(
        "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: {uid}\nExpire-Date: 0\n%commit\n"
    );
    home.gpg().arg("--gen-key").stdin_bytes(params).run()?;
    let secret = home
        .gpg()
        .args(["--armor", "--export-secret-keys"])
        .run()?
        .stdout;
    if secret.is_empty() {
        return Err(SignError::NoSecretKey(path.to_owned()));
    }
    // Written whole or not at all (a kill leaves no empty key behind); the
    // darksite's lock keeps two runs from making one at once.
    if path.exists() {
        return Err(SignError::Io {
            what: format!("the key file {} exists already", path.display()),
            source: std::io::ErrorKind::AlreadyExists.into(),
        });
    }
    kld_fs::secret::write(path, &secret)
        .map_err(io(format!("cannot write the key file {}", path.display())))?;
    fingerprint(&home)
}

fn fingerprint(home: &GpgHome) -> Result<String, SignError> {
    let out = home
        .gpg()
        .args(["--with-colons", "--list-secret-keys"])
        .run()?;
    out.stdout_str()
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_owned())
        })
        .ok_or_else(|| SignError::NoSecretKey(PathBuf::from("(generated key)")))
}

/// Signs with a secret key file, in a gpg home of its own.
pub struct Signer {
    home: GpgHome,
    fingerprint: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl Signer {
    /// Loads the secret key in `path` (which must not be readable by group
    /// or others).
    pub fn open(path: &Path) -> Result<Signer, SignError> {
        check_key(path)?;
        let home = GpgHome::new(true)?;
        home.gpg().arg("--import").arg(path).run()?;
        let fingerprint =
            fingerprint(&home).map_err(|_| SignError::NoSecretKey(path.to_owned()))?;
        Ok(Signer { home, fingerprint })
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `InRelease`: `data` clear-signed.
    pub fn clearsign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign(data, &["--clearsign"])
    }

    /// `Release.gpg`: an armored detached signature of `data`.
    pub fn detach_sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign(data, &["--armor", "--detach-sign"])
    }

    /// Signs `data` (on standard input) with this key, SHA-512, in the form
    /// `how` asks for.
    fn sign(&self, data: &[u8], how: &[&str]) -> Result<Vec<u8>, SignError> {
        Ok(self
            .home
            .gpg()
            .args(["--local-user", &self.fingerprint, "--digest-algo", "SHA512"])
            .args(how)
            .stdin_bytes(data.to_vec())
            .run()?
            .stdout)
    }

    /// The public key, binary (for `signed-by` and gpgv) or armored.
    pub fn public_key(&self, armored: bool) -> Result<Vec<u8>, SignError> {
        let mut cmd = self.home.gpg().arg("--export");
        if armored {
            cmd = cmd.arg("--armor");
        }
        Ok(cmd.arg(&self.fingerprint).run()?.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let good = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG ABC name\n[GNUPG:] VALIDSIG 0123ABCD 2024-01-01 1 0 4 0 22 10 00 PRIMARY\n";
        assert_eq!(check_status(good.as_bytes()).as_deref(), Ok("PRIMARY"));
        assert!(check_status(b"[GNUPG:] BADSIG x\n").is_err());
        for bad in [
            "EXPKEYSIG ABC name",
            "REVKEYSIG ABC name",
            "EXPSIG ABC name",
            "BADSIG ABC name",
            "ERRSIG ABC 22 10 00 1700000000 4",
        ] {
            let text = format!("{good}[GNUPG:] {bad}\n");
            let e = check_status(text.as_bytes()).unwrap_err();
            assert!(e.contains("ABC"), "{bad}: {e}");
        }
        // A second signature by a key the keyring lacks vouches for nothing.
        let other = format!("{good}[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG DEF 22 10 00 1700000000 9\n[GNUPG:] NO_PUBKEY DEF\n");
        assert_eq!(check_status(other.as_bytes()).as_deref(), Ok("PRIMARY"));
        assert!(check_status(b"[GNUPG:] ERRSIG DEF 22 10 00 1700000000 9\n").is_err());
        assert!(
            check_status(b"[GNUPG:] VALIDSIG X\n").is_err(),
            "VALIDSIG without GOODSIG"
        );
    }
}
