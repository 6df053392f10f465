//! `kld_zfs`: ZFS datasets, snapshots, bookmarks, clones, properties, send/receive, pool status and space accounting.
//!
//! This crate has no public API yet: it is reserved in the workspace so that
//! the dependency direction (see the workspace README) is fixed from the
//! start. Its scope, once built: Typed names, pure parsers for `zfs`/`zpool -H -p` output, and operations that act on many datasets in one transaction group.
#![deny(missing_docs)]
