//! `kld_darksite`: darksites: signed offline APT mirrors for air-gapped installs.
//!
//! This crate has no public API yet: it is reserved in the workspace so that
//! the dependency direction (see the workspace README) is fixed from the
//! start. Its scope, once built: Package sets resolved to a closed set, downloaded and verified, published atomically and signed.
#![deny(missing_docs)]
