//! WireGuard endpoints: `HOST:PORT` where `HOST` is an IPv4 address, an
//! IPv6 address in brackets (`[2001:db8::1]:51820`) or a host name as
//! RFC 1123 allows it (labels of letters, digits and `-`, 1 to 63
//! characters, not starting or ending with `-`, at most 253 in all). The
//! port is 1 to 65535.
//!
//! An [`Endpoint`] can hold nothing else: no whitespace, no control
//! character, no second line. Every way in (the command line, a wg-quick
//! file, a hub's state, a hub's answer to a join) parses into one, so a
//! value that would add a line to a wg-quick file never reaches it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a text is not an endpoint. It shows the text escaped (never raw).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown} is not an endpoint (HOST:PORT, [IPv6]:PORT): {why}")]
pub struct EndpointError {
    shown: String,
    why: &'static str,
}

/// The longest host name RFC 1123 allows.
pub const MAX_HOST_NAME: usize = 253;

/// A host: an address or a host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name (RFC 1123), as written.
    Name(String),
}

impl Host {
    /// Parses an address (IPv6 with or without brackets) or a host name.
    pub fn parse(text: &str) -> Result<Host, EndpointError> {
        let err = |why| EndpointError {
            shown: format!("{text:?}"),
            why,
        };
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| err("an unclosed ["))?;
            return inner
                .parse::<Ipv6Addr>()
                .map(|a| Host::Ip(IpAddr::V6(a)))
                .map_err(|_| err("not an IPv6 address inside [ ]"));
        }
        if let Ok(a) = text.parse::<IpAddr>() {
            return Ok(Host::Ip(a));
        }
        check_name(text).map_err(err)?;
        Ok(Host::Name(text.to_owned()))
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("no host");
    }
    if name.len() > MAX_HOST_NAME {
        return Err("a host name longer than 253 characters");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("a host name label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("a host name holds only letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a host name label cannot start or end with '-'");
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        // 300.1.2.3 or 10.1: neither an address nor a name.
        return Err("not an IPv4 address, and a host name cannot end in a number");
    }
    Ok(())
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(a) => write!(f, "{a}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl std::str::FromStr for Host {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Host, EndpointError> {
        Host::parse(s)
    }
}

/// A WireGuard endpoint (or any `HOST:PORT` kwg uses, such as a hub's
/// enrolment address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The host.
    pub host: Host,
    /// The port (never 0).
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from its parts (the port must not be 0).
    pub fn new(host: Host, port: u16) -> Result<Endpoint, EndpointError> {
        if port == 0 {
            return Err(EndpointError {
                shown: format!("{:?}", format!("{host}:0")),
                why: "port 0",
            });
        }
        Ok(Endpoint { host, port })
    }

    /// Parses `HOST:PORT` or `[IPv6]:PORT`.
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let err = |why| EndpointError {
            shown: format!("{text:?}"),
            why,
        };
        let (host, port) = text.rsplit_once(':').ok_or_else(|| err("no :PORT"))?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(err("an IPv6 address needs brackets: [ADDRESS]:PORT"));
        }
        if !port.bytes().all(|b| b.is_ascii_digit()) || port.is_empty() || port.len() > 5 {
            return Err(err("the port is not a number"));
        }
        let port: u16 = port.parse().map_err(|_| err("the port is above 65535"))?;
        if port == 0 {
            return Err(err("port 0"));
        }
        let host = Host::parse(host).map_err(|e| EndpointError {
            shown: format!("{text:?}"),
            why: e.why,
        })?;
        if matches!(host, Host::Ip(IpAddr::V6(_))) && !text.starts_with('[') {
            return Err(err("an IPv6 address needs brackets: [ADDRESS]:PORT"));
        }
        Ok(Endpoint { host, port })
    }

    /// An IPv4 loopback endpoint (for examples and tests).
    pub fn localhost(port: u16) -> Endpoint {
        Endpoint {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: port.max(1),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(s)
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Endpoint, D::Error> {
        let s = String::deserialize(d)?;
        Endpoint::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_addresses_and_names() {
        for (text, shown) in [
            ("192.0.2.1:51820", "192.0.2.1:51820"),
            ("[2001:db8::1]:51820", "[2001:db8::1]:51820"),
            ("[::ffff:192.0.2.1]:1", "[::ffff:192.0.2.1]:1"),
            ("hub.example.org:51820", "hub.example.org:51820"),
            ("hub.example.org.:65535", "hub.example.org.:65535"),
            ("a-b.c1:7", "a-b.c1:7"),
            ("localhost:9", "localhost:9"),
        ] {
            assert_eq!(Endpoint::parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        let long = format!("{}.org:1", "a".repeat(250));
        let label = format!("{}.org:1", "a".repeat(64));
        for bad in [
            "",
            ":51820",
            "host",
            "host:",
            "host:0",
            "host:65536",
            "host:+1",
            "host: 1",
            "2001:db8::1:51820",
            "[2001:db8::1:51820",
            "[nothex]:1",
            "[192.0.2.1]:1",
            "192.0.2.1\n[Peer]\nPublicKey = x:51820",
            "192.0.2.1:51820\n[Peer]",
            "ho st:1",
            "host\t:1",
            "ho\u{1b}[31mst:1",
            "-host:1",
            "host-:1",
            "a..b:1",
            "300.1.2.3:1",
            "10.1:1",
            "hôst:1",
            "host_name:1",
            &long,
            &label,
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?}");
        }
        // The error shows the text escaped, on one line.
        let e = Endpoint::parse("a\nb:1").unwrap_err().to_string();
        assert!(!e.contains('\n') && e.contains("\\n"), "{e}");
    }

    #[test]
    fn serde_checks_too() {
        let e: Endpoint = serde_json::from_str("\"[fd00::1]:2\"").unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"[fd00::1]:2\"");
        assert!(serde_json::from_str::<Endpoint>("\"h:1\\n[Peer]\"").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_never_holds_a_control_or_space(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            if let Ok(e) = Endpoint::parse(&s) {
                let text = e.to_string();
                prop_assert!(!text.chars().any(|c| c.is_control() || c.is_whitespace()), "{text:?}");
                prop_assert_eq!(Endpoint::parse(&text).unwrap(), e);
            }
        }

        #[test]
        fn round_trips(
            host in prop_oneof![
                any::<u32>().prop_map(|a| Host::Ip(IpAddr::V4(a.into()))),
                any::<u128>().prop_map(|a| Host::Ip(IpAddr::V6(a.into()))),
                "[a-z]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,10}[a-z0-9])?){0,3}"
                    .prop_map(Host::Name),
            ],
            port in 1u16..,
        ) {
            let e = Endpoint::new(host, port).unwrap();
            prop_assert_eq!(Endpoint::parse(&e.to_string()).unwrap(), e);
        }

        #[test]
        fn appending_a_line_is_always_refused(
            e in "[a-z]{1,8}:[1-9][0-9]{0,3}",
            tail in "[\\x00-\\x1f\\x7f ][ -~]{0,20}",
        ) {
            let text = format!("{e}{tail}");
            prop_assert!(Endpoint::parse(&text).is_err(), "{:?}", text);
        }
    }
}
