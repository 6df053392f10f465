//! `wg-quick` configuration files: every key wg-quick knows, parsed with
//! line numbers in errors, rendered back byte for byte, and edited in place
//! (comments and order kept).

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::endpoint::Endpoint;
use crate::key::{KeyError, PresharedKey, PrivateKey, PublicKey};
use crate::net::Cidr;

/// Why a configuration file is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfError {
    /// A line that is not valid, with its number (from 1).
    #[error("{file}:{line}: {message}")]
    Line {
        /// The file (or `<text>`).
        file: String,
        /// The line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read or written, or has unsafe permissions.
    #[error(transparent)]
    File(#[from] KeyError),
}

/// The `[Interface]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// `Address`: the interface's addresses with their prefixes.
    pub addresses: Vec<Cidr>,
    /// `ListenPort`.
    pub listen_port: Option<u16>,
    /// `PrivateKey`.
    pub private_key: Option<PrivateKey>,
    /// `DNS`: servers and search domains, as written.
    pub dns: Vec<String>,
    /// `MTU`.
    pub mtu: Option<u32>,
    /// `Table`: `off`, `auto` or a table number or name.
    pub table: Option<String>,
    /// `FwMark`: a number, hexadecimal or `off`.
    pub fwmark: Option<String>,
    /// `PreUp` commands (`%i` stands for the interface).
    pub pre_up: Vec<String>,
    /// `PostUp` commands.
    pub post_up: Vec<String>,
    /// `PreDown` commands.
    pub pre_down: Vec<String>,
    /// `PostDown` commands.
    pub post_down: Vec<String>,
    /// `SaveConfig`.
    pub save_config: Option<bool>,
}

/// A `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `PublicKey`.
    pub public_key: PublicKey,
    /// `PresharedKey`.
    pub preshared_key: Option<PresharedKey>,
    /// `AllowedIPs`.
    pub allowed_ips: Vec<Cidr>,
    /// `Endpoint`: `host:port` or `[v6]:port`.
    pub endpoint: Option<Endpoint>,
    /// `PersistentKeepalive` in seconds (`off` is `None`).
    pub persistent_keepalive: Option<u16>,
}

