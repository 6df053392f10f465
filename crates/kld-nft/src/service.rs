//! Ports, port ranges, the named services and the ICMP types a zone file may
//! use.

use std::fmt;

/// A transport protocol with ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// `tcp` or `udp`, as nft spells it.
    pub fn nft(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// A port or an inclusive range of ports, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (equal to `first` for a single port).
    pub last: u16,
}

impl PortRange {
    /// One port.
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// Whether every port of `other` is in this range.
    pub fn contains(&self, other: &PortRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }

    /// Reads `80` or `8000-8100`.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let port = |p: &str| -> Result<u16, String> {
            let p = p.trim();
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{s:?} is not a port or a range of ports (e.g. 80, 8000-8100)"
                ));
            }
            match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(format!("port {p} is out of range (1-65535)")),
            }
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (first, last) = (port(a)?, port(b)?);
                if first > last {
                    return Err(format!("the range {s} ends before it starts"));
                }
                Ok(PortRange { first, last })
            }
            None => Ok(PortRange::single(port(s)?)),
        }
    }

    /// Checks a port given as a number.
    pub fn from_number(n: i64) -> Result<PortRange, String> {
        match u16::try_from(n) {
            Ok(p) if p >= 1 => Ok(PortRange::single(p)),
            _ => Err(format!("port {n} is out of range (1-65535)")),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The named services: a name, and the ports it stands for.
pub const SERVICES: &[(&str, &[(Transport, u16)])] = {
    use Transport::{Tcp, Udp};
    &[
        ("dhcp-client", &[(Udp, 68)]),
        ("dhcpv6-client", &[(Udp, 546)]),
        ("dns", &[(Tcp, 53), (Udp, 53)]),
        ("http", &[(Tcp, 80)]),
        ("http3", &[(Udp, 443)]),
        ("https", &[(Tcp, 443)]),
        ("imap", &[(Tcp, 143)]),
        ("imaps", &[(Tcp, 993)]),
        ("kubernetes-api", &[(Tcp, 6443)]),
        ("mdns", &[(Udp, 5353)]),
        ("mysql", &[(Tcp, 3306)]),
        ("nfs", &[(Tcp, 2049)]),
        ("node-exporter", &[(Tcp, 9100)]),
        ("ntp", &[(Udp, 123)]),
        ("pop3s", &[(Tcp, 995)]),
        ("postgres", &[(Tcp, 5432)]),
        ("prometheus", &[(Tcp, 9090)]),
        ("redis", &[(Tcp, 6379)]),
        ("rsync", &[(Tcp, 873)]),
        ("smb", &[(Tcp, 445)]),
        ("smtp", &[(Tcp, 25)]),
        ("ssh", &[(Tcp, 22)]),
        ("submission", &[(Tcp, 587)]),
        ("syslog", &[(Udp, 514)]),
        ("wireguard", &[(Udp, 51820)]),
    ]
};

/// The ports of a named service, if it is one.
pub fn service(name: &str) -> Option<&'static [(Transport, u16)]> {
    SERVICES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, ports)| *ports)
}

/// ICMP (IPv4) type names nft knows, that a rule may allow.
pub const ICMP_TYPES: &[&str] = &[
    "echo-reply",
    "destination-unreachable",
    "source-quench",
    "redirect",
    "echo-request",
    "router-advertisement",
    "router-solicitation",
    "time-exceeded",
    "parameter-problem",
    "timestamp-request",
    "timestamp-reply",
    "info-request",
    "info-reply",
    "address-mask-request",
    "address-mask-reply",
];

/// ICMPv6 type names nft knows, that a rule may allow.
pub const ICMPV6_TYPES: &[&str] = &[
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "echo-request",
    "echo-reply",
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "nd-redirect",
    "router-renumbering",
    "ind-neighbor-solicit",
    "ind-neighbor-advert",
    "mld2-listener-report",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges() {
        assert_eq!(PortRange::parse("80").unwrap(), PortRange::single(80));
        assert_eq!(
            PortRange::parse("8000-8100").unwrap().to_string(),
            "8000-8100"
        );
        for bad in ["0", "65536", "x", "", "90-80", "-1", "1-", "+5", "1-2-3"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
        assert!(PortRange::from_number(0).is_err());
        assert!(PortRange::from_number(70000).is_err());
        assert!(PortRange::parse("1-65535")
            .unwrap()
            .contains(&PortRange::single(22)));
    }

    #[test]
    fn services_are_sorted_and_unique() {
        let names: Vec<&str> = SERVICES.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(service("ssh"), Some(&[(Transport::Tcp, 22)][..]));
        assert_eq!(service("gopher"), None);
    }
}
