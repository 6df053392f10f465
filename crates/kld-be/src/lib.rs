//! `kld_be`: boot environments on ZFS, built on kld-zfs.
//!
//! This crate has no public API yet: it is reserved in the workspace so that
//! the dependency direction (see the workspace README) is fixed from the
//! start. Its scope, once built: Create, list, activate, roll back, rename, destroy, mount and prune boot environments, all or nothing.
#![deny(missing_docs)]
