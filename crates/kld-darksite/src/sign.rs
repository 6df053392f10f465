//! OpenPGP through Debian's tools: `gpgv` checks signatures (upstream
//! Release files against the archive keyring, a darksite against its own
//! key), `gpg` makes the darksite's key and signs its Release file. Every
//! `gpg` runs in a temporary `GNUPGHOME` whose agent is stopped afterwards;
//! no secret is ever an argument.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kld_exec::Cmd;

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
pub fn verify_inline(
    keyring: &Path,
    signed: &[u8],
    what: &str,
) -> Result<(Vec<u8>, String), SignError> {
    need(keyring, "keyring")?;
    let tmp = tempfile::tempdir().map_err(io("cannot create a temporary directory"))?;
    let file = tmp.path().join("InRelease");
    std::fs::write(&file, signed).map_err(io("cannot write a temporary file"))?;
    let out = Cmd::new("gpgv")
        .args(["--quiet", "--status-fd", "2", "--keyring"])
        .arg(keyring)
        .args(["--output", "-"])
        .arg(&file)
        .env("GNUPGHOME", tmp.path())
        .run()
        .map_err(|e| bad(e, what, keyring))?;
    let fpr = valid_sig(&out.stderr).ok_or_else(|| SignError::BadSignature {
        what: what.to_owned(),
        keyring: keyring.to_owned(),
        detail: "gpgv reported no valid signature".into(),
    })?;
    Ok((out.stdout, fpr))
}

/// Checks a detached signature (`Release.gpg`) over `data`; returns the
/// signer's fingerprint.
pub fn verify_detached(
    keyring: &Path,
    signature: &[u8],
    data: &[u8],
    what: &str,
) -> Result<String, SignError> {
    need(keyring, "keyring")?;
    let tmp = tempfile::tempdir().map_err(io("cannot create a temporary directory"))?;
    let (sig, file) = (tmp.path().join("Release.gpg"), tmp.path().join("Release"));
    std::fs::write(&sig, signature).map_err(io("cannot write a temporary file"))?;
    std::fs::write(&file, data).map_err(io("cannot write a temporary file"))?;
    let out = Cmd::new("gpgv")
        .args(["--quiet", "--status-fd", "2", "--keyring"])
        .arg(keyring)
        .arg(&sig)
        .arg(&file)
        .env("GNUPGHOME", tmp.path())
        .run()
        .map_err(|e| bad(e, what, keyring))?;
    valid_sig(&out.stderr).ok_or_else(|| SignError::BadSignature {
        what: what.to_owned(),
        keyring: keyring.to_owned(),
        detail: "gpgv reported no valid signature".into(),
    })
}

fn bad(e: kld_exec::Error, what: &str, keyring: &Path) -> SignError {
    match e {
        kld_exec::Error::Failed { stderr, .. } => SignError::BadSignature {
            what: what.to_owned(),
            keyring: keyring.to_owned(),
            detail: stderr
                .lines()
                .filter(|l| !l.starts_with("[GNUPG:]"))
                .collect::<Vec<_>>()
                .join("; "),
        },
        other => SignError::Exec(other),
    }
}

/// The fingerprint in gpg's `[GNUPG:] VALIDSIG` status line.
fn valid_sig(status: &[u8]) -> Option<String> {
    String::from_utf8_lossy(status).lines().find_map(|l| {
        l.strip_prefix("[GNUPG:] VALIDSIG ")
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    })
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

/// A gpg home of its own in a temporary directory; its agent is stopped
/// and the directory removed on drop.
struct GpgHome {
    dir: tempfile::TempDir,
}

impl GpgHome {
    fn new() -> Result<GpgHome, SignError> {
        let dir = tempfile::Builder::new()
            .prefix("kld-gpg-")
            .tempdir()
            .map_err(io("cannot create a temporary GNUPGHOME"))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(io("cannot restrict the temporary GNUPGHOME"))?;
        Ok(GpgHome { dir })
    }

    fn gpg(&self) -> Cmd {
        Cmd::new("gpg")
            .args(["--batch", "--no-tty", "--quiet"])
            .env("GNUPGHOME", self.dir.path())
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Cmd::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", self.dir.path())
            .run();
    }
}

/// Makes a new ed25519 signing key named `uid` and writes its secret part,
/// armored, to `path` (created 0600, never overwritten).
pub fn generate_key(path: &Path, uid: &str) -> Result<String, SignError> {
    let home = GpgHome::new()?;
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
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("cannot create the key file {}", path.display())))?;
    f.write_all(&secret)
        .and_then(|()| f.sync_all())
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
        let home = GpgHome::new()?;
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
        let s = b"[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG ABC name\n[GNUPG:] VALIDSIG 0123ABCD 2024-01-01 1 0 4 0 22 10 00 0123ABCD\n";
        assert_eq!(valid_sig(s).as_deref(), Some("0123ABCD"));
        assert_eq!(valid_sig(b"[GNUPG:] BADSIG x\n"), None);
    }
}
