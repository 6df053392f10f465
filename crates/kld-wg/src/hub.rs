//! The hub of a star: its state (enrolment windows and allocated
//! addresses, under `STATE_DIR/IFACE/`), the joins it answers, and revoking
//! peers. Every change and every read takes the directory's lock, so
//! concurrent joins and commands never collide.
//!
//! The state is a snapshot, `hub.json` (written atomically), and a
//! [`journal`](crate::journal) of the changes since, each numbered: a
//! change appends one record (one small write and `fdatasync`), so its cost
//! does not grow with the number of spokes. When the journal outgrows the
//! snapshot (and at least [`COMPACT_AT`] bytes), and when `serve` starts,
//! it is folded into a new snapshot; records the snapshot already holds
//! (a crash between the two steps) are skipped by their number.

use std::borrow::Cow;
use std::net::{IpAddr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use kld_fs::lock::{Lock, LockError};
use zeroize::Zeroizing;

use crate::conf::{Config, Interface, Peer};
use crate::device::{self, Iface};
use crate::endpoint::{Endpoint, Host};
use crate::enrol::{self, Allocation, JoinAnswer, JoinRequest};
use crate::file;
use crate::journal::{Contents, Journal};
use crate::key::{PrivateKey, PublicKey};
use crate::net::Cidr;
use crate::server;
use crate::token::{hex, unhex, Token, WindowId};

/// Where hubs keep their state unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kld/wg";

/// The port joins are answered on unless told otherwise.
pub const DEFAULT_ENROL_PORT: u16 = 51821;

/// The journal is folded into the snapshot once it is longer than both
/// the snapshot and this many bytes.
pub const COMPACT_AT: u64 = 64 * 1024;

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
    /// Another command holds the interface's lock (with `Hub::try_lock`).
    #[error(transparent)]
    Locked(#[from] LockError),
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
    pub endpoint: Endpoint,
    /// Where joins are answered (`host:port`, also put in tokens).
    pub enrol: Endpoint,
    /// The wg-quick file of the interface.
    pub config: PathBuf,
    /// Windows, open or spent.
    pub windows: Vec<Window>,
    /// Spokes.
    pub spokes: Vec<Spoke>,
    /// The number of the last journal record this state holds.
    #[serde(default)]
    seq: u64,
}

/// One change to a hub's state, as its journal records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Change {
    /// A window was opened.
    Open(Window),
    /// A window was closed.
    Close { window: WindowId },
    /// A spoke joined through a window with a request carrying `nonce`.
    Join {
        window: WindowId,
        nonce: String,
        spoke: Spoke,
    },
    /// A spoke was revoked.
    Revoke { public_key: PublicKey },
}

/// A journal record: a change and its number.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    seq: u64,
    change: Change,
}

/// The state as read under the lock, and the sizes that decide where the
/// next record goes and when to compact.
#[derive(Debug)]
struct Loaded {
    state: HubState,
    journal_len: u64,
    snapshot_len: u64,
}

/// What tells whether a file changed without reading it: its device,
/// inode, size and change time (`None`: missing).
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.len(), m.ctime(), m.ctime_nsec()))
}

/// The state and the hub's configuration as this hub last left them, and
/// the stamps of the files they came from.
#[derive(Debug)]
struct Current {
    loaded: Loaded,
    snapshot: Stamp,
    config: Config,
    config_stamp: Stamp,
}

impl HubState {
    /// The hub's own address in the range.
    pub fn hub_address(&self) -> IpAddr {
        self.network.nth(1).expect("ranges have room for the hub")
    }

