//! The zone model: what a zone file says, checked. Values of these types
//! come from [`ZoneFile::parse`](crate::ZoneFile::parse) (or are built in
//! code) and render to nft text with [`render`](crate::render).

use std::fmt;
use std::net::IpAddr;

use crate::addr::{Family, Network};
use crate::name::{Interface, SetName, ZoneName};
use crate::service::{PortRange, Transport};

/// A whole zone file: zones, named sets and port forwards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneFile {
    /// The zones, in the order the file names them.
    pub zones: Vec<Zone>,
    /// Named sets, whose elements can change live (`knft set add`).
    pub sets: Vec<NamedSet>,
    /// Port forwards (DNAT) from a zone to an address behind this host.
    pub port_forwards: Vec<PortForward>,
}

/// Traffic arriving on some interfaces and/or from some source networks, and
/// what of it may reach this host or be forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The zone's name.
    pub name: ZoneName,
    /// Interfaces (or `prefix*` wildcards) the zone is bound to; empty means
    /// any interface.
    pub interfaces: Vec<Interface>,
    /// Source networks the zone is bound to; empty means any source.
    pub sources: Vec<Network>,
    /// What may come in, checked in order; anything else is dropped.
    pub allow: Vec<Rule>,
    /// Zones that traffic arriving in this zone may be forwarded to.
    pub forward_to: Vec<ZoneName>,
    /// Masquerade traffic that leaves through this zone's interfaces.
    pub masquerade: bool,
    /// Log dropped packets at this rate (prefix `kld <zone> drop: `); `None`
    /// drops silently.
    pub log_drops: Option<Rate>,
}

impl Zone {
    /// Whether the zone is selected by source address (such zones are
    /// checked before zones bound only to interfaces).
    pub fn by_source(&self) -> bool {
        !self.sources.is_empty()
    }

    /// The families the zone's traffic can have (both when the zone is not
    /// bound to sources).
    pub fn families(&self) -> Vec<Family> {
        families_of(&self.sources)
    }
}

/// The families present in `networks`, or both when it is empty.
pub(crate) fn families_of(networks: &[Network]) -> Vec<Family> {
    if networks.is_empty() {
        return vec![Family::V4, Family::V6];
    }
    let mut f: Vec<Family> = networks.iter().map(Network::family).collect();
    f.sort();
    f.dedup();
    f
}

/// One allow rule: what it matches, and the limits on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// A short description for comments and listings (`ssh`, `tcp 8000-8100`).
    pub label: String,
    /// Ports per transport (`tcp`, `udp`).
    pub ports: Vec<(Transport, Vec<PortRange>)>,
    /// ICMP types (IPv4).
    pub icmp: Vec<String>,
    /// ICMPv6 types.
    pub icmpv6: Vec<String>,
    /// Allowed source networks (with `from_sets`; both empty: any source).
    pub from: Vec<Network>,
    /// Named sets whose members are allowed sources.
    pub from_sets: Vec<SetName>,
    /// New connections accepted at most at this rate (all sources together);
    /// the excess is dropped.
    pub rate: Option<Rate>,
    /// At most this many connections at once from each source address.
    pub connlimit: Option<u32>,
}

impl Rule {
    /// Whether the rule accepts everything it matches (no rate or
    /// connection limit).
    pub fn unlimited(&self) -> bool {
        self.rate.is_none() && self.connlimit.is_none()
    }
}

/// A rate: `count` per `unit`, with an optional burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many.
    pub count: u32,
    /// Per what.
    pub unit: RateUnit,
    /// How many may come at once above the rate (nft's default when `None`).
    pub burst: Option<u32>,
}

/// The unit of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
}

impl Rate {
    /// Reads `10/second` (also `minute`, `hour`, `day`).
    pub fn parse(s: &str) -> Result<Rate, String> {
        let bad = || format!("{s:?} is not a rate (e.g. 10/second, 5/minute)");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let count: u32 = n.parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!(
                "the rate {s:?} would drop everything: give at least 1"
            ));
        }
        let unit = match unit {
            "second" => RateUnit::Second,
            "minute" => RateUnit::Minute,
            "hour" => RateUnit::Hour,
            "day" => RateUnit::Day,
            _ => return Err(bad()),
        };
        Ok(Rate {
            count,
            unit,
            burst: None,
        })
    }
}

impl fmt::Display for Rate {
    /// As nft writes it: `10/second`, with ` burst N packets` if set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            RateUnit::Second => "second",
            RateUnit::Minute => "minute",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        };
        write!(f, "{}/{unit}", self.count)?;
        if let Some(b) = self.burst {
            write!(f, " burst {b} packets")?;
        }
        Ok(())
    }
}

/// A named set of addresses or networks of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSet {
    /// The set's name (also its name in nft).
    pub name: SetName,
    /// IPv4 or IPv6.
    pub family: Family,
    /// The elements the set starts with.
    pub elements: Vec<Network>,
}

/// Connections to `port` arriving in `zone` go to `to` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// The zone the connections arrive in (it must have interfaces).
    pub zone: ZoneName,
    /// TCP or UDP.
    pub transport: Transport,
    /// The port on this host.
    pub port: u16,
    /// The address behind this host that receives the connections.
    pub to_addr: IpAddr,
    /// The port there (the same port when `None`).
    pub to_port: Option<u16>,
}

impl PortForward {
    /// The port the connections reach at `to_addr`.
    pub fn target_port(&self) -> u16 {
        self.to_port.unwrap_or(self.port)
    }
}
