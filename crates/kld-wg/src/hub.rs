//! The hub of a star: its state (enrolment windows and allocated
//! addresses, under `STATE_DIR/IFACE/`), the joins it answers, and revoking
//! peers. Every change takes the directory's lock, so concurrent joins and
//! commands never collide, and is written atomically.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::conf::{Config, Interface, Peer};
use crate::device::{self, Iface};
use crate::enrol::{self, Allocation, JoinAnswer, JoinRequest};
use crate::file::{write_atomic, DirLock};
use crate::key::{PrivateKey, PublicKey};
use crate::net::Cidr;
use crate::token::{hex, unhex, Token, WindowId};

/// Where hubs keep their state unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kld/wg";

/// The port joins are answered on unless told otherwise.
pub const DEFAULT_ENROL_PORT: u16 = 51821;

/// Why a hub operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// No hub was initialised for this interface.
    #[error("{0} is not a hub here (no {1})")]
    NotAHub(String, String),
    /// `init` on an interface that has a hub or a configuration already.
    #[error("{0} exists already: nothing was changed")]
    Exists(String),
    /// A value given to `init` is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No free address is left in the range.
    #[error("every address of {0} is allocated")]
    Full(Cidr),
    /// No such window.
    #[error("no enrolment window {0}")]
    NoWindow(String),
    /// No such peer.
    #[error("no peer {0} on this hub")]
    NoPeer(String),
    /// The state or configuration could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The state file is not what kwg wrote.
    #[error("{path}: {message}")]
    State {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration file is wrong.
    #[error(transparent)]
    Conf(#[from] crate::conf::ConfError),
    /// Changing the live device failed.
    #[error(transparent)]
    Device(#[from] device::DeviceError),
}

/// An enrolment window, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Its id.
    pub id: WindowId,
    /// When it closes, seconds since the epoch.
    pub expires: u64,
    /// Joins still allowed.
    pub joins_left: u32,
    /// The keys that joined through it.
    pub joined: Vec<PublicKey>,
    /// The join key (derived from the token's secret), hex.
    join_key: String,
    /// Nonces of authenticated requests (a replay is refused).
    nonces: Vec<String>,
}

impl Window {
    /// Whether a join is possible at `now`.
    pub fn is_open(&self, now: u64) -> bool {
        now < self.expires && self.joins_left > 0
    }
}

/// A spoke the hub allocated an address to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spoke {
    /// Its key.
    pub public_key: PublicKey,
    /// Its address (host prefix).
    pub address: IpAddr,
    /// The name it gave.
    pub name: String,
    /// When it joined, seconds since the epoch.
    pub joined: u64,
}

/// A hub's state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubState {
    /// The address range (the hub has its first address).
    pub network: Cidr,
    /// The WireGuard endpoint spokes use (`host:port`).
    pub endpoint: String,
    /// Where joins are answered (`host:port`, also put in tokens).
    pub enrol: String,
    /// The wg-quick file of the interface.
    pub config: PathBuf,
    /// Windows, open or spent.
    pub windows: Vec<Window>,
    /// Spokes.
    pub spokes: Vec<Spoke>,
}

impl HubState {
    /// The hub's own address in the range.
    pub fn hub_address(&self) -> IpAddr {
        self.network.nth(1).expect("ranges have room for the hub")
    }