    /// The lowest free address, skipping the network address, the hub's,
    /// (IPv4) the broadcast address, and any address a peer of `config`
    /// routes as a single host (a peer added by hand, or one a crash left in
    /// the file before the state recorded it). Revoked addresses are free
    /// again.
    pub fn free_address(&self, config: &Config) -> Result<IpAddr, HubError> {
        let host_prefix = if self.network.addr.is_ipv4() { 32 } else { 128 };
        let in_file = config
            .peers()
            .iter()
            .flat_map(|p| &p.allowed_ips)
            .filter(|c| c.prefix == host_prefix && self.network.contains(c.addr))
            .map(|c| c.addr);
        let mut used: Vec<u128> = self
            .spokes
            .iter()
            .map(|s| s.address)
            .chain(in_file)
            .map(|a| self.network.offset_of(a))
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

    fn window_mut(&mut self, id: &str) -> Option<&mut Window> {
        self.windows.iter_mut().find(|w| w.id == id)
    }

    /// Applies one journal record's change.
    fn apply(&mut self, change: Change) -> Result<(), String> {
        match change {
            Change::Open(w) => self.windows.push(w),
            Change::Close { window } => {
                self.window_mut(&window)
                    .ok_or_else(|| format!("closes an unknown window {window}"))?
                    .joins_left = 0;
            }
            Change::Join {
                window,
                nonce,
                spoke,
            } => {
                let w = self
                    .window_mut(&window)
                    .ok_or_else(|| format!("joins through an unknown window {window}"))?;
                w.nonces.push(nonce);
                w.joins_left = w.joins_left.saturating_sub(1);
                w.joined.push(spoke.public_key);
                self.spokes.push(spoke);
            }
            Change::Revoke { public_key } => self.spokes.retain(|s| s.public_key != public_key),
        }
        Ok(())
    }
}

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct HubInit {
    /// The address range for hub and spokes (IPv4 or IPv6, any size with
    /// room for the hub and one spoke).
    pub network: Cidr,
    /// The host (name or address) spokes reach the hub at.
    pub endpoint_host: Host,
    /// The WireGuard port.
    pub listen_port: u16,
    /// Where joins are answered (`host:port`).
    pub enrol: Endpoint,
    /// The wg-quick file to create.
    pub config: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The longest spoke name a hub accepts.
pub const MAX_SPOKE_NAME: usize = 64;

/// Checks a spoke's name: 1 to [`MAX_SPOKE_NAME`] characters, letters,
/// digits, `.`, `_` and `-`, not starting with `-` or `.` (a host name
/// fits; a terminal escape, a tab or a newline does not).
pub fn check_spoke_name(name: &str) -> Result<(), String> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > MAX_SPOKE_NAME {
        return Err(format!(
            "a spoke name has 1 to {MAX_SPOKE_NAME} characters, not {}",
            name.len()
        ));
    }
    if !name.bytes().all(ok_char) || name.starts_with(['-', '.']) {
        return Err(format!(
            "the spoke name {} may hold only letters, digits, '.', '_' and '-' \
             (and cannot start with '-' or '.')",
            printable(name)
        ));
    }
    Ok(())
}

/// `text` with every control or other non-printing character escaped
/// (`\e`, `\n`, `\t`, `\u{..}`) and backslashes doubled, for output
/// that a name must not be able to forge or recolour.
pub fn printable(text: &str) -> Cow<'_, str> {
    let plain = |c: char| !c.is_control() && c != '\\' && !is_invisible(c);
    if text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\u{1b}' => out.push_str("\\e"),
            c if plain(c) => out.push(c),
            c => out.extend(c.escape_default()),
        }
    }
    Cow::Owned(out)
}

/// Characters that print as nothing or reorder the text around them.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A hub: the state directory of one interface.
///
/// A `Hub` (and its clones) keeps the state and configuration it last
/// changed: under the lock, when the snapshot and the configuration file
/// are as it left them, it reads only the journal records appended since
/// (by other processes), so a join at the 500th spoke reads no more than
/// one at the first.
#[derive(Debug, Clone)]
pub struct Hub {
    iface: Iface,
    dir: PathBuf,
    kept: Arc<Mutex<Option<Current>>>,
    purpose: String,
    waiting: fn(&str),
}

impl Hub {
    /// The hub of `iface` whose state lives under `state_dir/IFACE/`.
    pub fn new(state_dir: &Path, iface: &Iface) -> Hub {
        Hub {
            iface: iface.clone(),
            dir: state_dir.join(iface.as_str()),
            kept: Arc::default(),
            purpose: format!("kwg on {iface}"),
            waiting: |_| {},
        }
    }

    /// The same hub, whose lock names `purpose` to any command kept
    /// waiting for it (`kwg revoke wg0`), and which calls `waiting` with
    /// the holder when it must itself wait for another command.
    pub fn with_purpose(mut self, purpose: &str, waiting: fn(&str)) -> Hub {
        self.purpose = purpose.to_owned();
        self.waiting = waiting;
        self
    }