impl Peer {
    /// A peer with only its key.
    pub fn new(public_key: PublicKey) -> Peer {
        Peer {
            public_key,
            preshared_key: None,
            allowed_ips: Vec::new(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Interface,
    Peer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Header(Section),
    Entry { section: Section, key: &'static str },
    Other,
}

/// A line as written (wiped when dropped: it may hold a key).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    raw: Zeroizing<String>,
    kind: Kind,
}

/// A wg-quick file: its lines as written plus the typed values they hold.
/// [`Config::render`] returns the text exactly as parsed, with any edits.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    lines: Vec<Line>,
    interface: Interface,
    peers: Vec<Peer>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the lines: they may hold the private key.
        f.debug_struct("Config")
            .field("interface", &self.interface)
            .field("peers", &self.peers)
            .finish()
    }
}

const INTERFACE_KEYS: &[&str] = &[
    "Address",
    "ListenPort",
    "PrivateKey",
    "DNS",
    "MTU",
    "Table",
    "FwMark",
    "PreUp",
    "PostUp",
    "PreDown",
    "PostDown",
    "SaveConfig",
];
const PEER_KEYS: &[&str] = &[
    "PublicKey",
    "PresharedKey",
    "AllowedIPs",
    "Endpoint",
    "PersistentKeepalive",
];

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn apply_interface(i: &mut Interface, key: &str, value: &str) -> Result<(), String> {
    let num = |what: &str| format!("{key} must be {what}, not {value:?}");
    match key {
        "Address" => {
            for a in list(value) {
                i.addresses.push(
                    a.parse()
                        .map_err(|e: crate::net::CidrError| e.to_string())?,
                );
            }
        }
        "ListenPort" => i.listen_port = Some(value.parse().map_err(|_| num("a port (0-65535)"))?),
        "PrivateKey" => {
            i.private_key = Some(PrivateKey::from_base64(value).map_err(|e| e.to_string())?)
        }
        "DNS" => i.dns.extend(list(value).map(str::to_owned)),
        "MTU" => i.mtu = Some(value.parse().map_err(|_| num("a number"))?),
        "Table" => i.table = Some(value.to_owned()),
        "FwMark" => {
            let ok = value == "off"
                || value.parse::<u32>().is_ok()
                || value
                    .strip_prefix("0x")
                    .is_some_and(|h| u32::from_str_radix(h, 16).is_ok());
            if !ok {
                return Err(num("a number, 0x-hexadecimal or off"));
            }
            i.fwmark = Some(value.to_owned());
        }
        "PreUp" => i.pre_up.push(value.to_owned()),
        "PostUp" => i.post_up.push(value.to_owned()),
        "PreDown" => i.pre_down.push(value.to_owned()),
        "PostDown" => i.post_down.push(value.to_owned()),
        "SaveConfig" => {
            i.save_config = Some(match value {
                "true" => true,
                "false" => false,
                _ => return Err(num("true or false")),
            })
        }
        _ => unreachable!("only known keys reach here"),
    }
    Ok(())
}

fn apply_peer(p: &mut Peer, key: &str, value: &str) -> Result<(), String> {
    match key {
        "PublicKey" => p.public_key = PublicKey::from_base64(value).map_err(|e| e.to_string())?,
        "PresharedKey" => {
            p.preshared_key = Some(PresharedKey::from_base64(value).map_err(|e| e.to_string())?)
        }
        "AllowedIPs" => {
            for a in list(value) {
                p.allowed_ips.push(
                    a.parse()
                        .map_err(|e: crate::net::CidrError| e.to_string())?,
                );
            }
        }
        "Endpoint" => {
            p.endpoint = Some(
                value
                    .parse()
                    .map_err(|e: crate::endpoint::EndpointError| e.to_string())?,
            )
        }
        "PersistentKeepalive" => {
            p.persistent_keepalive = if value == "off" {
                None
            } else {
                Some(value.parse().map_err(|_| {
                    format!("PersistentKeepalive must be seconds (0-65535) or off, not {value:?}")
                })?)
            }
        }
        _ => unreachable!("only known keys reach here"),
    }
    Ok(())
}

/// The canonical spelling of a key (wg-quick reads keys case-insensitively).
fn canonical(section: Section, key: &str) -> Option<&'static str> {
    let keys = match section {
        Section::Interface => INTERFACE_KEYS,
        Section::Peer => PEER_KEYS,
    };
    keys.iter().copied().find(|k| k.eq_ignore_ascii_case(key))
}