    /// The lowest free address, skipping the network address, the hub's
    /// and (IPv4) the broadcast address. Revoked addresses are free again.
    pub fn free_address(&self) -> Result<IpAddr, HubError> {
        let mut used: Vec<u128> = self
            .spokes
            .iter()
            .map(|s| self.network.offset_of(s.address))
            .collect();
        used.sort_unstable();
        let last = if self.network.addr.is_ipv4() && self.network.prefix < 31 {
            self.network.last_offset() - 1
        } else {
            self.network.last_offset()
        };
        let mut candidate: u128 = 2;
        for u in used {
            if u > candidate {
                break;
            }
            if u == candidate {
                candidate += 1;
            }
        }
        if candidate > last {
            return Err(HubError::Full(self.network));
        }
        Ok(self.network.nth(candidate).expect("inside the range"))
    }
}

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct HubInit {
    /// The address range for hub and spokes (IPv4 or IPv6, any size with
    /// room for the hub and one spoke).
    pub network: Cidr,
    /// The host (name or address) spokes reach the hub at.
    pub endpoint_host: String,
    /// The WireGuard port.
    pub listen_port: u16,
    /// Where joins are answered (`host:port`).
    pub enrol: String,
    /// The wg-quick file to create.
    pub config: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A hub: the state directory of one interface.
#[derive(Debug, Clone)]
pub struct Hub {
    iface: Iface,
    dir: PathBuf,
}

impl Hub {
    /// The hub of `iface` whose state lives under `state_dir/IFACE/`.
    pub fn new(state_dir: &Path, iface: &Iface) -> Hub {
        Hub {
            iface: iface.clone(),
            dir: state_dir.join(iface.as_str()),
        }
    }

    /// The interface.
    pub fn iface(&self) -> &Iface {
        &self.iface
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("hub.json")
    }

    /// Reads the state (without the lock: a snapshot).
    pub fn state(&self) -> Result<HubState, HubError> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HubError::NotAHub(
                    self.iface.to_string(),
                    path.display().to_string(),
                ))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| HubError::State {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    fn save(&self, state: &HubState) -> Result<(), HubError> {
        let path = self.state_path();
        let text = serde_json::to_string(state).expect("state serialises");
        write_atomic(&path, text.as_bytes()).map_err(io(&path))
    }

    fn lock(&self) -> Result<DirLock, HubError> {
        DirLock::take(&self.dir).map_err(io(&self.dir))
    }

    /// The configuration `init` would write (with a new key) and the state.
    pub fn plan_init(&self, init: &HubInit) -> Result<(Config, HubState), HubError> {
        let network = init.network.network();
        let room = network.last_offset();
        if room < 3 {
            return Err(HubError::Invalid(format!(
                "{network} is too small: it needs room for the hub and at least one spoke"
            )));
        }
        if init.config.exists() {
            return Err(HubError::Exists(init.config.display().to_string()));
        }
        if self.state_path().exists() {
            return Err(HubError::Exists(self.state_path().display().to_string()));
        }
        let state = HubState {
            network,
            endpoint: host_port(&init.endpoint_host, init.listen_port),
            enrol: init.enrol.clone(),
            config: init.config.clone(),
            windows: Vec::new(),
            spokes: Vec::new(),
        };
        let forwarding = if network.addr.is_ipv4() {
            "/proc/sys/net/ipv4/ip_forward"
        } else {
            "/proc/sys/net/ipv6/conf/all/forwarding"
        };
        let interface = Interface {
            addresses: vec![Cidr {
                addr: state.hub_address(),
                prefix: network.prefix,
            }],
            listen_port: Some(init.listen_port),
            private_key: Some(PrivateKey::generate()),
            // Spokes reach each other through the hub.
            post_up: vec![format!("echo 1 > {forwarding}")],
            ..Interface::default()
        };
        Ok((Config::new(&interface, &[]), state))
    }

    /// Initialises the hub: a new key in a new wg-quick file (0600) and the
    /// state. Nothing is written if anything is wrong.
    pub fn init(&self, init: &HubInit) -> Result<HubState, HubError> {
        let _lock = self.lock()?;
        let (config, state) = self.plan_init(init)?;
        if let Some(dir) = init.config.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&init.config);
        drop(file.map_err(io(&init.config))?);
        if let Err(e) = config.write(&init.config).map_err(io(&init.config)) {
            let _ = std::fs::remove_file(&init.config);
            return Err(e);
        }
        if let Err(e) = self.save(&state) {
            let _ = std::fs::remove_file(&init.config);
            return Err(e);
        }
        Ok(state)
    }

    fn hub_key(&self, state: &HubState, config: &Config) -> Result<PrivateKey, HubError> {
        config
            .interface()
            .private_key
            .clone()
            .ok_or_else(|| HubError::State {
                path: state.config.display().to_string(),
                message: "the hub's configuration has no PrivateKey".into(),
            })
    }

    /// Opens a window for `joins` joins during `secs` seconds from `now`;
    /// returns its token (the only copy of its secret).
    pub fn open_window(&self, secs: u64, joins: u32, now: u64) -> Result<Token, HubError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let key = self.hub_key(&state, &Config::read(&state.config)?)?;
        let token = Token::generate(state.enrol.clone(), key.public_key());
        state.windows.push(Window {
            id: token.window.clone(),
            expires: now.saturating_add(secs),
            joins_left: joins,
            joined: Vec::new(),
            join_key: hex(&token.join_key()[..]),
            nonces: Vec::new(),
        });
        self.save(&state)?;
        Ok(token)
    }

    /// Closes a window (no more joins through it).
    pub fn close_window(&self, id: &str) -> Result<(), HubError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let w = state
            .windows
            .iter_mut()
            .find(|w| w.id == id)
            .ok_or_else(|| HubError::NoWindow(id.to_owned()))?;
        w.joins_left = 0;
        self.save(&state)
    }

    /// Answers one join request at `now`. A refusal changes nothing.
    pub fn handle(&self, req: &JoinRequest, now: u64) -> Result<JoinAnswer, HubError> {
        let refuse = |reason: &str| {
            Ok(JoinAnswer::Refused {
                reason: reason.to_owned(),
            })
        };
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let before = Config::read(&state.config)?;
        let key = self.hub_key(&state, &before)?;
        if req.hub != key.public_key() {
            return refuse("the token names another hub");
        }
        let Some(wi) = state.windows.iter().position(|w| w.id == req.window) else {
            return refuse("no such enrolment window");
        };
        let join_key: Zeroizing<[u8; 32]> =
            match unhex(&state.windows[wi].join_key).and_then(|k| <[u8; 32]>::try_from(k).ok()) {
                Some(k) => Zeroizing::new(k),
                None => {
                    return Err(HubError::State {
                        path: self.state_path().display().to_string(),
                        message: format!("window {} has a malformed key", req.window),
                    })
                }
            };
        let dh = key.diffie_hellman(&req.spoke);
        let session = enrol::session_key(&join_key, &req.window, &dh, &req.hub, &req.spoke);
        if !req.verify(&session) {
            return refuse("the request is not signed with this window's secret");
        }
        let w = &state.windows[wi];
        if w.nonces.contains(&req.nonce) {
            return refuse("this request was seen before (replayed)");
        }
        if now >= w.expires {
            return refuse("the enrolment window has expired");
        }
        if w.joins_left == 0 {
            return refuse("the enrolment window has no joins left");
        }
        if req.time.abs_diff(now) > enrol::MAX_SKEW_SECS {
            return refuse("the request's clock is too far from the hub's");
        }
        if state.spokes.iter().any(|s| s.public_key == req.spoke) {
            return refuse("this key has joined already");
        }
        let address = state.free_address()?;
        let allocation = Allocation {
            address: Cidr {
                addr: address,
                prefix: state.network.prefix,
            },
            network: state.network,
            endpoint: state.endpoint.clone(),
        };
        let peer = Peer {
            allowed_ips: vec![Cidr::host(address)],
            ..Peer::new(req.spoke)
        };
        // File, then live device, then state; undo the earlier ones if a
        // later one fails.
        let mut after = before.clone();
        after.add_peer(&peer)?;
        after.write(&state.config).map_err(io(&state.config))?;
        let live = self.iface.backend().is_some();
        if live {
            if let Err(e) = device::add_peer(&self.iface, &peer) {
                let _ = before.write(&state.config);
                return Err(e.into());
            }
        }
        let w = &mut state.windows[wi];
        w.nonces.push(req.nonce.clone());
        w.joins_left -= 1;
        w.joined.push(req.spoke);
        state.spokes.push(Spoke {
            public_key: req.spoke,
            address,
            name: req.name.clone(),
            joined: now,
        });
        if let Err(e) = self.save(&state) {
            let _ = before.write(&state.config);
            if live {
                let _ = device::remove_peer(&self.iface, &req.spoke);
            }
            return Err(e);
        }
        Ok(enrol::accept(&session, req, allocation))
    }

    /// Finds a spoke by public key or address.
    pub fn find(&self, state: &HubState, peer: &str) -> Result<Spoke, HubError> {
        let by_key = PublicKey::from_base64(peer).ok();
        let by_addr = peer.parse::<IpAddr>().ok();
        state
            .spokes
            .iter()
            .find(|s| Some(s.public_key) == by_key || Some(s.address) == by_addr)
            .cloned()
            .ok_or_else(|| HubError::NoPeer(peer.to_owned()))
    }

    /// Revokes a spoke: removed from the live device, the file and the
    /// state; its address can be allocated again.
    pub fn revoke(&self, peer: &str) -> Result<Spoke, HubError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let spoke = self.find(&state, peer)?;
        let mut config = Config::read(&state.config)?;
        config.remove_peer(&spoke.public_key);
        if self.iface.backend().is_some() {
            device::remove_peer(&self.iface, &spoke.public_key)?;
        }
        config.write(&state.config).map_err(io(&state.config))?;
        state.spokes.retain(|s| s.public_key != spoke.public_key);
        self.save(&state)?;
        Ok(spoke)
    }

    /// Answers joins on `listener` until it fails; each connection is
    /// served on a thread of its own (the lock orders them). `log` is told
    /// each outcome (never a secret).
    pub fn serve(&self, listener: TcpListener, log: &(dyn Fn(&str) + Sync)) -> std::io::Result<()> {
        std::thread::scope(|s| loop {
            let (stream, peer) = listener.accept()?;
            s.spawn(move || {
                let outcome = self.serve_one(stream);
                log(&format!("{peer}: {outcome}"));
            });
        })
    }

    fn serve_one(&self, stream: TcpStream) -> String {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(e) => return format!("error: {e}"),
        };
        let mut line = String::new();
        if let Err(e) = BufReader::new(stream.take(enrol::MAX_MESSAGE)).read_line(&mut line) {
            return format!("error reading the request: {e}");
        }
        let (answer, outcome) = match serde_json::from_str::<JoinRequest>(&line) {
            Err(e) => (
                JoinAnswer::Refused {
                    reason: format!("not a join request: {e}"),
                },
                "refused: malformed request".to_owned(),
            ),
            Ok(req) => match self.handle(&req, crate::now()) {
                Ok(a @ JoinAnswer::Accepted { .. }) => {
                    let JoinAnswer::Accepted { allocation, .. } = &a else {
                        unreachable!()
                    };
                    let o = format!(
                        "joined {} ({}) as {}",
                        req.spoke, req.name, allocation.address
                    );
                    (a, o)
                }
                Ok(JoinAnswer::Refused { reason }) => {
                    let o = format!("refused {}: {reason}", req.spoke);
                    (JoinAnswer::Refused { reason }, o)
                }
                Err(e) => (
                    JoinAnswer::Refused {
                        reason: "the hub failed; see its log".into(),
                    },
                    format!("error for {}: {e}", req.spoke),
                ),
            },
        };
        let mut text = serde_json::to_string(&answer).expect("answers serialise");
        text.push('\n');
        let _ = writer.write_all(text.as_bytes());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(network: &str, spokes: &[&str]) -> HubState {
        HubState {
            network: network.parse().unwrap(),
            endpoint: "h:1".into(),
            enrol: "h:2".into(),
            config: "/nonexistent".into(),
            windows: vec![],
            spokes: spokes
                .iter()
                .map(|a| Spoke {
                    public_key: PrivateKey::generate().public_key(),
                    address: a.parse().unwrap(),
                    name: String::new(),
                    joined: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn allocation_fills_gaps_and_is_not_capped_at_254() {
        assert_eq!(
            state("10.0.0.0/24", &[])
                .free_address()
                .unwrap()
                .to_string(),
            "10.0.0.2"
        );
        assert_eq!(
            state("10.0.0.0/24", &["10.0.0.2", "10.0.0.4"])
                .free_address()
                .unwrap()
                .to_string(),
            "10.0.0.3"
        );
        let many: Vec<String> = (2..=254).map(|i| format!("10.0.0.{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            state("10.0.0.0/24", &refs).free_address(),
            Err(HubError::Full(_))
        ));
        assert_eq!(
            state("10.0.0.0/16", &refs)
                .free_address()
                .unwrap()
                .to_string(),
            "10.0.0.255"
        );
        assert_eq!(
            state("fd00::/64", &["fd00::2"])
                .free_address()
                .unwrap()
                .to_string(),
            "fd00::3"
        );
        assert!(matches!(
            state("10.0.0.0/30", &["10.0.0.2"]).free_address(),
            Err(HubError::Full(_))
        ));
    }
}
