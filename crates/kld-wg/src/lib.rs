//! `kld_wg`: the WireGuard backplane: keys, wg-quick files, live devices, hub and spoke enrolment.
//!
//! This crate has no public API yet: it is reserved in the workspace so that
//! the dependency direction (see the workspace README) is fixed from the
//! start. Its scope, once built: Keys that never leak, wg-quick files edited in place, and peers changed live.
#![deny(missing_docs)]
