//! kld's cross-crate scenario tests and the harness they run in.
//!
//! [`dist`] builds the Debian package and fresh bookworm roots to install
//! it into. [`darksite`] keeps a local mirror of real Debian packages for the
//! darksite tests. [`vm`] boots a real OpenZFS machine under qemu and runs shell scenarios in
//! it; `cargo xtask vm exec` and the VM tier of `cargo xtask test` use it.
//! [`netns`] gives host-tier tests network namespaces joined by veth pairs,
//! and real TCP traffic between them. [`kst`] collects and validates kst's
//! outputs (JSON schema, promtool) from VM and boot-tier runs. [`sealroot`]
//! is the real Debian root the seal tests seal. [`units`] verifies the
//! systemd units kld ships. [`fault`] kills a command after each of its
//! steps for the fault-injection tier.
#![deny(missing_docs)]

pub mod darksite;
pub mod dist;
pub mod fault;
pub mod kst;
pub mod netns;
pub mod sealroot;
pub mod units;
pub mod vm;
