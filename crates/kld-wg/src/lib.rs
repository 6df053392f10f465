//! `kld_wg`: the WireGuard backplane: keys, wg-quick files, live devices,
//! and a hub that lets spokes join through a short enrolment window.
//!
//! - [`key`]: private, public and preshared keys in `wg`'s base64, never
//!   shown in `Debug`, written to `0600` files.
//! - [`conf`]: wg-quick files parsed, edited in place and rendered back.
//! - [`device`]: live devices (kernel or userspace): show, apply like
//!   `wg syncconf`, add and remove peers.
//! - [`link`]: `up`/`down` as wg-quick does them.
//! - [`hub`], [`token`], [`enrol`]: the hub, its enrolment windows and the
//!   join exchange; [`journal`]: the append-only log a hub records its
//!   changes in.
//!
//! ```
//! use kld_wg::conf::{Config, Interface, Peer};
//! use kld_wg::key::PrivateKey;
//!
//! let hub = PrivateKey::generate();
//! let spoke = PrivateKey::generate();
//! let interface = Interface {
//!     addresses: vec!["10.250.0.1/24".parse()?],
//!     listen_port: Some(51820),
//!     private_key: Some(hub),
//!     ..Interface::default()
//! };
//! let mut config = Config::new(&interface, &[])?;
//! config.add_peer(&Peer {
//!     allowed_ips: vec!["10.250.0.2/32".parse()?],
//!     ..Peer::new(spoke.public_key())
//! })?;
//! assert!(config.render().contains("AllowedIPs = 10.250.0.2/32"));
//! // Debug output never holds the private key.
//! assert!(!format!("{config:?}").contains(&interface.private_key.unwrap().to_base64()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod conf;
pub mod device;
pub mod endpoint;
pub mod enrol;
pub mod file;
pub mod hub;
pub mod journal;
pub mod key;
pub mod link;
pub mod net;
pub mod server;
pub mod token;
mod uapi;

/// Seconds since the epoch now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