impl Config {
    /// Parses the text of a wg-quick file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfError> {
        let mut lines = Vec::new();
        let mut interface: Option<Interface> = None;
        let mut peers: Vec<Peer> = Vec::new();
        let mut peer_has_key: Vec<usize> = Vec::new();
        let mut section: Option<Section> = None;
        for (n, raw) in text.split_inclusive('\n').enumerate() {
            let err = |message: String| ConfError::Line {
                file: file.to_owned(),
                line: n + 1,
                message,
            };
            let content = raw.split('#').next().unwrap_or("").trim();
            let kind = if content.is_empty() {
                Kind::Other
            } else if content.starts_with('[') {
                let s = match content.to_ascii_lowercase().as_str() {
                    "[interface]" => {
                        if interface.is_some() {
                            return Err(err("a second [Interface] section".into()));
                        }
                        interface = Some(Interface::default());
                        Section::Interface
                    }
                    "[peer]" => {
                        peers.push(Peer::new(PublicKey::from_bytes([0; 32])));
                        peer_has_key.push(n + 1);
                        Section::Peer
                    }
                    _ => return Err(err(format!("unknown section {content}"))),
                };
                section = Some(s);
                Kind::Header(s)
            } else {
                let Some(s) = section else {
                    return Err(err("a key before any [Interface] or [Peer] section".into()));
                };
                let Some((key, value)) = content.split_once('=') else {
                    return Err(err(format!("expected KEY = VALUE, not {content:?}")));
                };
                let (key, value) = (key.trim(), value.trim());
                let Some(key) = canonical(s, key) else {
                    return Err(err(format!("unknown key {key:?} in this section")));
                };
                match s {
                    Section::Interface => {
                        apply_interface(interface.as_mut().expect("the section exists"), key, value)
                    }
                    Section::Peer => {
                        if key == "PublicKey" {
                            *peer_has_key.last_mut().expect("a peer") = 0;
                        }
                        apply_peer(peers.last_mut().expect("a peer"), key, value)
                    }
                }
                .map_err(err)?;
                Kind::Entry { section: s, key }
            };
            if raw
                .trim_end_matches('\n')
                .chars()
                .any(|c| c.is_control() && c != '\t' && c != '\r')
            {
                return Err(err(
                    "a control character (other than tab) in the line".into()
                ));
            }
            lines.push(Line {
                raw: Zeroizing::new(raw.to_owned()),
                kind,
            });
        }
        if let Some(&line) = peer_has_key.iter().find(|&&l| l != 0) {
            return Err(ConfError::Line {
                file: file.to_owned(),
                line,
                message: "this [Peer] has no PublicKey".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for p in &peers {
            if !seen.insert(p.public_key) {
                return Err(ConfError::Line {
                    file: file.to_owned(),
                    line: 0,
                    message: format!("peer {} appears twice", p.public_key),
                });
            }
        }
        Ok(Config {
            lines,
            interface: interface.unwrap_or_default(),
            peers,
        })
    }

    /// A new file holding `interface` and `peers`, in canonical form.
    /// Refused if a value would not stay on its line (a newline or another
    /// control character in a hook, `DNS`, `Table` or `FwMark`), or does
    /// not read back as what was given.
    pub fn new(interface: &Interface, peers: &[Peer]) -> Result<Config, ConfError> {
        let mut text = render_interface(interface)?;
        for p in peers {
            let peer = render_peer(p);
            text.reserve(peer.len() + 1);
            text.push('\n');
            text.push_str(&peer);
        }
        let config = Config::parse(&text, "<new>")?;
        if config.interface != *interface || config.peers != peers {
            return Err(ConfError::Line {
                file: "<new>".into(),
                line: 0,
                message: "a value does not read back as written (a comma or '#' in it?)".into(),
            });
        }
        Ok(config)
    }

    /// Reads a file, refusing one that group or others may read (it may
    /// hold the private key).
    pub fn read(path: &Path) -> Result<Config, ConfError> {
        let text = crate::key::read_secret_file(path)?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Replaces `path` with this configuration atomically (mode 0600).
    /// As a last line of defence, a line holding a control character
    /// other than tab (which no parsed or rendered line can) is refused.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        self.check_lines()?;
        kld_fs::replace(path, self.render().as_bytes(), 0o600)
    }

    fn check_lines(&self) -> std::io::Result<()> {
        let bad = self.lines.iter().any(|l| {
            let body = l.raw.strip_suffix('\n').unwrap_or(&l.raw);
            body.chars()
                .any(|c| c == '\n' || (c.is_control() && c != '\t' && c != '\r'))
        });
        if bad {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "refusing to write a wg-quick line holding a newline or control character",
            ));
        }
        Ok(())
    }

    /// The `[Interface]` values.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The peers, in file order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The peer with `key`, if any.
    pub fn peer(&self, key: &PublicKey) -> Option<&Peer> {
        self.peers.iter().find(|p| p.public_key == *key)
    }

