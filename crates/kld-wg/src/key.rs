//! WireGuard keys: private, public and preshared, in the base64 form `wg
//! genkey`, `wg pubkey` and `wg genpsk` print and accept.
//!
//! Private and preshared keys are wiped from memory when dropped, print as
//! `PrivateKey(<redacted>)` in `Debug`, and are written to files created
//! `0600` from the first byte. Reading a private key file that group or
//! others may read is refused.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why a key could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not 32 bytes in base64 (44 characters ending in `=`).
    #[error("not a WireGuard key (32 bytes in base64, 44 characters)")]
    Invalid,
    /// A private key file others may read.
    #[error("{path}: a private key file must be readable by its owner only (mode is {mode:04o})")]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
}

fn decode(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    // wg accepts exactly the canonical 44-character form.
    if text.len() != 44 || !text.ends_with('=') {
        return Err(KeyError::Invalid);
    }
    let mut bytes = STANDARD.decode(text).map_err(|_| KeyError::Invalid)?;
    let out: Result<[u8; 32], _> = bytes.as_slice().try_into();
    bytes.zeroize();
    let out = out.map_err(|_| KeyError::Invalid)?;
    if *zeroize::Zeroizing::new(STANDARD.encode(out)) != text {
        // Non-canonical trailing bits: wg refuses them too.
        return Err(KeyError::Invalid);
    }
    Ok(out)
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the kernel's random number generator");
    b
}

/// A Curve25519 private key (clamped as `wg genkey` clamps it).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; 32]);

/// A Curve25519 public key: safe to print and share.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// A 32-byte symmetric preshared key.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; 32]);

impl PrivateKey {
    /// A new random key, as `wg genkey` makes.
    pub fn generate() -> PrivateKey {
        let mut b = random32();
        b[0] &= 248;
        b[31] &= 127;
        b[31] |= 64;
        PrivateKey(b)
    }

    /// Parses the base64 form.
    pub fn from_base64(text: &str) -> Result<PrivateKey, KeyError> {
        decode(text).map(PrivateKey)
    }

    /// The base64 form (a secret: keep it out of logs and argv).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A key from raw bytes, as a device reports it.
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> PrivateKey {
        PrivateKey(bytes)
    }

    /// The matching public key, as `wg pubkey` computes it.
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// The X25519 shared secret with `peer`.
    pub(crate) fn diffie_hellman(&self, peer: &PublicKey) -> zeroize::Zeroizing<[u8; 32]> {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        zeroize::Zeroizing::new(shared.to_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn read_file(path: &Path) -> Result<PrivateKey, KeyError> {
        let text = read_secret_file(path)?;
        PrivateKey::from_base64(&text)
    }

    /// Writes the key to a new file created `0600` (it must not exist).
    pub fn write_file(&self, path: &Path) -> Result<(), KeyError> {
        let mut line = self.to_base64();
        line.push('\n');
        let result = write_new_secret_file(path, line.as_bytes());
        line.zeroize();
        result
    }
}

impl PresharedKey {
    /// A new random key, as `wg genpsk` makes.
    pub fn generate() -> PresharedKey {
        PresharedKey(random32())
    }

    /// Parses the base64 form.
    pub fn from_base64(text: &str) -> Result<PresharedKey, KeyError> {
        decode(text).map(PresharedKey)
    }

    /// The base64 form (a secret).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PublicKey {
    /// Parses the base64 form.
    pub fn from_base64(text: &str) -> Result<PublicKey, KeyError> {
        decode(text).map(PublicKey)
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_base64(s)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        let s = String::deserialize(d)?;
        PublicKey::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a file holding a secret, refusing one group or others may read;
/// the text is wiped when dropped.
pub fn read_secret(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyError> {
    read_secret_file(path)
}

/// Reads a file holding a secret (see [`read_secret`]).
pub(crate) fn read_secret_file(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    // Read into a buffer sized once: a growing String would leave copies
    // of the secret behind in freed memory.
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.read_to_end(&mut bytes).map_err(io_error(path))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    let mut out = zeroize::Zeroizing::new(String::with_capacity(text.len()));
    out.push_str(text);
    Ok(out)
}

/// Writes `bytes` to a new file that is `0600` from its creation.
pub(crate) fn write_new_secret_file(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_never_shows_secrets() {
        let k = PrivateKey::generate();
        let p = PresharedKey::generate();
        let shown = format!("{k:?} {p:?}");
        assert!(!shown.contains(&k.to_base64()));
        assert!(!shown.contains(&p.to_base64()));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "abc",
            "AAAA",
            &"A".repeat(44),
            &format!("{}=", "A".repeat(42)),
        ] {
            assert!(PublicKey::from_base64(bad).is_err(), "{bad:?}");
        }
        // 43 chars + '=' but with non-zero trailing bits is not canonical.
        let mut s = PublicKey::from_bytes([0; 32]).to_base64();
        s.replace_range(42..43, "B");
        assert!(PublicKey::from_base64(&s).is_err());
    }

    #[test]
    fn key_files_are_0600_and_readable_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = PrivateKey::generate();
        key.write_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(PrivateKey::read_file(&path).unwrap(), key);
        assert!(key.write_file(&path).is_err(), "never overwrites");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = PrivateKey::read_file(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o640, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains(&key.to_base64()));
    }

    proptest! {
        #[test]
        fn base64_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let p = PublicKey::from_bytes(bytes);
            prop_assert_eq!(PublicKey::from_base64(&p.to_base64()).unwrap(), p);
        }

        #[test]
        fn parsing_never_panics(s in ".{0,60}") {
            let _ = PrivateKey::from_base64(&s);
        }
    }
}
