//! Networks (`10.250.0.0/16`, `fd00:77::/64`) and addresses in them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with a prefix length: `10.250.0.1/24`, `fd00::1/128`. A bare
/// address parses as a host prefix (/32 or /128).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or network (e.g. 10.0.0.1/24, fd00::/64)")]
pub struct CidrError(pub String);

impl Cidr {
    /// The largest prefix length of the address's family.
    pub fn max_prefix(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The same prefix with the host bits cleared.
    pub fn network(&self) -> Cidr {
        Cidr {
            addr: from_bits(self.addr, to_bits(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    /// Whether `addr` lies inside this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && to_bits(addr) & self.mask() == to_bits(self.addr) & self.mask()
    }

    /// The address `offset` places after the network address, if it is
    /// inside the network.
    pub fn nth(&self, offset: u128) -> Option<IpAddr> {
        let host_bits = u32::from(Self::max_prefix(self.addr) - self.prefix);
        if host_bits < 128 && offset >> host_bits != 0 {
            return None;
        }
        Some(from_bits(
            self.addr,
            (to_bits(self.addr) & self.mask()) | offset,
        ))
    }

    /// The offset of `addr` from the network address.
    pub fn offset_of(&self, addr: IpAddr) -> u128 {
        to_bits(addr) & !self.mask()
    }

    /// The number of addresses in it minus one (the highest offset).
    pub fn last_offset(&self) -> u128 {
        let host_bits = u32::from(Self::max_prefix(self.addr) - self.prefix);
        if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        }
    }

    fn mask(&self) -> u128 {
        let max = u32::from(Self::max_prefix(self.addr));
        let prefix = u32::from(self.prefix);
        let full = if max == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        if prefix == 0 {
            0
        } else {
            (full >> (max - prefix)) << (max - prefix) & full
        }
    }

    /// The host prefix of an address (/32, /128).
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr {
            addr,
            prefix: Self::max_prefix(addr),
        }
    }
}

fn to_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_bits(like: IpAddr, bits: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix = match prefix {
            None => Cidr::max_prefix(addr),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
        };
        if prefix > Cidr::max_prefix(addr) {
            return Err(err());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Cidr, CidrError> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn networks() {
        let n: Cidr = "10.250.3.7/16".parse().unwrap();
        assert_eq!(n.network().to_string(), "10.250.0.0/16");
        assert!(n.contains("10.250.255.1".parse().unwrap()));
        assert!(!n.contains("10.251.0.1".parse().unwrap()));
        assert_eq!(n.nth(258).unwrap().to_string(), "10.250.1.2");
        assert_eq!(n.nth(65536), None);
        assert_eq!(n.last_offset(), 65535);
        let v6: Cidr = "fd00:77::/64".parse().unwrap();
        assert_eq!(v6.nth(2).unwrap().to_string(), "fd00:77::2");
        assert_eq!(v6.offset_of("fd00:77::1:0".parse().unwrap()), 65536);
        assert_eq!("::/0".parse::<Cidr>().unwrap().last_offset(), u128::MAX);
        for bad in ["10.0.0.0/33", "x/3", "10.0.0.0/", "10.0.0.0/+1", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(a in any::<u32>(), p in 0u8..=32, b in any::<u128>(), q in 0u8..=128) {
            for c in [Cidr { addr: IpAddr::V4(a.into()), prefix: p }, Cidr { addr: IpAddr::V6(b.into()), prefix: q }] {
                prop_assert_eq!(c.to_string().parse::<Cidr>().unwrap(), c);
                prop_assert!(c.network().contains(c.addr));
            }
        }

        #[test]
        fn parsing_never_panics(s in ".{0,50}") {
            let _ = s.parse::<Cidr>();
        }
    }
}