    /// The file's text (everything it held, comments included), in a
    /// buffer wiped when dropped (it may hold the private key).
    pub fn render(&self) -> Zeroizing<String> {
        concat(self.lines.iter())
    }

    /// The text `wg setconf` accepts, exactly as `wg-quick strip` prints
    /// it: every line but those holding keys only wg-quick reads.
    pub fn strip(&self) -> Zeroizing<String> {
        let wg_quick_only = |l: &&Line| {
            matches!(&l.kind, Kind::Entry { section: Section::Interface, key, .. }
                if !matches!(*key, "ListenPort" | "PrivateKey" | "FwMark"))
        };
        concat(self.lines.iter().filter(|l| !wg_quick_only(l)))
    }

    /// Appends a peer section. Refused if the key is already there.
    pub fn add_peer(&mut self, peer: &Peer) -> Result<(), ConfError> {
        if self.peer(&peer.public_key).is_some() {
            return Err(ConfError::Line {
                file: "<edit>".into(),
                line: 0,
                message: format!("peer {} is already in the file", peer.public_key),
            });
        }
        // Only the new section is parsed: the cost does not grow with the
        // number of peers already in the file.
        let mut added = Config::parse(&render_peer(peer), "<edit>")?;
        if added.peers.as_slice() != std::slice::from_ref(peer) {
            return Err(ConfError::Line {
                file: "<edit>".into(),
                line: 0,
                message: "the peer does not read back as written".into(),
            });
        }
        if let Some(last) = self.lines.last_mut() {
            if !last.raw.ends_with('\n') {
                let mut raw = Zeroizing::new(String::with_capacity(last.raw.len() + 1));
                raw.push_str(&last.raw);
                raw.push('\n');
                last.raw = raw;
            }
            self.lines.push(Line {
                raw: Zeroizing::new("\n".into()),
                kind: Kind::Other,
            });
        }
        self.lines.append(&mut added.lines);
        self.peers.append(&mut added.peers);
        Ok(())
    }

    /// Adds a peer section as [`Config::add_peer`] does, and appends the
    /// same text to `path` (the file this configuration was read from) in
    /// one write, then `fdatasync`: the cost does not grow with the peers
    /// already in the file. Returns the file's earlier length: cutting the
    /// file back to it ([`crate::file::truncate`]) undoes the append.
    pub fn append_peer(&mut self, path: &Path, peer: &Peer) -> Result<u64, ConfError> {
        use std::io::Write;
        let ended = self.lines.last().is_none_or(|l| l.raw.ends_with('\n'));
        let from = self.lines.len();
        self.add_peer(peer)?;
        let mut text = Zeroizing::new(String::from(if ended { "" } else { "\n" }));
        text.push_str(&concat(self.lines[from..].iter()));
        let io = |source| {
            ConfError::File(KeyError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let result = (|| {
            let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
            let len = f.metadata()?.len();
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
            kld_fs::fault::step(|| format!("append a peer to {}", path.display()));
            Ok(len)
        })();
        if result.is_err() {
            self.remove_peer(&peer.public_key);
        }
        result.map_err(io)
    }

    /// Removes a peer's section (its lines up to the next section, and
    /// blank lines before it). Returns whether it was there.
    pub fn remove_peer(&mut self, key: &PublicKey) -> bool {
        let Some(index) = self.peers.iter().position(|p| p.public_key == *key) else {
            return false;
        };
        let headers: Vec<usize> = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l.kind, Kind::Header(Section::Peer)))
            .map(|(i, _)| i)
            .collect();
        let start = headers[index];
        let end = self.lines[start + 1..]
            .iter()
            .position(|l| matches!(l.kind, Kind::Header(_)))
            .map_or(self.lines.len(), |p| start + 1 + p);
        let mut from = start;
        while from > 0 && self.lines[from - 1].raw.trim().is_empty() {
            from -= 1;
        }
        self.lines.drain(from..end);
        self.peers.remove(index);
        true
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lines' text, in one buffer sized once (no copy left behind by a
/// reallocation) and wiped when dropped.
fn concat<'a>(lines: impl Iterator<Item = &'a Line> + Clone) -> Zeroizing<String> {
    let len = lines.clone().map(|l| l.raw.len()).sum();
    let mut t = Zeroizing::new(String::with_capacity(len));
    for l in lines {
        t.push_str(&l.raw);
    }
    t
}

/// Refuses a free-form value that would not stay on its line.
fn one_line(key: &str, value: &str) -> Result<(), ConfError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(ConfError::Line {
            file: "<new>".into(),
            line: 0,
            message: format!("{key} holds a newline or control character: {value:?}"),
        });
    }
    Ok(())
}