    /// The interface.
    pub fn iface(&self) -> &Iface {
        &self.iface
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("hub.json")
    }

    fn journal(&self) -> Journal {
        Journal::new(self.dir.join("journal"))
    }

    fn not_a_hub(&self) -> HubError {
        HubError::NotAHub(
            self.iface.to_string(),
            self.state_path().display().to_string(),
        )
    }

    /// Reads the state: the snapshot with the journal's changes applied
    /// (under the lock, so never half a compaction).
    pub fn state(&self) -> Result<HubState, HubError> {
        if !self.state_path().exists() {
            return Err(self.not_a_hub());
        }
        let _lock = self.lock()?;
        Ok(self.load()?.state)
    }

    /// Reads the snapshot and the journal (the caller holds the lock).
    fn load(&self) -> Result<Loaded, HubError> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.not_a_hub()),
            Err(e) => return Err(io(&path)(e)),
        };
        let bad = |path: &Path, message: String| HubError::State {
            path: path.display().to_string(),
            message,
        };
        let state: HubState = serde_json::from_str(&text).map_err(|e| bad(&path, e.to_string()))?;
        let mut loaded = Loaded {
            state,
            journal_len: 0,
            snapshot_len: text.len() as u64,
        };
        self.replay(&mut loaded)?;
        Ok(loaded)
    }

    /// Applies the journal's records from `loaded.journal_len` on.
    fn replay(&self, loaded: &mut Loaded) -> Result<(), HubError> {
        let journal = self.journal();
        let bad = |message: String| HubError::State {
            path: journal.path().display().to_string(),
            message,
        };
        let contents: Contents<Record> =
            journal
                .read_from(loaded.journal_len)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidData => bad(e.to_string()),
                    _ => io(journal.path())(e),
                })?;
        let state = &mut loaded.state;
        for record in contents.records {
            if record.seq <= state.seq {
                continue; // already in the snapshot
            }
            if record.seq != state.seq + 1 {
                return Err(bad(format!(
                    "record {} follows record {}",
                    record.seq, state.seq
                )));
            }
            state
                .apply(record.change)
                .map_err(|m| bad(format!("record {}: {m}", record.seq)))?;
            state.seq = record.seq;
        }
        loaded.journal_len = contents.valid_len;
        Ok(())
    }

    /// The state and configuration (the caller holds the lock): what this
    /// hub kept, brought up to date by the journal's new records, if the
    /// snapshot and the configuration file are as it left them; otherwise
    /// read from the files.
    fn current(&self) -> Result<Current, HubError> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut c) = kept {
            let journal_len = std::fs::metadata(self.journal().path()).map_or(0, |m| m.len());
            if stamp(&self.state_path()) == c.snapshot
                && stamp(&c.loaded.state.config) == c.config_stamp
                && journal_len >= c.loaded.journal_len
            {
                if journal_len > c.loaded.journal_len {
                    self.replay(&mut c.loaded)?;
                }
                return Ok(c);
            }
        }
        let snapshot = stamp(&self.state_path());
        let loaded = self.load()?;
        let config_stamp = stamp(&loaded.state.config);
        let config = Config::read(&loaded.state.config)?;
        Ok(Current {
            loaded,
            snapshot,
            config,
            config_stamp,
        })
    }

    /// Keeps `c` (which matches the files: the caller changed them and
    /// holds the lock) for the next change.
    fn keep(&self, mut c: Current) {
        c.snapshot = stamp(&self.state_path());
        c.config_stamp = stamp(&c.loaded.state.config);
        *self.kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(c);
    }

    /// Records `change` durably in the journal and applies it to `loaded`
    /// (the caller holds the lock). Folds the journal into the snapshot
    /// when it has grown past [`COMPACT_AT`] and the snapshot; should that
    /// fail, the change is still recorded and the next change tries again.
    fn commit(&self, loaded: &mut Loaded, change: Change) -> Result<(), HubError> {
        let record = Record {
            seq: loaded.state.seq + 1,
            change,
        };
        let journal = self.journal();
        loaded.journal_len = journal
            .append(loaded.journal_len, &record)
            .map_err(io(journal.path()))?;
        // Callers checked the change applies (`apply` changes nothing when
        // it fails).
        let state = &mut loaded.state;
        state
            .apply(record.change)
            .map_err(|message| HubError::State {
                path: journal.path().display().to_string(),
                message,
            })?;
        state.seq = record.seq;
        if loaded.journal_len > COMPACT_AT.max(loaded.snapshot_len) {
            if let Ok(len) = self.snapshot(&loaded.state) {
                loaded.snapshot_len = len;
                loaded.journal_len = 0;
            }
        }
        Ok(())
    }

    /// Writes `state` as the new snapshot, then empties the journal.
    fn snapshot(&self, state: &HubState) -> Result<u64, HubError> {
        let path = self.state_path();
        let text = serde_json::to_string(state).expect("state serialises");
        kld_fs::replace(&path, text.as_bytes(), 0o600).map_err(io(&path))?;
        let journal = self.journal();
        journal.clear().map_err(io(journal.path()))?;
        Ok(text.len() as u64)
    }

    /// Folds the journal into the snapshot; returns the state.
    pub fn compact(&self) -> Result<HubState, HubError> {
        if !self.state_path().exists() {
            return Err(self.not_a_hub());
        }
        let _lock = self.lock()?;
        let loaded = self.load()?;
        self.snapshot(&loaded.state)?;
        Ok(loaded.state)
    }

    fn lock(&self) -> Result<Lock, HubError> {
        lock_dir(&self.dir, &self.purpose, self.waiting)
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
        let endpoint = Endpoint::new(init.endpoint_host.clone(), init.listen_port)
            .map_err(|e| HubError::Invalid(e.to_string()))?;
        let state = HubState {
            network,
            endpoint,
            enrol: init.enrol.clone(),
            config: init.config.clone(),
            windows: Vec::new(),
            spokes: Vec::new(),
            seq: 0,
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
        Ok((Config::new(&interface, &[])?, state))
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
        // Claims the name (refused if it exists), 0600 from the start.
        drop(kld_fs::secret::create(&init.config).map_err(io(&init.config))?);
        if let Err(e) = config.write(&init.config).map_err(io(&init.config)) {
            let _ = std::fs::remove_file(&init.config);
            return Err(e);
        }
        if let Err(e) = self.snapshot(&state) {
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
        let mut c = self.current()?;
        let state = &c.loaded.state;
        let key = self.hub_key(state, &c.config)?;
        let token = Token::generate(state.enrol.clone(), key.public_key());
        let window = Window {
            id: token.window.clone(),
            expires: now.saturating_add(secs),
            joins_left: joins,
            joined: Vec::new(),
            join_key: hex(&token.join_key()[..]),
            nonces: Vec::new(),
        };
        self.commit(&mut c.loaded, Change::Open(window))?;
        self.keep(c);
        Ok(token)
    }

    /// Closes a window (no more joins through it).
    pub fn close_window(&self, id: &str) -> Result<(), HubError> {
        let _lock = self.lock()?;
        let mut c = self.current()?;
        if c.loaded.state.window_mut(id).is_none() {
            return Err(HubError::NoWindow(id.to_owned()));
        }
        let window = id.to_owned();
        self.commit(&mut c.loaded, Change::Close { window })?;
        self.keep(c);
        Ok(())
    }

    /// Answers one join request at `now`. A refusal changes nothing.
    pub fn handle(&self, req: &JoinRequest, now: u64) -> Result<JoinAnswer, HubError> {
        let _lock = self.lock()?;
        let mut c = self.current()?;
        // On an error `c` is dropped: the next change reads the files.
        let answer = self.answer(&mut c, req, now)?;
        self.keep(c);
        Ok(answer)
    }

    fn answer(&self, c: &mut Current, req: &JoinRequest, now: u64) -> Result<JoinAnswer, HubError> {
        let refuse = |reason: &str| {
            Ok(JoinAnswer::Refused {
                reason: reason.to_owned(),
            })
        };
        let (loaded, config) = (&mut c.loaded, &mut c.config);
        let state = &loaded.state;
        if let Err(why) = check_spoke_name(&req.name) {
            return refuse(&why);
        }
        let key = self.hub_key(state, config)?;
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
        if req.time.abs_diff(now) > enrol::MAX_SKEW_SECS {
            return refuse("the request's clock is too far from the hub's");
        }
        if let Some(s) = state.spokes.iter().find(|s| s.public_key == req.spoke) {
            // A spoke asking again with the key it joined with (its first
            // answer was lost: killed, or the network failed): the same
            // address again. It proved it holds the token's secret and the
            // key; nothing is allocated or spent.
            let allocation = Allocation {
                address: Cidr {
                    addr: s.address,
                    prefix: state.network.prefix,
                },
                network: state.network,
                endpoint: state.endpoint.clone(),
            };
            return Ok(enrol::accept(&session, req, allocation));
        }
        if now >= w.expires {
            return refuse("the enrolment window has expired");
        }
        if w.joins_left == 0 {
            return refuse("the enrolment window has no joins left");
        }
        let path = state.config.clone();
        if config.peer(&req.spoke).is_some() {
            // In the file but not in the state: a join the hub was killed
            // in the middle of (the file was appended, the record not
            // written). The spoke proved it holds the key: start again.
            config.remove_peer(&req.spoke);
            config.write(&path).map_err(io(&path))?;
        }
        let state = &loaded.state;
        let address = state.free_address(config)?;
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
        // File (appended), then live device, then state (the journal
        // record commits the join); undo the earlier ones if a later one
        // fails.
        let file_len = config.append_peer(&path, &peer)?;
        let live = self.iface.backend().is_some();
        if live {
            if let Err(e) = device::add_peer(&self.iface, &peer) {
                // Undo the append so the file does not name a peer the state lacks.
                let _ = file::truncate(&path, file_len);
                return Err(e.into());
            }
        }
        let join = Change::Join {
            window: req.window.clone(),
            nonce: req.nonce.clone(),
            spoke: Spoke {
                public_key: req.spoke,
                address,
                name: req.name.clone(),
                joined: now,
            },
        };
        if let Err(e) = self.commit(loaded, join) {
            let _ = file::truncate(&path, file_len);
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
        let mut c = self.current()?;
        let state = &c.loaded.state;
        let spoke = self.find(state, peer)?;
        c.config.remove_peer(&spoke.public_key);
        if self.iface.backend().is_some() {
            device::remove_peer(&self.iface, &spoke.public_key)?;
        }
        c.config.write(&state.config).map_err(io(&state.config))?;
        let public_key = spoke.public_key;
        self.commit(&mut c.loaded, Change::Revoke { public_key })?;
        self.keep(c);
        Ok(spoke)
    }

    /// Answers joins on `listener` with [`server::Limits::for_this_process`]
    /// (see [`crate::server`]): never a thread per connection, one
    /// deadline per exchange, a size cap per request, and accept errors
    /// (out of file descriptors) waited out rather than fatal. `log` is
    /// told each outcome (never a secret; names escaped).
    pub fn serve(&self, listener: TcpListener, log: &(dyn Fn(&str) + Sync)) -> std::io::Result<()> {
        self.serve_with(listener, server::Limits::for_this_process(), log)
    }

    /// [`Hub::serve`] with other limits.
    pub fn serve_with(
        &self,
        listener: TcpListener,
        limits: server::Limits,
        log: &(dyn Fn(&str) + Sync),
    ) -> std::io::Result<()> {
        server::serve(listener, limits, &|line| self.answer_line(line), log)
    }

    /// The answer to one request line, and what the log says of it.
    pub fn answer_line(&self, line: &[u8]) -> (JoinAnswer, String) {
        match serde_json::from_slice::<JoinRequest>(line) {
            Err(e) => (
                JoinAnswer::Refused {
                    reason: format!("not a join request: {e}"),
                },
                "refused: malformed request".to_owned(),
            ),
            Ok(req) => {
                let name = printable(&req.name).into_owned();
                match self.handle(&req, crate::now()) {
                    Ok(a @ JoinAnswer::Accepted { .. }) => {
                        let JoinAnswer::Accepted { allocation, .. } = &a else {
                            unreachable!()
                        };
                        let o = format!("joined {} ({name}) as {}", req.spoke, allocation.address);
                        (a, o)
                    }
                    Ok(JoinAnswer::Refused { reason }) => {
                        let o = format!("refused {} ({name}): {}", req.spoke, printable(&reason));
                        (JoinAnswer::Refused { reason }, o)
                    }
                    Err(e) => (
                        JoinAnswer::Refused {
                            reason: "the hub failed; see its log".into(),
                        },
                        format!("error for {}: {e}", req.spoke),
                    ),
                }
            }
        }
    }
}

/// Takes the lock of an interface's state directory `dir` (made `0700` if
/// missing), waiting for another command that holds it; `waiting` is told
/// who that is (`pid 812 (kwg revoke wg0)`) before the wait.
pub fn lock_dir(dir: &Path, purpose: &str, waiting: impl FnOnce(&str)) -> Result<Lock, HubError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    Ok(Lock::acquire(&dir.join("lock"), purpose, waiting)?)
}

/// The lock every command that changes interface `iface` (its wg-quick
/// file, its live device, its hub state) takes: `STATE_DIR/IFACE/lock`.
pub fn lock_iface(
    state_dir: &Path,
    iface: &Iface,
    purpose: &str,
    waiting: impl FnOnce(&str),
) -> Result<Lock, HubError> {
    lock_dir(&state_dir.join(iface.as_str()), purpose, waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(network: &str, spokes: &[&str]) -> HubState {
        HubState {
            network: network.parse().unwrap(),
            endpoint: "h:1".parse().unwrap(),
            enrol: "h:2".parse().unwrap(),
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
            seq: 0,
        }
    }

    fn empty() -> Config {
        Config::new(&Interface::default(), &[]).unwrap()
    }

    #[test]
    fn allocation_fills_gaps_and_is_not_capped_at_254() {
        assert_eq!(
            state("10.0.0.0/24", &[])
                .free_address(&empty())
                .unwrap()
                .to_string(),
            "10.0.0.2"
        );
        assert_eq!(
            state("10.0.0.0/24", &["10.0.0.2", "10.0.0.4"])
                .free_address(&empty())
                .unwrap()
                .to_string(),
            "10.0.0.3"
        );
        let many: Vec<String> = (2..=254).map(|i| format!("10.0.0.{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            state("10.0.0.0/24", &refs).free_address(&empty()),
            Err(HubError::Full(_))
        ));
        assert_eq!(
            state("10.0.0.0/16", &refs)
                .free_address(&empty())
                .unwrap()
                .to_string(),
            "10.0.0.255"
        );
        assert_eq!(
            state("fd00::/64", &["fd00::2"])
                .free_address(&empty())
                .unwrap()
                .to_string(),
            "fd00::3"
        );
        assert!(matches!(
            state("10.0.0.0/30", &["10.0.0.2"]).free_address(&empty()),
            Err(HubError::Full(_))
        ));
        // A peer in the file (added by hand) holds its address too.
        let mut file = empty();
        file.add_peer(&Peer {
            allowed_ips: vec!["10.0.0.2/32".parse().unwrap()],
            ..Peer::new(PrivateKey::generate().public_key())
        })
        .unwrap();
        assert_eq!(
            state("10.0.0.0/24", &[])
                .free_address(&file)
                .unwrap()
                .to_string(),
            "10.0.0.3"
        );
    }

    /// A hub in a temporary directory, with no live device.
    fn hub() -> (tempfile::TempDir, Hub, Token) {
        let dir = tempfile::tempdir().unwrap();
        let iface = Iface::new("kwgunit0").unwrap();
        let hub = Hub::new(&dir.path().join("state"), &iface);
        hub.init(&HubInit {
            network: "10.77.0.0/16".parse().unwrap(),
            endpoint_host: "192.0.2.1".parse().unwrap(),
            listen_port: 51820,
            enrol: "192.0.2.1:51821".parse().unwrap(),
            config: dir.path().join("etc/kwgunit0.conf"),
        })
        .unwrap();
        let token = hub.open_window(3600, 10_000, crate::now()).unwrap();
        (dir, hub, token)
    }

    fn join(hub: &Hub, token: &Token, name: &str) -> Result<Allocation, HubError> {
        let key = PrivateKey::generate();
        let req = JoinRequest::new(token, &key, name, crate::now());
        match hub.handle(&req, crate::now())? {
            JoinAnswer::Accepted { allocation, .. } => Ok(allocation),
            JoinAnswer::Refused { reason } => panic!("refused: {reason}"),
        }
    }

    fn file_peers(hub: &Hub) -> Vec<PublicKey> {
        let state = hub.state().unwrap();
        let config = Config::read(&state.config).unwrap();
        config.peers().iter().map(|p| p.public_key).collect()
    }

    #[test]
    fn joins_are_journalled_and_survive_a_torn_record() {
        let (_dir, hub, token) = hub();
        let a = join(&hub, &token, "a").unwrap();
        assert_eq!(a.address.to_string(), "10.77.0.2/16");
        let before = hub.state().unwrap();
        assert_eq!(before.spokes.len(), 1);
        // The snapshot is untouched by the join: the journal holds it.
        let snapshot: HubState =
            serde_json::from_str(&std::fs::read_to_string(hub.state_path()).unwrap()).unwrap();
        assert!(snapshot.spokes.is_empty());

        // A crash in the middle of appending the next record: a torn line.
        let journal = hub.journal();
        let whole = std::fs::read(journal.path()).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..whole.len() / 2]);
        std::fs::write(journal.path(), &torn).unwrap();
        assert_eq!(hub.state().unwrap(), before, "the torn record is ignored");

        // The next join writes over it; both joins are there.
        let b = join(&hub, &token, "b").unwrap();
        assert_eq!(b.address.to_string(), "10.77.0.3/16");
        let after = hub.state().unwrap();
        let names: Vec<&str> = after.spokes.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(after.windows[0].joined.len(), 2);
        assert_eq!(
            file_peers(&hub),
            after
                .spokes
                .iter()
                .map(|s| s.public_key)
                .collect::<Vec<_>>()
        );

        // Damage before good records is reported, not skipped.
        let mut bad = std::fs::read(journal.path()).unwrap();
        bad[0] ^= 1;
        std::fs::write(journal.path(), &bad).unwrap();
        let e = hub.state().unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn hubs_in_two_processes_see_each_others_changes() {
        let (dir, a, token) = hub();
        // Another process: a Hub of its own over the same directory.
        let b = Hub::new(&dir.path().join("state"), a.iface());
        let mut given = Vec::new();
        for (i, h) in [&a, &b, &a, &a, &b, &a].into_iter().enumerate() {
            given.push(join(h, &token, &format!("s{i}")).unwrap().address.addr);
        }
        let mut unique = given.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), given.len(), "{given:?}");
        // b revokes (rewriting the file), then b compacts: a notices both.
        b.revoke(&given[1].to_string()).unwrap();
        assert_eq!(join(&a, &token, "again").unwrap().address.addr, given[1]);
        b.compact().unwrap();
        let next = join(&a, &token, "last").unwrap().address.addr;
        assert!(!given.contains(&next));
        let state = a.state().unwrap();
        assert_eq!(state.spokes.len(), 7);
        assert_eq!(
            file_peers(&a),
            state
                .spokes
                .iter()
                .map(|s| s.public_key)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn compaction_keeps_the_state_and_revoked_addresses_are_reused() {
        let (_dir, hub, token) = hub();
        let mut addresses = Vec::new();
        // Enough joins for the journal to pass COMPACT_AT at least once.
        for i in 0..300 {
            addresses.push(join(&hub, &token, &format!("s{i}")).unwrap().address.addr);
        }
        let state = hub.state().unwrap();
        assert_eq!(state.spokes.len(), 300);
        let snapshot: HubState =
            serde_json::from_str(&std::fs::read_to_string(hub.state_path()).unwrap()).unwrap();
        assert!(!snapshot.spokes.is_empty(), "the journal was compacted");
        assert!(
            std::fs::metadata(hub.journal().path()).unwrap().len()
                <= COMPACT_AT.max(std::fs::metadata(hub.state_path()).unwrap().len()) + 4096
        );
        let mut sorted = addresses.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 300, "no address given twice");

        // Revoke one: its address is the next one given.
        let gone = hub.revoke(&addresses[7].to_string()).unwrap();
        assert_eq!(gone.name, "s7");
        assert!(!file_peers(&hub).contains(&gone.public_key));
        assert_eq!(
            join(&hub, &token, "again").unwrap().address.addr,
            addresses[7]
        );

        // A crash after a new snapshot but before the journal was emptied:
        // the records it already holds are skipped.
        let journal = std::fs::read(hub.journal().path()).unwrap();
        assert!(!journal.is_empty());
        let state = hub.compact().unwrap();
        std::fs::write(hub.journal().path(), &journal).unwrap();
        assert_eq!(hub.state().unwrap(), state);
        assert_eq!(state.spokes.len(), 300);
    }
}
