//! `kld_nft`: nftables zones: a typed model rendered to one table and applied in one kernel transaction.
//!
//! This crate has no public API yet: it is reserved in the workspace so that
//! the dependency direction (see the workspace README) is fixed from the
//! start. Its scope, once built: Zones from TOML, rendered to nft text, checked with `nft -c`, applied atomically to kld's own table and read back.
#![deny(missing_docs)]