fn render_interface(i: &Interface) -> Result<Zeroizing<String>, ConfError> {
    for (key, values) in [
        ("DNS", &i.dns),
        ("PreUp", &i.pre_up),
        ("PostUp", &i.post_up),
        ("PreDown", &i.pre_down),
        ("PostDown", &i.post_down),
    ] {
        for v in values {
            one_line(key, v)?;
        }
    }
    for (key, v) in [("Table", &i.table), ("FwMark", &i.fwmark)] {
        if let Some(v) = v {
            one_line(key, v)?;
        }
    }
    let hooks: usize = [&i.pre_up, &i.post_up, &i.pre_down, &i.post_down, &i.dns]
        .iter()
        .flat_map(|v| v.iter())
        .map(|c| c.len() + 16)
        .sum();
    let mut t = Zeroizing::new(String::with_capacity(1024 + hooks + 64 * i.addresses.len()));
    t.push_str("[Interface]\n");
    if !i.addresses.is_empty() {
        t.push_str(&format!("Address = {}\n", join(&i.addresses)));
    }
    if let Some(p) = i.listen_port {
        t.push_str(&format!("ListenPort = {p}\n"));
    }
    if let Some(k) = &i.private_key {
        t.push_str("PrivateKey = ");
        t.push_str(&Zeroizing::new(k.to_base64()));
        t.push('\n');
    }
    if !i.dns.is_empty() {
        t.push_str(&format!("DNS = {}\n", i.dns.join(", ")));
    }
    if let Some(m) = i.mtu {
        t.push_str(&format!("MTU = {m}\n"));
    }
    if let Some(v) = &i.table {
        t.push_str(&format!("Table = {v}\n"));
    }
    if let Some(v) = &i.fwmark {
        t.push_str(&format!("FwMark = {v}\n"));
    }
    for (key, cmds) in [
        ("PreUp", &i.pre_up),
        ("PostUp", &i.post_up),
        ("PreDown", &i.pre_down),
        ("PostDown", &i.post_down),
    ] {
        for c in cmds {
            t.push_str(&format!("{key} = {c}\n"));
        }
    }
    if let Some(s) = i.save_config {
        t.push_str(&format!("SaveConfig = {s}\n"));
    }
    Ok(t)
}

