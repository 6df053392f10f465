//! The join exchange: one request and one answer, JSON lines over TCP.
//!
//! Both sides derive a session key from the window's join key (which only
//! the token and the hub hold) and X25519 between the spoke's new key and
//! the hub's key (which only the spoke and the real hub can compute):
//! `K = HMAC-SHA256(join_key, "kld-wg v1" | window | DH | hub_pub | spoke_pub)`.
//! The request carries a MAC under K, so the hub knows the spoke holds the
//! token and the private key of the public key it sends; the answer carries
//! a MAC under K over the request's nonce and the allocation, so the spoke
//! knows the hub named in the token answered, and that this answer is for
//! this request. The spoke's private key never leaves it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::endpoint::Endpoint;
use crate::key::{PrivateKey, PublicKey};
use crate::net::Cidr;
use crate::token::{hex, unhex, Token};

/// How far a request's clock may be from the hub's, in seconds.
pub const MAX_SKEW_SECS: u64 = 300;

/// The most a message may be, in bytes.
pub const MAX_MESSAGE: u64 = 4096;

/// A join request, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinRequest {
    /// The window id.
    pub window: String,
    /// The hub key the spoke's token names.
    pub hub: PublicKey,
    /// The spoke's new public key.
    pub spoke: PublicKey,
    /// 16 random bytes, hex.
    pub nonce: String,
    /// The spoke's clock, seconds since the epoch.
    pub time: u64,
    /// A name for the spoke (its host name), shown by the hub.
    pub name: String,
    /// HMAC-SHA256 under the session key, hex.
    pub mac: String,
}

/// What the hub allocated, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Allocation {
    /// The spoke's address, with the network's prefix length.
    pub address: Cidr,
    /// The whole network (the spoke routes it through the hub).
    pub network: Cidr,
    /// The hub's WireGuard endpoint (`host:port`): checked when the answer
    /// is read, like everything from the network.
    pub endpoint: Endpoint,
}

/// The hub's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinAnswer {
    /// Joined: the allocation and a MAC proving the hub computed it.
    Accepted {
        /// What was allocated.
        allocation: Allocation,
        /// HMAC-SHA256 under the session key, hex.
        mac: String,
    },
    /// Refused, and why (not authenticated: the spoke only reports it).
    Refused {
        /// The reason.
        reason: String,
    },
}

/// Why a join failed on the spoke's side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The hub could not be reached or hung up.
    #[error("cannot talk to the hub at {addr}: {source}")]
    Network {
        /// The enrolment address.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The hub said no.
    #[error("the hub refused the join: {0}")]
    Refused(String),
    /// The answer did not prove it came from the hub the token names.
    #[error("the answer is not from the hub the token names (key {0}): refusing it")]
    NotTheHub(PublicKey),
    /// The answer was not a kwg answer.
    #[error("the hub's answer is malformed: {0}")]
    Malformed(String),
}

type HmacSha256 = Hmac<Sha256>;

