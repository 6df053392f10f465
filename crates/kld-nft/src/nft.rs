//! Running `nft`: check, load, list. Text goes in on standard input, so no
//! temporary file is needed and nothing is left behind.

use kld_exec::Cmd;

use crate::render::{FAMILY, TABLE};

/// The `nft` program kld runs.
#[derive(Debug, Clone)]
pub struct Nft {
    program: String,
}

impl Default for Nft {
    fn default() -> Self {
        Nft::new()
    }
}

impl Nft {
    /// `nft` from `PATH`.
    pub fn new() -> Nft {
        Nft {
            program: "nft".into(),
        }
    }

    /// A different `nft` binary (a path, or a name looked up in `PATH`).
    pub fn with_program(program: impl Into<String>) -> Nft {
        Nft {
            program: program.into(),
        }
    }

    fn cmd(&self) -> Cmd {
        Cmd::new(&self.program)
    }

    /// Checks `text` as `nft -c -f -` does: parsed and validated against the
    /// kernel, nothing committed.
    pub fn check(&self, text: &str) -> Result<(), kld_exec::Error> {
        self.cmd()
            .args(["-c", "-f", "-"])
            .stdin_bytes(text)
            .run()
            .map(drop)
    }

    /// Loads `text` with `nft -f -`: one transaction, all of it or nothing.
    pub fn load(&self, text: &str) -> Result<(), kld_exec::Error> {
        self.cmd()
            .args(["-f", "-"])
            .stdin_bytes(text)
            .run()
            .map(drop)
    }

    /// Runs one nft command given as arguments (e.g. `add element ...`).
    pub fn command(&self, args: &[&str]) -> Result<(), kld_exec::Error> {
        self.cmd().args(args).run().map(drop)
    }

    /// `nft list table inet kld` (text), or `None` if the table does not
    /// exist.
    pub fn list_text(&self) -> Result<Option<String>, kld_exec::Error> {
        self.list(&[])
    }

    /// `nft -j list table inet kld` (JSON), or `None` if the table does not
    /// exist.
    pub fn list_json(&self) -> Result<Option<String>, kld_exec::Error> {
        self.list(&["-j"])
    }

    fn list(&self, flags: &[&str]) -> Result<Option<String>, kld_exec::Error> {
        let out = self
            .cmd()
            .args(flags)
            .args(["list", "table", FAMILY, TABLE])
            .run();
        match out {
            Ok(o) => Ok(Some(o.stdout_str())),
            // nft's way of saying the table is not there.
            Err(e)
                if e.exit_code() == Some(1) && e.stderr().contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `nft list ruleset`: every table, for checks that nothing else changed.
    pub fn list_ruleset(&self) -> Result<String, kld_exec::Error> {
        Ok(self.cmd().args(["list", "ruleset"]).run()?.stdout_str())
    }
}
