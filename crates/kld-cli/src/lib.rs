//! The home of kld's command-line binaries (`src/bin/<name>.rs`), each a thin
//! layer over the libraries. No binary exists yet: commands appear here as
//! the library behind each one is built, and not before.
#![deny(missing_docs)]
