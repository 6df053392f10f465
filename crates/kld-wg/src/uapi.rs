//! Reading a userspace device: `get=1` on the UAPI socket that
//! `wireguard-go` (or any userspace implementation) serves, parsed line by
//! line straight into a [`DeviceStatus`]'s parts.
//!
//! Changes to devices still go through `wireguard-control`. Its read of a
//! userspace device builds a device model that kld then converts; this
//! reader makes `kwg show` of 500 peers cost what `wg show dump` does.
//!
//! The answer holds the device's private key: it is read into one
//! fixed buffer that is wiped when dropped (never grown, so no copy is
//! left in freed memory), and no error quotes a secret's value.
//!
//! [`DeviceStatus`]: crate::device::DeviceStatus

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;

use zeroize::Zeroizing;

use crate::device::PeerStatus;
use crate::key::{PrivateKey, PublicKey};
use crate::net::Cidr;

/// The longest line the reader accepts (the longest real one, an IPv6
/// endpoint with a zone, is under 100 bytes).
const BUFFER: usize = 16 * 1024;

/// A device as its UAPI answer describes it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Dump {
    /// The public key of its private key, if one is set.
    pub public_key: Option<PublicKey>,
    /// Its UDP port (`None` when it reports 0).
    pub listen_port: Option<u16>,
    /// Its peers, in the order it reports them.
    pub peers: Vec<PeerStatus>,
}

/// Why an answer could not be read.
#[derive(Debug)]
pub(crate) enum Bad {
    /// The socket failed (a missing socket is `NotFound` or
    /// `ConnectionRefused`).
    Io(std::io::Error),
    /// The device refused the request with this errno.
    Errno(i32),
    /// A line that is not the protocol.
    Line {
        /// Its number, from 1.
        line: usize,
        /// What is wrong with it (never a secret's value).
        reason: String,
    },
}

/// Asks the device behind `socket` for its state.
pub(crate) fn get(socket: &Path) -> Result<Dump, Bad> {
    let mut stream = UnixStream::connect(socket).map_err(Bad::Io)?;
    stream.write_all(b"get=1\n\n").map_err(Bad::Io)?;
    read_answer(&mut stream)
}