/// The session key of a window, a DH result and both public keys.
pub(crate) fn session_key(
    join_key: &[u8; 32],
    window: &str,
    dh: &[u8; 32],
    hub: &PublicKey,
    spoke: &PublicKey,
) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(join_key).expect("any key length");
    mac.update(b"kld-wg v1");
    mac.update(window.as_bytes());
    mac.update(dh);
    mac.update(hub.as_bytes());
    mac.update(spoke.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn field(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

impl JoinRequest {
    fn mac_over(&self, key: &[u8; 32]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
        mac.update(b"request");
        for f in [
            self.window.as_bytes(),
            self.hub.as_bytes(),
            self.spoke.as_bytes(),
        ] {
            field(&mut mac, f);
        }
        field(&mut mac, self.nonce.as_bytes());
        field(&mut mac, &self.time.to_be_bytes());
        field(&mut mac, self.name.as_bytes());
        mac
    }

    /// A signed request for `token`, from the spoke holding `spoke`.
    pub fn new(token: &Token, spoke: &PrivateKey, name: &str, now: u64) -> JoinRequest {
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).expect("the kernel's random number generator");
        let mut req = JoinRequest {
            window: token.window.clone(),
            hub: token.hub_key,
            spoke: spoke.public_key(),
            nonce: hex(&nonce),
            time: now,
            name: name.to_owned(),
            mac: String::new(),
        };
        let key = req.session_key_spoke(token, spoke);
        req.mac = hex(&req.mac_over(&key).finalize().into_bytes());
        req
    }

    fn session_key_spoke(&self, token: &Token, spoke: &PrivateKey) -> Zeroizing<[u8; 32]> {
        let dh = spoke.diffie_hellman(&token.hub_key);
        session_key(
            &token.join_key(),
            &self.window,
            &dh,
            &token.hub_key,
            &self.spoke,
        )
    }

    /// Whether the MAC is right under `key` (constant time).
    pub(crate) fn verify(&self, key: &[u8; 32]) -> bool {
        let Some(tag) = unhex(&self.mac) else {
            return false;
        };
        self.mac_over(key).verify_slice(&tag).is_ok()
    }
}

fn answer_mac(key: &[u8; 32], req: &JoinRequest, a: &Allocation) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(b"answer");
    field(&mut mac, req.nonce.as_bytes());
    field(&mut mac, req.spoke.as_bytes());
    field(&mut mac, a.address.to_string().as_bytes());
    field(&mut mac, a.network.to_string().as_bytes());
    field(&mut mac, a.endpoint.to_string().as_bytes());
    mac
}

/// The hub's signed acceptance of `req`.
pub(crate) fn accept(key: &[u8; 32], req: &JoinRequest, allocation: Allocation) -> JoinAnswer {
    let mac = hex(&answer_mac(key, req, &allocation).finalize().into_bytes());
    JoinAnswer::Accepted { allocation, mac }
}

/// How long a whole exchange (connect, request, answer) may take.
pub const EXCHANGE_DEADLINE: Duration = Duration::from_secs(30);

/// Sends `req` to the hub at `addr` and returns its raw answer (at most
/// [`MAX_MESSAGE`] bytes, within [`EXCHANGE_DEADLINE`] in all).
pub fn exchange(addr: &Endpoint, req: &JoinRequest) -> Result<JoinAnswer, JoinError> {
    let started = Instant::now();
    let net = |source| JoinError::Network {
        addr: addr.to_string(),
        source,
    };
    let target = addr
        .to_string()
        .to_socket_addrs()
        .map_err(net)?
        .next()
        .ok_or_else(|| net(std::io::Error::other("the name has no address")))?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(10)).map_err(net)?;
    let left = || {
        EXCHANGE_DEADLINE
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the hub did not answer in time",
                )
            })
    };
    let mut line = serde_json::to_string(req).expect("requests serialise");
    line.push('\n');
    stream
        .set_write_timeout(Some(left().map_err(net)?))
        .map_err(net)?;
    stream.write_all(line.as_bytes()).map_err(net)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.contains(&b'\n') {
        stream
            .set_read_timeout(Some(left().map_err(net)?))
            .map_err(net)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(net(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", EXCHANGE_DEADLINE.as_secs()),
                )))
            }
            Err(e) => return Err(net(e)),
        };
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if answer.len() as u64 > MAX_MESSAGE {
            return Err(JoinError::Malformed(format!(
                "the answer is longer than {MAX_MESSAGE} bytes"
            )));
        }
    }
    let Some(end) = answer.iter().position(|&b| b == b'\n') else {
        // Hung up before a whole answer: the hub may have died half-way
        // (and allocated), so this is not a definite answer.
        return Err(net(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the hub closed the connection without answering",
        )));
    };
    serde_json::from_slice(&answer[..end]).map_err(|e| JoinError::Malformed(e.to_string()))
}

/// Joins the hub `token` names with the key `spoke`: sends a fresh request,
/// and returns the allocation only if the answer proves the hub holds the
/// private key the token pins.
pub fn join(
    token: &Token,
    spoke: &PrivateKey,
    name: &str,
    now: u64,
) -> Result<Allocation, JoinError> {
    let req = JoinRequest::new(token, spoke, name, now);
    check_answer(token, spoke, &req, exchange(&token.enrol, &req)?)
}

