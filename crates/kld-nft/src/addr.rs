//! Networks (an address and a prefix length), IPv4 or IPv6.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address with a prefix length (`10.0.0.0/8`,
/// `2001:db8::/32`); a bare address is a network of one (`/32`, `/128`).
/// The address is kept with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 (`ip` in nft).
    V4,
    /// IPv6 (`ip6` in nft).
    V6,
}

impl Family {
    /// The nft keyword that matches this family's header (`ip`, `ip6`).
    pub fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// `IPv4` or `IPv6`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl Network {
    /// The family of the network.
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn max_prefix(family: Family) -> u8 {
        match family {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// Whether every address of `other` is in this network.
    pub fn contains(&self, other: &Network) -> bool {
        if self.family() != other.family() || other.prefix < self.prefix {
            return false;
        }
        let mask = mask(self.prefix);
        Self::bits(other.addr) & mask == Self::bits(self.addr) & mask
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Network) -> bool {
        self.contains(other) || other.contains(self)
    }
}

/// The mask of a prefix, in the 128-bit space both families are kept in
/// (IPv4 in the top 32 bits).
fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    u128::MAX << (128 - u32::from(prefix))
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or network (e.g. 10.0.0.0/8, 2001:db8::/32)")]
pub struct NetworkError(pub String);

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Network, NetworkError> {
        let bad = || NetworkError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let family = match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        let max = Network::max_prefix(family);
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        let kept = Network::bits(addr) & mask(prefix);
        let addr = match family {
            Family::V4 => IpAddr::V4(((kept >> 96) as u32).into()),
            Family::V6 => IpAddr::V6(kept.into()),
        };
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    /// `10.0.0.0/8`; a single address without its prefix, as nft lists it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == Network::max_prefix(self.family()) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Network {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(n("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(n("10.1.2.3").to_string(), "10.1.2.3");
        assert_eq!(n("10.1.2.3/32").to_string(), "10.1.2.3");
        assert_eq!(n("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(n("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+1",
            "x",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment() {
        assert!(n("10.0.0.0/8").contains(&n("10.2.0.0/16")));
        assert!(!n("10.2.0.0/16").contains(&n("10.0.0.0/8")));
        assert!(n("0.0.0.0/0").contains(&n("192.0.2.1")));
        assert!(!n("0.0.0.0/0").contains(&n("::1")));
        assert!(n("::/0").contains(&n("2001:db8::1")));
        assert!(n("10.0.0.0/8").overlaps(&n("10.0.0.1")));
        assert!(!n("10.0.0.0/8").overlaps(&n("11.0.0.1")));
    }
}