/// Reads and parses an answer, up to its blank line, through one fixed
/// buffer.
fn read_answer(answer: &mut impl Read) -> Result<Dump, Bad> {
    let mut parser = Parser::default();
    let mut buf = Zeroizing::new(vec![0u8; BUFFER]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Err(parser.bad("a line longer than the protocol has"));
        }
        let n = answer.read(&mut buf[filled..]).map_err(Bad::Io)?;
        if n == 0 {
            return Err(parser.bad("the answer ended before its blank line"));
        }
        filled += n;
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &buf[start..filled]) {
            let line = &buf[start..start + end];
            start += end + 1;
            if line.is_empty() {
                return parser.finish();
            }
            parser.line(line)?;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// Parses a whole answer held in memory.
#[cfg(test)]
fn parse(mut text: &[u8]) -> Result<Dump, Bad> {
    read_answer(&mut text)
}

#[derive(Default)]
struct Parser {
    dump: Dump,
    lines: usize,
    errno: Option<i32>,
}

impl Parser {
    fn bad(&self, reason: impl Into<String>) -> Bad {
        Bad::Line {
            line: self.lines,
            reason: reason.into(),
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), Bad> {
        self.lines += 1;
        // Keys and most values are ASCII digits or hex: they are read as
        // bytes; only addresses are read as text.
        let eq = memchr::memchr(b'=', line).ok_or_else(|| self.bad("not key=value"))?;
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        let key = std::str::from_utf8(key).map_err(|_| self.bad("a key that is not UTF-8"))?;
        if self.errno.is_some() {
            return Err(self.bad(format!("{key} after errno")));
        }
        match key {
            "private_key" => {
                let bytes =
                    hex32(value).ok_or_else(|| self.bad("private_key: not 64 hex digits"))?;
                self.dump.public_key =
                    (*bytes != [0; 32]).then(|| PrivateKey::from_bytes(*bytes).public_key());
            }
            "listen_port" => {
                self.dump.listen_port = Some(self.number(key, value)?).filter(|&p| p != 0)
            }
            "public_key" => {
                let bytes =
                    hex32(value).ok_or_else(|| self.bad("public_key: not 64 hex digits"))?;
                self.dump.peers.push(PeerStatus {
                    public_key: PublicKey::from_bytes(*bytes),
                    endpoint: None,
                    allowed_ips: Vec::new(),
                    latest_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                    persistent_keepalive: None,
                });
            }
            "preshared_key" => {
                hex32(value).ok_or_else(|| self.bad("preshared_key: not 64 hex digits"))?;
                self.peer(key)?;
            }
            "endpoint" => {
                let addr: SocketAddr = self.text(key, value)?.parse().map_err(|_| {
                    self.bad(format!(
                        "endpoint: {:?} is not an address:port",
                        String::from_utf8_lossy(value)
                    ))
                })?;
                self.peer(key)?.endpoint = Some(addr);
            }
            "allowed_ip" => {
                let cidr: Cidr = self.text(key, value)?.parse().map_err(|_| {
                    self.bad(format!(
                        "allowed_ip: {:?} is not a network",
                        String::from_utf8_lossy(value)
                    ))
                })?;
                self.peer(key)?.allowed_ips.push(cidr);
            }
            "last_handshake_time_sec" => {
                let secs: u64 = self.number(key, value)?;
                self.peer(key)?.latest_handshake = Some(secs).filter(|&s| s > 0);
            }
            "rx_bytes" => self.peer(key)?.rx_bytes = self.number(key, value)?,
            "tx_bytes" => self.peer(key)?.tx_bytes = self.number(key, value)?,
            "persistent_keepalive_interval" => {
                let secs: u16 = self.number(key, value)?;
                self.peer(key)?.persistent_keepalive = Some(secs).filter(|&s| s > 0);
            }
            "errno" => {
                let (sign, digits) = match value.strip_prefix(b"-") {
                    Some(rest) => (-1, rest),
                    None => (1, value),
                };
                let n: i32 = self.number(key, digits)?;
                self.errno = Some(sign * n);
            }
            // Known keys kld does not report, and keys of newer versions
            // of the protocol: checked as numbers where they are numbers.
            "fwmark" | "last_handshake_time_nsec" | "protocol_version" => {
                self.number::<u64>(key, value)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn text<'v>(&self, key: &str, value: &'v [u8]) -> Result<&'v str, Bad> {
        std::str::from_utf8(value).map_err(|_| self.bad(format!("{key}: not UTF-8")))
    }

    /// Decimal digits (no sign, no '+') as a `T`.
    fn number<T: TryFrom<u64>>(&self, key: &str, value: &[u8]) -> Result<T, Bad> {
        let shown = || String::from_utf8_lossy(value).into_owned();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(self.bad(format!("{key}: {:?} is not a number", shown())));
        }
        value
            .iter()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.bad(format!("{key}: {} is out of range", shown())))
    }

    fn peer(&mut self, key: &str) -> Result<&mut PeerStatus, Bad> {
        let line = self.lines;
        self.dump.peers.last_mut().ok_or_else(|| Bad::Line {
            line,
            reason: format!("{key} before any public_key"),
        })
    }

    fn finish(self) -> Result<Dump, Bad> {
        match self.errno {
            Some(0) => Ok(self.dump),
            Some(e) => Err(Bad::Errno(e)),
            None => Err(self.bad("the answer has no errno line")),
        }
    }
}

/// 64 hex digits (either case) as 32 bytes, wiped when dropped.
fn hex32(text: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if text.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use proptest::prelude::*;

    use super::*;

    fn hex(bytes: &[u8; 32]) -> String {
        bytes.iter().fold(String::new(), |mut s, b| {
            write!(s, "{b:02x}").unwrap();
            s
        })
    }

    /// What a userspace implementation sends for `dump` (with `private`
    /// as its key).
    fn render(private: Option<&PrivateKey>, dump: &Dump) -> String {
        let mut out = String::new();
        if let Some(k) = private {
            writeln!(out, "private_key={}", hex(k.as_bytes())).unwrap();
        }
        writeln!(out, "listen_port={}", dump.listen_port.unwrap_or(0)).unwrap();
        for p in &dump.peers {
            writeln!(out, "public_key={}", hex(p.public_key.as_bytes())).unwrap();
            writeln!(out, "preshared_key={}", "0".repeat(64)).unwrap();
            writeln!(out, "protocol_version=1").unwrap();
            if let Some(e) = p.endpoint {
                writeln!(out, "endpoint={e}").unwrap();
            }
            let hs = p.latest_handshake.unwrap_or(0);
            writeln!(
                out,
                "last_handshake_time_sec={hs}\nlast_handshake_time_nsec=5"
            )
            .unwrap();
            writeln!(out, "tx_bytes={}\nrx_bytes={}", p.tx_bytes, p.rx_bytes).unwrap();
            let ka = p.persistent_keepalive.unwrap_or(0);
            writeln!(out, "persistent_keepalive_interval={ka}").unwrap();
            for c in &p.allowed_ips {
                writeln!(out, "allowed_ip={c}").unwrap();
            }
        }
        out.push_str("errno=0\n\n");
        out
    }

    fn line_error(text: &str) -> (usize, String) {
        match parse(text.as_bytes()) {
            Err(Bad::Line { line, reason }) => (line, reason),
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn a_wireguard_go_answer() {
        let private = PrivateKey::generate();
        let peer = PrivateKey::generate().public_key();
        let text = format!(
            "private_key={}\nlisten_port=51820\nfwmark=66\n\
             public_key={}\npreshared_key={}\nprotocol_version=1\n\
             endpoint=[2001:db8::1]:51000\nlast_handshake_time_sec=1700000000\n\
             last_handshake_time_nsec=123\ntx_bytes=92\nrx_bytes=180\n\
             persistent_keepalive_interval=25\nallowed_ip=10.0.0.2/32\n\
             allowed_ip=fd00::/64\nerrno=0\n\n",
            hex(private.as_bytes()),
            hex(peer.as_bytes()),
            "ab".repeat(32),
        );
        let dump = parse(text.as_bytes()).unwrap();
        assert_eq!(dump.public_key, Some(private.public_key()));
        assert_eq!(dump.listen_port, Some(51820));
        assert_eq!(
            dump.peers,
            [PeerStatus {
                public_key: peer,
                endpoint: Some("[2001:db8::1]:51000".parse().unwrap()),
                allowed_ips: vec!["10.0.0.2/32".parse().unwrap(), "fd00::/64".parse().unwrap()],
                latest_handshake: Some(1_700_000_000),
                rx_bytes: 180,
                tx_bytes: 92,
                persistent_keepalive: Some(25),
            }]
        );
    }

    #[test]
    fn an_answer_in_pieces_reads_as_a_whole() {
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let want = Dump {
            public_key: None,
            listen_port: Some(51820),
            peers: vec![PeerStatus {
                public_key: PrivateKey::generate().public_key(),
                endpoint: Some("192.0.2.1:51820".parse().unwrap()),
                allowed_ips: vec!["10.0.0.2/32".parse().unwrap()],
                latest_handshake: Some(5),
                rx_bytes: 1,
                tx_bytes: 2,
                persistent_keepalive: None,
            }],
        };
        let text = render(None, &want);
        assert_eq!(read_answer(&mut Dribble(text.as_bytes())).unwrap(), want);
    }

    #[test]
    fn an_empty_device_and_an_unknown_key() {
        let dump = parse(b"listen_port=0\nsome_future_key=x\nerrno=0\n\n").unwrap();
        assert_eq!(dump, Dump::default());
    }

    #[test]
    fn a_refusal_is_its_errno() {
        assert!(matches!(parse(b"errno=22\n\n"), Err(Bad::Errno(22))));
    }

    #[test]
    fn bad_lines_say_where_and_never_quote_a_secret() {
        let secret = format!("{}zz", "a".repeat(62));
        let (line, reason) =
            line_error(&format!("listen_port=1\nprivate_key={secret}\nerrno=0\n\n"));
        assert_eq!(line, 2);
        assert!(!reason.contains(&secret[..20]), "{reason}");
        assert_eq!(
            line_error("rx_bytes=1\nerrno=0\n\n"),
            (1, "rx_bytes before any public_key".into())
        );
        assert_eq!(line_error("listen_port=70000\nerrno=0\n\n").0, 1);
        assert_eq!(line_error("listen_port=+1\nerrno=0\n\n").0, 1);
        assert_eq!(line_error("garbage\n\n").0, 1);
        assert_eq!(line_error("errno=0\nlisten_port=1\n\n").0, 2);
        assert_eq!(
            line_error("listen_port=1\n\n").1,
            "the answer has no errno line"
        );
        assert_eq!(
            line_error("listen_port=1\nerrno=0\n").1,
            "the answer ended before its blank line"
        );
    }

    fn peer() -> impl Strategy<Value = PeerStatus> {
        let cidr = prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| Cidr {
                addr: std::net::IpAddr::from(a),
                prefix: p
            }),
            (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, p)| Cidr {
                addr: std::net::IpAddr::from(a),
                prefix: p
            }),
        ];
        (
            any::<[u8; 32]>(),
            proptest::option::of(any::<SocketAddr>()),
            proptest::collection::vec(cidr, 0..4),
            proptest::option::of(1u64..),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(1u16..),
        )
            .prop_map(|(k, endpoint, allowed_ips, hs, rx, tx, ka)| PeerStatus {
                public_key: PublicKey::from_bytes(k),
                // wireguard-go reports no flow or scope ids.
                endpoint: endpoint.map(|e| match e {
                    SocketAddr::V6(v6) => SocketAddr::from((*v6.ip(), v6.port())),
                    v4 => v4,
                }),
                allowed_ips,
                latest_handshake: hs,
                rx_bytes: rx,
                tx_bytes: tx,
                persistent_keepalive: ka,
            })
    }

    proptest! {
        #[test]
        fn answers_round_trip(
            keyed in any::<bool>(),
            port in proptest::option::of(1u16..),
            peers in proptest::collection::vec(peer(), 0..6),
        ) {
            let private = keyed.then(PrivateKey::generate);
            let want = Dump {
                public_key: private.as_ref().map(PrivateKey::public_key),
                listen_port: port,
                peers,
            };
            let text = render(private.as_ref(), &want);
            prop_assert_eq!(parse(text.as_bytes()).unwrap(), want);
        }

        #[test]
        fn any_bytes_give_an_answer_or_an_error(text in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&text);
        }

        #[test]
        fn a_cut_answer_is_an_error(peers in proptest::collection::vec(peer(), 1..3), cut in any::<prop::sample::Index>()) {
            let text = render(None, &Dump { peers, ..Dump::default() });
            // Cut before the final blank line: never a whole answer.
            let at = cut.index(text.len() - 1);
            prop_assert!(parse(&text.as_bytes()[..at]).is_err());
        }
    }
}
