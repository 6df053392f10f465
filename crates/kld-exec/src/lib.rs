//! Run external programs the way kld needs: an argument vector and never a
//! shell, errors that say exactly what ran and how it failed, and streams
//! piped from one process to the next without passing through memory whole.
//!
//! ```
//! use kld_exec::Cmd;
//!
//! # fn main() -> Result<(), kld_exec::Error> {
//! let out = Cmd::new("printf").args(["%s-%s", "a", "b"]).run()?;
//! assert_eq!(out.stdout_str(), "a-b");
//!
//! // A failure carries the program, its arguments, the exit status and the
//! // tail of its standard error.
//! let err = Cmd::new("ls").arg("/nonexistent").run().unwrap_err();
//! assert!(err.to_string().contains("ls /nonexistent"));
//! # Ok(())
//! # }
//! ```
//!
//! Every program run is one step of the fault-injection hook
//! ([`kld_fs::fault`]): tests stop a command right after its Nth program.
#![deny(missing_docs)]

mod cmd;
mod error;
mod pipeline;
mod quote;

pub use cmd::{Cmd, Output};
pub use error::Error;
pub use pipeline::Pipeline;
pub use quote::quote;
