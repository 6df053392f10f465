//! `kld_nft`: nftables zones from a TOML file, rendered to one table of
//! kld's own (`inet kld`), checked with `nft -c`, applied in one kernel
//! transaction, read back and verified, with an exact rollback and an
//! optional confirmation deadline that undoes a change nobody confirmed.
//!
//! ```
//! use kld_nft::{render, ZoneFile};
//!
//! let file = ZoneFile::parse(r#"
//! [zones.public]
//! interfaces = ["eth0"]
//! [[zones.public.allow]]
//! service = ["http", "https"]
//!
//! [zones.mgmt]
//! interfaces = ["wg0"]
//! [[zones.mgmt.allow]]
//! tcp = 22
//! "#, "web.toml").unwrap();
//! let ruleset = render(&file);
//! assert!(ruleset.text().contains("iifname \"eth0\" jump in_public"));
//! assert!(ruleset.text().contains("tcp dport { 80, 443 } accept"));
//!
//! // Mistakes come with their place in the file.
//! let err = ZoneFile::parse("[zones.a]\ninterfaces = [\"eth0\"]\n[[zones.a.allow]]\ntcp = 70000\n", "bad.toml")
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "bad.toml:4:7: port 70000 is out of range (1-65535)");
//! ```
#![deny(missing_docs)]

mod addr;
mod error;
mod firewall;
mod live;
mod name;
mod nft;
mod parse;
mod render;
mod service;
mod state;
mod zones;

pub use addr::{Family, Network, NetworkError};
pub use error::Error;
pub use firewall::{Applied, Firewall, Recovered, Revert, SetOp, Status};
pub use live::{Difference, LiveChain, LiveRule, LiveSet, LiveTable, ReadError};
pub use name::{Interface, NameError, SetName, ZoneName};
pub use nft::Nft;
pub use parse::{FileError, Problem, DEFAULT_LOG_RATE};
pub use render::{
    render, Expected, ExpectedChain, ExpectedRule, ExpectedSet, Ruleset, FAMILY, TABLE,
};
pub use service::{service, PortRange, Transport, ICMPV6_TYPES, ICMP_TYPES, SERVICES};
pub use state::{Journal, Pending, StateDir, DEFAULT_STATE_DIR};
pub use zones::{NamedSet, PortForward, Rate, RateUnit, Rule, Zone, ZoneFile};

impl ZoneFile {
    /// Reads and checks the zone file at `path`.
    pub fn read(path: &std::path::Path) -> Result<ZoneFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(ZoneFile::parse(&text, &path.display().to_string())?)
    }
}

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