/// Checks the hub's answer to `req` (see [`join`]).
pub fn check_answer(
    token: &Token,
    spoke: &PrivateKey,
    req: &JoinRequest,
    answer: JoinAnswer,
) -> Result<Allocation, JoinError> {
    match answer {
        JoinAnswer::Refused { reason } => Err(JoinError::Refused(reason)),
        JoinAnswer::Accepted { allocation, mac } => {
            let key = req.session_key_spoke(token, spoke);
            let ok = unhex(&mac).is_some_and(|tag| {
                answer_mac(&key, req, &allocation)
                    .verify_slice(&tag)
                    .is_ok()
            });
            if !ok {
                return Err(JoinError::NotTheHub(token.hub_key));
            }
            if !allocation.network.contains(allocation.address.addr) {
                return Err(JoinError::Malformed(format!(
                    "address {} is outside network {}",
                    allocation.address, allocation.network
                )));
            }
            Ok(allocation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Token, PrivateKey, PrivateKey) {
        let hub = PrivateKey::generate();
        let token = Token::generate("192.0.2.1:51821".parse().unwrap(), hub.public_key());
        (token, hub, PrivateKey::generate())
    }

    fn hub_key(token: &Token, hub: &PrivateKey, req: &JoinRequest) -> Zeroizing<[u8; 32]> {
        let dh = hub.diffie_hellman(&req.spoke);
        session_key(
            &token.join_key(),
            &req.window,
            &dh,
            &hub.public_key(),
            &req.spoke,
        )
    }

    fn allocation() -> Allocation {
        Allocation {
            address: "10.250.0.2/24".parse().unwrap(),
            network: "10.250.0.0/24".parse().unwrap(),
            endpoint: "192.0.2.1:51820".parse().unwrap(),
        }
    }

    #[test]
    fn an_answer_naming_a_bad_endpoint_is_refused_when_read() {
        // The hub's answer is untrusted: a hostile hub (it holds its key,
        // so its MAC is good) cannot slip a second line into the spoke's
        // file through the endpoint.
        let (token, hub, spoke) = setup();
        let req = JoinRequest::new(&token, &spoke, "s1", 1000);
        let key = hub_key(&token, &hub, &req);
        let good = serde_json::to_string(&accept(&key, &req, allocation())).unwrap();
        assert!(serde_json::from_str::<JoinAnswer>(&good).is_ok());
        for bad in [
            "192.0.2.1:51820\\n[Peer]\\nPublicKey = x",
            "192.0.2.1:51820 ",
            "192.0.2.1",
            "\\u001b[2J:1",
        ] {
            let json = good.replace("192.0.2.1:51820", bad);
            assert_ne!(json, good);
            assert!(serde_json::from_str::<JoinAnswer>(&json).is_err(), "{json}");
        }
    }

    #[test]
    fn both_sides_agree_and_forgeries_fail() {
        let (token, hub, spoke) = setup();
        let req = JoinRequest::new(&token, &spoke, "s1", 1000);
        let key = hub_key(&token, &hub, &req);
        assert!(req.verify(&key));
        let answer = accept(&key, &req, allocation());
        assert_eq!(
            check_answer(&token, &spoke, &req, answer.clone()).unwrap(),
            allocation()
        );

        // A wrong secret: the hub's check fails.
        let forged = token.with_secret([9; 32]);
        let bad = JoinRequest::new(&forged, &spoke, "s1", 1000);
        assert!(!bad.verify(&hub_key(&token, &hub, &bad)));

        // A tampered request fails.
        let mut tampered = req.clone();
        tampered.name = "other".into();
        assert!(!tampered.verify(&key));

        // An impostor hub (other private key, same token secret) cannot
        // answer: the spoke refuses it.
        let impostor = PrivateKey::generate();
        let fake_key = hub_key(&token, &impostor, &req);
        let fake = accept(&fake_key, &req, allocation());
        assert!(matches!(
            check_answer(&token, &spoke, &req, fake),
            Err(JoinError::NotTheHub(_))
        ));

        // An answer to another request is refused too.
        let other = JoinRequest::new(&token, &spoke, "s1", 1000);
        assert!(check_answer(&token, &spoke, &other, answer).is_err());
    }
}
