//! `kld_darksite`: darksites, signed offline APT mirrors for air-gapped
//! installs.
#![deny(missing_docs)]

pub mod deb822;
pub mod index;
pub mod relation;
pub mod resolve;
pub mod set;
pub mod version;
