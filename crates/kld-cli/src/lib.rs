//! What kld's binaries share: output modes, error reporting and exit codes,
//! a progress line, time, and resolving a TARGET (a dataset or a path) to a dataset. Each
//! binary is one file in `src/bin/`.
#![deny(missing_docs)]

pub mod args;
pub mod failure;
pub mod health;
pub mod migrate;
pub mod output;
pub mod progress;
pub mod target;
pub mod time;
