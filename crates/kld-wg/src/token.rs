//! The enrolment token: one line, `kldwg1:` and base64url, carrying the
//! hub's enrolment address, the hub's WireGuard public key (pinned), the
//! window id and the window's 32-byte secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::endpoint::Endpoint;
use crate::key::PublicKey;

/// The token's prefix (its format version).
pub const PREFIX: &str = "kldwg1:";

/// The longest token text (its encoded body) [`Token::decode`] reads.
pub const MAX_TOKEN: usize = 1024;

/// Why a token did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a kwg enrolment token (it starts with kldwg1: and comes from `kwg enrol open`)")]
pub struct TokenError;

/// A window's id: 8 random bytes, shown as 16 hex digits.
pub type WindowId = String;

/// An enrolment token. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Where the hub answers joins (`host:port`).
    pub enrol: Endpoint,
    /// The hub's WireGuard public key: the spoke accepts only a hub that
    /// proves it holds the matching private key.
    pub hub_key: PublicKey,
    /// The window it belongs to.
    pub window: WindowId,
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("enrol", &self.enrol)
            .field("hub_key", &self.hub_key)
            .field("window", &self.window)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The key a window's joins are authenticated with, derived one way from
/// the token's secret (the hub keeps this, never the secret).
pub fn join_key(secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(b"kld-wg join key v1");
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl Token {
    /// A token for a new window with a fresh random id and secret.
    pub fn generate(enrol: Endpoint, hub_key: PublicKey) -> Token {
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).expect("the kernel's random number generator");
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut secret[..]).expect("the kernel's random number generator");
        Token {
            enrol,
            hub_key,
            window: hex(&id),
            secret,
        }
    }

    /// The key derived from the secret (see [`join_key`]).
    pub fn join_key(&self) -> Zeroizing<[u8; 32]> {
        join_key(&self.secret)
    }

    /// A copy with another secret (what a forger would hold).
    pub fn with_secret(&self, secret: [u8; 32]) -> Token {
        Token {
            secret: Zeroizing::new(secret),
            ..self.clone()
        }
    }

    /// A copy naming another hub key (a token meant for another hub).
    pub fn with_hub_key(&self, hub_key: PublicKey) -> Token {
        Token {
            hub_key,
            ..self.clone()
        }
    }

    /// The one-line form (a secret: it lets a host join), in a buffer
    /// wiped when dropped.
    pub fn encode(&self) -> Zeroizing<String> {
        let enrol = self.enrol.to_string();
        let mut bytes = Zeroizing::new(Vec::with_capacity(72 + enrol.len()));
        bytes.extend_from_slice(self.hub_key.as_bytes());
        bytes.extend_from_slice(&unhex(&self.window).expect("ids are hex"));
        bytes.extend_from_slice(&self.secret[..]);
        bytes.extend_from_slice(enrol.as_bytes());
        // Sized once: a growing String would leave copies in freed memory.
        let mut text = Zeroizing::new(String::with_capacity(
            PREFIX.len() + bytes.len() * 4 / 3 + 4,
        ));
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&bytes[..], &mut text);
        text
    }

    /// Parses the one-line form.
    pub fn decode(text: &str) -> Result<Token, TokenError> {
        let body = text.trim().strip_prefix(PREFIX).ok_or(TokenError)?;
        if body.len() > MAX_TOKEN {
            return Err(TokenError);
        }
        let mut bytes = Zeroizing::new(vec![0u8; body.len()]);
        let n = URL_SAFE_NO_PAD
            .decode_slice(body, &mut bytes[..])
            .map_err(|_| TokenError)?;
        bytes.truncate(n);
        let result = (|| {
            if bytes.len() < 72 + 3 {
                return Err(TokenError);
            }
            let hub_key = PublicKey::from_bytes(bytes[..32].try_into().expect("32 bytes"));
            let window = hex(&bytes[32..40]);
            let mut secret = Zeroizing::new([0u8; 32]);
            secret.copy_from_slice(&bytes[40..72]);
            let enrol = std::str::from_utf8(&bytes[72..]).map_err(|_| TokenError)?;
            let enrol = Endpoint::parse(enrol).map_err(|_| TokenError)?;
            Ok(Token {
                enrol,
                hub_key,
                window,
                secret,
            })
        })();
        result
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_hides_the_secret() {
        let t = Token::generate(
            "192.0.2.1:51821".parse().unwrap(),
            PublicKey::from_bytes([7; 32]),
        );
        let shown = format!("{t:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex(&t.secret[..])));
    }

    proptest! {
        #[test]
        fn round_trips(key in proptest::array::uniform32(any::<u8>()),
                       host in "[a-z]{1,10}(\\.[a-z0-9]{0,9}[a-z]){0,2}|\\[(fd00|2001:db8)::[0-9a-f]{1,4}\\]|10\\.[1-9][0-9]?\\.0\\.1", port in 1u16..) {
            let t = Token::generate(format!("{host}:{port}").parse().unwrap(), PublicKey::from_bytes(key));
            prop_assert_eq!(Token::decode(&t.encode()).unwrap(), t);
        }

        #[test]
        fn decoding_never_panics(s in "kldwg1:[A-Za-z0-9_-]{0,140}|.{0,40}") {
            let _ = Token::decode(&s);
        }
    }
}