fn render_peer(p: &Peer) -> Zeroizing<String> {
    let mut t = Zeroizing::new(String::with_capacity(256 + 48 * p.allowed_ips.len()));
    t.push_str(&format!("[Peer]\nPublicKey = {}\n", p.public_key));
    if let Some(k) = &p.preshared_key {
        t.push_str("PresharedKey = ");
        t.push_str(&Zeroizing::new(k.to_base64()));
        t.push('\n');
    }
    if !p.allowed_ips.is_empty() {
        t.push_str(&format!("AllowedIPs = {}\n", join(&p.allowed_ips)));
    }
    if let Some(e) = &p.endpoint {
        t.push_str(&format!("Endpoint = {e}\n"));
    }
    if let Some(k) = p.persistent_keepalive {
        t.push_str(&format!("PersistentKeepalive = {k}\n"));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "# management plane\n[Interface]\nAddress = 10.250.0.1/24, fd00:250::1/64\n\
        listenport = 51820 # lower case works too\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
        MTU = 1420\nPostUp = sysctl -w net.ipv4.ip_forward=1\n\n# alice\n[Peer]\n\
        PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 10.250.0.2/32\n\n\
        [Peer]\nPublicKey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=\nAllowedIPs = 10.250.0.3/32\n\
        Endpoint = [2001:db8::1]:51820\nPersistentKeepalive = 25\n";

    #[test]
    fn parses_and_renders_byte_for_byte() {
        let c = Config::parse(SAMPLE, "t").unwrap();
        assert_eq!(c.render().as_str(), SAMPLE);
        assert_eq!(c.interface().listen_port, Some(51820));
        assert_eq!(c.interface().addresses.len(), 2);
        assert_eq!(c.peers().len(), 2);
        assert_eq!(c.peers()[1].persistent_keepalive, Some(25));
        assert!(!format!("{c:?}").contains("yAnz5TF"));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("[Interface]\nListenPort = 99999\n", 2),
            ("[Interface]\n\nBogus = 1\n", 3),
            ("Address = 10.0.0.1/24\n", 1),
            ("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/8\n", 2),
            ("[Peer]\nPublicKey = nope\n", 2),
            ("[Wat]\n", 1),
        ] {
            match Config::parse(text, "f.conf") {
                Err(ConfError::Line { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let mut c = Config::parse(SAMPLE, "t").unwrap();
        let alice = c.peers()[0].public_key;
        assert!(c.remove_peer(&alice));
        assert!(!c.remove_peer(&alice));
        let text = c.render();
        assert!(text.starts_with("# management plane\n[Interface]"));
        assert!(!text.contains("xTIBA5"));
        let new = Peer {
            allowed_ips: vec!["10.250.0.9/32".parse().unwrap()],
            ..Peer::new(PrivateKey::generate().public_key())
        };
        c.add_peer(&new).unwrap();
        assert!(c.add_peer(&new).is_err());
        assert_eq!(c.peers().last().unwrap(), &new);
        assert!(c.render().starts_with(text.as_str()));
    }

    #[test]
    fn values_that_would_add_lines_are_refused() {
        let hook = Interface {
            post_up: vec![
                "true\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=".into(),
            ],
            ..Interface::default()
        };
        assert!(Config::new(&hook, &[]).is_err());
        for bad in [
            Interface {
                dns: vec!["1.1.1.1\rX".into()],
                ..Interface::default()
            },
            Interface {
                table: Some("off\n[Peer]".into()),
                ..Interface::default()
            },
            Interface {
                fwmark: Some("0x1\u{1b}".into()),
                ..Interface::default()
            },
            Interface {
                post_down: vec!["echo # cut".into()],
                ..Interface::default()
            },
        ] {
            assert!(Config::new(&bad, &[]).is_err(), "{bad:?}");
        }
        // A control character in a file read is refused with its line.
        let text = "[Interface]\nPostUp = echo \u{1b}[2J\n";
        assert!(matches!(
            Config::parse(text, "f"),
            Err(ConfError::Line { line: 2, .. })
        ));
        // And the writer refuses a line a bug let through.
        let mut c = Config::new(&Interface::default(), &[]).unwrap();
        c.lines[0].raw = Zeroizing::new("[Interface]\n[Peer]\n".into());
        let dir = tempfile::tempdir().unwrap();
        let e = c.write(&dir.path().join("x.conf")).unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
        assert!(!dir.path().join("x.conf").exists());
    }

    #[test]
    fn an_endpoint_with_a_second_line_is_refused() {
        let text =
            "[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = h:1 x\n";
        assert!(matches!(
            Config::parse(text, "f"),
            Err(ConfError::Line { line: 3, .. })
        ));
    }

    fn cidr() -> impl Strategy<Value = Cidr> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Cidr {
                addr: std::net::IpAddr::V4(a.into()),
                prefix: p
            }),
            (any::<u128>(), 0u8..=128).prop_map(|(a, p)| Cidr {
                addr: std::net::IpAddr::V6(a.into()),
                prefix: p
            }),
        ]
    }

    fn key() -> impl Strategy<Value = PublicKey> {
        proptest::array::uniform32(any::<u8>()).prop_map(PublicKey::from_bytes)
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9 %._=-]{0,20}[a-z0-9]".prop_map(|s| s)
    }

    prop_compose! {
        fn interface()(
            addresses in proptest::collection::vec(cidr(), 0..3),
            listen_port in proptest::option::of(any::<u16>()),
            has_key in any::<bool>(),
            dns in proptest::collection::vec("[a-z0-9.]{1,12}", 0..3),
            mtu in proptest::option::of(576u32..9000),
            table in proptest::option::of(prop_oneof![Just("off".to_owned()), Just("auto".to_owned()), "[0-9]{1,4}"]),
            fwmark in proptest::option::of(prop_oneof![Just("off".to_owned()), "[0-9]{1,5}", "0x[0-9a-f]{1,6}"]),
            pre_up in proptest::collection::vec(word(), 0..2),
            post_up in proptest::collection::vec(word(), 0..2),
            pre_down in proptest::collection::vec(word(), 0..2),
            post_down in proptest::collection::vec(word(), 0..2),
            save_config in proptest::option::of(any::<bool>()),
        ) -> Interface {
            Interface {
                addresses, listen_port, private_key: has_key.then(PrivateKey::generate), dns, mtu,
                table, fwmark, pre_up, post_up, pre_down, post_down, save_config,
            }
        }
    }

    prop_compose! {
        fn peer()(
            public_key in key(),
            psk in any::<bool>(),
            allowed_ips in proptest::collection::vec(cidr(), 0..4),
            endpoint in proptest::option::of(prop_oneof![
                (any::<u32>(), 1u16..).prop_map(|(a, p)| format!("{}:{p}", std::net::Ipv4Addr::from(a))),
                (any::<u128>(), 1u16..).prop_map(|(a, p)| format!("[{}]:{p}", std::net::Ipv6Addr::from(a))),
                ("[a-z]{1,10}\\.example", 1u16..).prop_map(|(h, p)| format!("{h}:{p}")),
            ].prop_map(|e| e.parse::<Endpoint>().unwrap())),
            persistent_keepalive in proptest::option::of(any::<u16>()),
        ) -> Peer {
            Peer { public_key, preshared_key: psk.then(PresharedKey::generate), allowed_ips, endpoint, persistent_keepalive }
        }
    }

    proptest! {
        #[test]
        fn typed_round_trip(i in interface(), peers in proptest::collection::vec(peer(), 0..4)) {
            let mut seen = std::collections::HashSet::new();
            let peers: Vec<Peer> = peers.into_iter().filter(|p| seen.insert(p.public_key)).collect();
            let c = Config::new(&i, &peers).unwrap();
            let again = Config::parse(&c.render(), "r").unwrap();
            prop_assert_eq!(again.interface(), &i);
            prop_assert_eq!(again.peers(), &peers[..]);
            prop_assert_eq!(again.render(), c.render());
        }

        #[test]
        fn text_round_trips_with_comments(i in interface(), comments in proptest::collection::vec("#[ -~]{0,20}\n", 0..4)) {
            let mut text = comments.concat();
            text.push_str(&Config::new(&i, &[]).unwrap().render());
            let c = Config::parse(&text, "r").unwrap();
            let rendered = c.render();
            prop_assert_eq!(rendered.as_str(), text);
        }

        #[test]
        fn parsing_never_panics(s in "(\\[Interface\\]\n|\\[Peer\\]\n|[A-Za-z]{1,12} ?= ?[ -~]{0,30}\n|#[ -~]{0,10}\n){0,8}") {
            let _ = Config::parse(&s, "fuzz");
        }
    }
}
