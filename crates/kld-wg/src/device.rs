//! Live WireGuard devices, kernel or userspace (the UAPI socket
//! `/var/run/wireguard/IFACE.sock` that `wireguard-go` serves). Changes go
//! through `wireguard-control`'s two backends, as do reads of kernel
//! devices; userspace devices are read by the private `uapi` reader.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use wireguard_control::{
    AllowedIp, Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder,
};

use crate::conf::{Config, Peer};
use crate::key::PublicKey;
use crate::net::Cidr;
use crate::uapi::{self, Bad};

/// Why a live device operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The interface name is not one Linux accepts.
    #[error("{0:?} is not an interface name (1-15 characters, no '/', ' ' or ':')")]
    Name(String),
    /// There is no WireGuard device of that name.
    #[error("no WireGuard interface {0} (kernel or userspace)")]
    Missing(String),
    /// Talking to the device failed.
    #[error("WireGuard interface {iface}: {action}: {source}")]
    Io {
        /// The interface.
        iface: String,
        /// What was being done.
        action: &'static str,
        /// What the backend said.
        source: std::io::Error,
    },
    /// A userspace device answered with something that is not the UAPI.
    #[error("WireGuard interface {iface}: its UAPI answer, line {line}: {reason}")]
    Protocol {
        /// The interface.
        iface: String,
        /// The line of the answer, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An endpoint that does not resolve.
    #[error("cannot resolve endpoint {0}")]
    Endpoint(String),
}

/// Where userspace implementations keep their UAPI sockets.
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// A checked interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iface(String);

