//! `kld_seal`: sealing an installed system for cloning, and exporting disks as golden images.
//!
//! This crate has no public API yet: it is reserved in the workspace so that
//! the dependency direction (see the workspace README) is fixed from the
//! start. Its scope, once built: Seal operations listed by a dry run, exports to qcow2/vmdk/vhd/ova/raw with checksums.
#![deny(missing_docs)]