impl Iface {
    /// Checks a name as the kernel would (and refuses a leading `-`).
    pub fn new(name: &str) -> Result<Iface, DeviceError> {
        let ok = !name.is_empty()
            && name.len() <= 15
            && !name.starts_with('-')
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-=+".contains(&b));
        if ok {
            Ok(Iface(name.to_owned()))
        } else {
            Err(DeviceError::Name(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn wg(&self) -> InterfaceName {
        self.0.parse().expect("checked names are valid")
    }

    /// Whether a link of this name exists in this network namespace (UAPI
    /// sockets are shared by all namespaces; links are not).
    pub fn exists(&self) -> bool {
        links_here().contains(&self.0)
    }

    /// The UAPI socket a userspace implementation serves for it.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(SOCKET_DIR).join(format!("{}.sock", self.0))
    }

    /// Which backend runs it, if it exists: userspace when its UAPI socket
    /// answers, otherwise the kernel.
    pub fn backend(&self) -> Option<Backend> {
        if !self.exists() {
            return None;
        }
        if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
            return Some(Backend::Userspace);
        }
        Device::get(&self.wg(), Backend::Kernel)
            .ok()
            .map(|_| Backend::Kernel)
    }
}

impl std::fmt::Display for Iface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A peer as the live device reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its key.
    pub public_key: PublicKey,
    /// Where its packets last came from (or the configured endpoint).
    pub endpoint: Option<SocketAddr>,
    /// Its allowed IPs.
    pub allowed_ips: Vec<Cidr>,
    /// The latest handshake, in seconds since the epoch.
    pub latest_handshake: Option<u64>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Its keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
}

/// How long a session lives without a new handshake (WireGuard's
/// REJECT_AFTER_TIME): a peer whose latest handshake is older is down.
pub const SESSION_SECS: u64 = 180;

impl PeerStatus {
    /// Whether the peer has a live session at `now` (seconds since the epoch).
    pub fn is_up(&self, now: u64) -> bool {
        self.latest_handshake
            .is_some_and(|t| now.saturating_sub(t) < SESSION_SECS)
    }
}

/// A device as it is now.
#[derive(Debug, Clone)]
pub struct DeviceStatus {
    /// Its name.
    pub iface: Iface,
    /// `kernel` or `userspace`.
    pub backend: &'static str,
    /// Its public key, if a private key is set.
    pub public_key: Option<PublicKey>,
    /// Its UDP port, if it has one.
    pub listen_port: Option<u16>,
    /// Its peers.
    pub peers: Vec<PeerStatus>,
}

/// The names of the links in the calling thread's network namespace, read
/// from `/proc/thread-self/net/dev`, which follows the thread's namespace
/// even where `/sys` was mounted for another.
fn links_here() -> Vec<String> {
    std::fs::read_to_string("/proc/thread-self/net/dev")
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(name, _)| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The WireGuard interfaces that exist in this network namespace (kernel,
/// and userspace: a UAPI socket whose link is here), sorted.
pub fn list() -> Vec<Iface> {
    let mut out: Vec<Iface> = Device::list(Backend::Kernel)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| Iface::new(&n.as_str_lossy()).ok())
        .collect();
    let links = links_here();
    if let Ok(dir) = std::fs::read_dir(SOCKET_DIR) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(iface) = name.strip_suffix(".sock").and_then(|n| Iface::new(n).ok()) {
                if links.contains(&iface.0) {
                    out.push(iface);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn io<'a>(
    iface: &'a Iface,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> DeviceError + 'a {
    move |source| DeviceError::Io {
        iface: iface.to_string(),
        action,
        source,
    }
}

fn backend(iface: &Iface) -> Result<Backend, DeviceError> {
    iface
        .backend()
        .ok_or_else(|| DeviceError::Missing(iface.to_string()))
}

/// Reads a device's state: one read through the backend that runs it
/// (userspace first, as `wg` does; the kernel when no UAPI socket answers).
/// Userspace devices are read by kld's own UAPI reader (see the crate
/// README), kernel devices through `wireguard-control`.
pub fn show(iface: &Iface) -> Result<DeviceStatus, DeviceError> {
    if !iface.exists() {
        return Err(DeviceError::Missing(iface.to_string()));
    }
    let no_socket = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        )
    };
    match uapi::get(&iface.socket()) {
        Ok(d) => Ok(DeviceStatus {
            iface: iface.clone(),
            backend: "userspace",
            public_key: d.public_key,
            listen_port: d.listen_port,
            peers: d.peers,
        }),
        Err(Bad::Io(e)) if no_socket(&e) => show_kernel(iface),
        Err(Bad::Io(e)) => Err(io(iface, "reading it")(e)),
        Err(Bad::Errno(n)) => Err(io(iface, "reading it")(std::io::Error::from_raw_os_error(
            n.abs(),
        ))),
        Err(Bad::Line { line, reason }) => Err(DeviceError::Protocol {
            iface: iface.to_string(),
            line,
            reason,
        }),
    }
}

fn show_kernel(iface: &Iface) -> Result<DeviceStatus, DeviceError> {
    let d = Device::get(&iface.wg(), Backend::Kernel)
        .map_err(|_| DeviceError::Missing(iface.to_string()))?;
    Ok(DeviceStatus {
        iface: iface.clone(),
        backend: "kernel",
        public_key: d.public_key.map(|k| PublicKey::from_bytes(k.0)),
        listen_port: d.listen_port.filter(|&p| p != 0),
        peers: d
            .peers
            .into_iter()
            .map(|p| PeerStatus {
                public_key: PublicKey::from_bytes(p.config.public_key.0),
                endpoint: p.config.endpoint,
                allowed_ips: p
                    .config
                    .allowed_ips
                    .iter()
                    .map(|a| Cidr {
                        addr: a.address,
                        prefix: a.cidr,
                    })
                    .collect(),
                latest_handshake: p
                    .stats
                    .last_handshake_time
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .filter(|&s| s > 0),
                rx_bytes: p.stats.rx_bytes,
                tx_bytes: p.stats.tx_bytes,
                persistent_keepalive: p.config.persistent_keepalive_interval.filter(|&k| k > 0),
            })
            .collect(),
    })
}

/// One change [`sync`] makes to a live device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The private key changes (the new public key is shown).
    Key(PublicKey),
    /// The listen port changes.
    ListenPort(u16),
    /// A peer is added.
    AddPeer(PublicKey),
    /// A peer's settings change (its session is kept).
    UpdatePeer(PublicKey),
    /// A peer is removed.
    RemovePeer(PublicKey),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Key(k) => write!(f, "set private key (public key {k})"),
            Change::ListenPort(p) => write!(f, "set listen port {p}"),
            Change::AddPeer(k) => write!(f, "add peer {k}"),
            Change::UpdatePeer(k) => write!(f, "update peer {k}"),
            Change::RemovePeer(k) => write!(f, "remove peer {k}"),
        }
    }
}

fn resolve(endpoint: &str) -> Result<SocketAddr, DeviceError> {
    endpoint
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| DeviceError::Endpoint(endpoint.to_owned()))
}

fn builder(p: &Peer) -> Result<PeerConfigBuilder, DeviceError> {
    let mut b = PeerConfigBuilder::new(&Key(*p.public_key.as_bytes())).replace_allowed_ips();
    let ips: Vec<AllowedIp> = p
        .allowed_ips
        .iter()
        .map(|c| AllowedIp {
            address: c.addr,
            cidr: c.prefix,
        })
        .collect();
    b = b.add_allowed_ips(&ips);
    b = match &p.preshared_key {
        Some(k) => b.set_preshared_key(Key(*k.as_bytes())),
        None => b.unset_preshared_key(),
    };
    if let Some(e) = &p.endpoint {
        b = b.set_endpoint(resolve(&e.to_string())?);
    }
    b = match p.persistent_keepalive {
        Some(k) => b.set_persistent_keepalive_interval(k),
        None => b.unset_persistent_keepalive(),
    };
    Ok(b)
}

fn same(live: &PeerStatus, want: &Peer) -> Result<bool, DeviceError> {
    let mut a = live.allowed_ips.clone();
    let mut b: Vec<Cidr> = want.allowed_ips.iter().map(Cidr::network).collect();
    a.sort();
    b.sort();
    let endpoint_same = match &want.endpoint {
        None => true, // a roaming peer keeps the endpoint it has
        Some(e) => live.endpoint == Some(resolve(&e.to_string())?),
    };
    // The live preshared key cannot be compared through every backend:
    // a file that names one always re-applies it (no session is lost).
    Ok(a == b
        && endpoint_same
        && live.persistent_keepalive == want.persistent_keepalive.filter(|&k| k > 0)
        && want.preshared_key.is_none())
}

/// What [`sync`] would change to make `iface` match `config`, as
/// `wg syncconf` does: peers not in the file are removed, peers that differ
/// are updated, and unchanged peers are not touched (they keep their
/// sessions).
pub fn plan_sync(iface: &Iface, config: &Config) -> Result<Vec<Change>, DeviceError> {
    let live = show(iface)?;
    let mut changes = Vec::new();
    if let Some(k) = &config.interface().private_key {
        if live.public_key != Some(k.public_key()) {
            changes.push(Change::Key(k.public_key()));
        }
    }
    if let Some(p) = config.interface().listen_port {
        if live.listen_port != Some(p) {
            changes.push(Change::ListenPort(p));
        }
    }
    for want in config.peers() {
        match live.peers.iter().find(|p| p.public_key == want.public_key) {
            None => changes.push(Change::AddPeer(want.public_key)),
            Some(l) if !same(l, want)? => changes.push(Change::UpdatePeer(want.public_key)),
            Some(_) => {}
        }
    }
    for l in &live.peers {
        if config.peer(&l.public_key).is_none() {
            changes.push(Change::RemovePeer(l.public_key));
        }
    }
    Ok(changes)
}

/// Applies `config` to the live device (see [`plan_sync`]); returns what
/// changed.
pub fn sync(iface: &Iface, config: &Config) -> Result<Vec<Change>, DeviceError> {
    let changes = plan_sync(iface, config)?;
    if changes.is_empty() {
        return Ok(changes);
    }
    let mut update = DeviceUpdate::new();
    for c in &changes {
        update = match c {
            Change::Key(_) => {
                let k = config
                    .interface()
                    .private_key
                    .as_ref()
                    .expect("planned from it");
                update.set_private_key(Key(*k.as_bytes()))
            }
            Change::ListenPort(p) => update.set_listen_port(*p),
            Change::AddPeer(k) | Change::UpdatePeer(k) => {
                update.add_peer(builder(config.peer(k).expect("planned from it"))?)
            }
            Change::RemovePeer(k) => update.remove_peer_by_key(&Key(*k.as_bytes())),
        };
    }
    apply(iface, update, "applying the configuration")?;
    Ok(changes)
}

fn apply(iface: &Iface, update: DeviceUpdate, action: &'static str) -> Result<(), DeviceError> {
    let b = backend(iface)?;
    update.apply(&iface.wg(), b).map_err(io(iface, action))?;
    kld_fs::fault::step(|| format!("{action} on the live {iface}"));
    Ok(())
}

/// Adds (or updates) one peer on the live device.
pub fn add_peer(iface: &Iface, peer: &Peer) -> Result<(), DeviceError> {
    apply(
        iface,
        DeviceUpdate::new().add_peer(builder(peer)?),
        "adding a peer",
    )
}

/// Removes one peer from the live device.
pub fn remove_peer(iface: &Iface, key: &PublicKey) -> Result<(), DeviceError> {
    apply(
        iface,
        DeviceUpdate::new().remove_peer_by_key(&Key(*key.as_bytes())),
        "removing a peer",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["wg0", "wg-mgmt", "a.b_c=d+e", "x23456789012345"] {
            Iface::new(ok).unwrap();
        }
        for bad in [
            "",
            "-wg",
            "a b",
            "a/b",
            "a:b",
            "x234567890123456",
            ".",
            "..",
        ] {
            assert!(Iface::new(bad).is_err(), "{bad:?}");
        }
    }
}
