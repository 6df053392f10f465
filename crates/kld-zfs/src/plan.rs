//! Plans: the exact operations a mutating call will perform, shown by
//! `--dry-run` and then run as shown.

use std::fmt;

use kld_exec::Cmd;

use crate::error::{Error, Result};
use crate::lzc;
use crate::name::{DatasetName, SnapshotName};

/// One operation of a plan.
#[derive(Debug, Clone)]
pub enum Step {
    /// Run a program (`zfs ...`, `zpool ...`).
    Run(Cmd),
    /// Take these snapshots in one transaction group through libzfs_core.
    LzcSnapshot(Vec<SnapshotName>),
    /// Destroy these snapshots (of one pool) in one transaction group
    /// through libzfs_core.
    LzcDestroySnapshots(Vec<SnapshotName>),
    /// Clone a snapshot (unmounted) through libzfs_core.
    LzcClone {
        /// The origin.
        snapshot: SnapshotName,
        /// The new dataset.
        target: DatasetName,
    },
    /// Make these clones (parents existing) at the same time through
    /// libzfs_core, each with its properties in its `lzc_clone` call.
    LzcClones(Vec<crate::zfs::CloneSpec>),
    /// Run a channel program: `cmd` followed by the script's path and
    /// `args`; the script is written to a private temporary file first.
    Program {
        /// `zfs program [limits] POOL`.
        cmd: Cmd,
        /// What the script is called in messages.
        name: &'static str,
        /// The Lua source.
        source: &'static str,
        /// The script's arguments.
        args: Vec<String>,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[SnapshotName]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        match self {
            Step::Run(cmd) => f.write_str(&cmd.display()),
            Step::LzcSnapshot(snaps) => {
                write!(f, "lzc_snapshot {} (one transaction group)", names(snaps))
            }
            Step::LzcDestroySnapshots(snaps) => write!(
                f,
                "lzc_destroy_snaps {} (one transaction group)",
                names(snaps)
            ),
            Step::LzcClone { snapshot, target } => write!(f, "lzc_clone {snapshot} {target}"),
            Step::LzcClones(clones) => {
                let lines: Vec<String> = clones
                    .iter()
                    .map(|c| {
                        let mut line = format!("lzc_clone {} {}", c.snapshot, c.target);
                        for p in &c.props {
                            line.push_str(&format!(" -o {}", kld_exec::quote(&p.to_string())));
                        }
                        line
                    })
                    .collect();
                f.write_str(&lines.join("\n"))
            }
            Step::Program {
                cmd, name, args, ..
            } => {
                let args: Vec<_> = args
                    .iter()
                    .map(|a| kld_exec::quote(a).into_owned())
                    .collect();
                write!(
                    f,
                    "{} <{name}> {} (one transaction group)",
                    cmd.display(),
                    args.join(" ")
                )
            }
        }
    }
}

/// An ordered list of operations, run in order; the first failure stops it.
/// Steps added with [`Plan::finally`] run afterwards whether or not the main
/// steps succeeded (e.g. remounting what was unmounted).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    steps: Vec<Step>,
    finally: Vec<Step>,
}

impl Plan {
    /// A plan of the given steps.
    pub fn new(steps: Vec<Step>) -> Self {
        Plan {
            steps,
            finally: Vec::new(),
        }
    }

    /// Adds steps that run after the main ones, whatever their outcome.
    pub fn finally(mut self, steps: Vec<Step>) -> Self {
        self.finally.extend(steps);
        self
    }

    /// The steps, in order (the `finally` steps last).
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(&self.finally)
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.finally.is_empty()
    }

    /// Appends the steps of another plan.
    pub fn extend(&mut self, other: Plan) {
        self.steps.extend(other.steps);
        self.finally.extend(other.finally);
    }

    /// Runs the steps in order and stops at the first failure; then runs the
    /// `finally` steps. The first error is returned.
    pub fn run(&self) -> Result<()> {
        let main = self.steps.iter().try_for_each(run_step);
        let cleanup: Vec<Result<()>> = self.finally.iter().map(run_step).collect();
        let cleanup = cleanup.into_iter().find(Result::is_err).unwrap_or(Ok(()));
        main.and(cleanup)
    }
}

fn run_step(step: &Step) -> Result<()> {
    match step {
        Step::Run(cmd) => cmd.run().map(drop).map_err(Error::Command),
        Step::LzcSnapshot(snaps) => lzc::snapshot(snaps),
        Step::LzcDestroySnapshots(snaps) => lzc::destroy_snapshots(snaps),
        Step::LzcClone { snapshot, target } => lzc::clone(snapshot, target),
        Step::LzcClones(clones) => lzc::clone_all(clones),
        Step::Program {
            cmd, source, args, ..
        } => {
            let mut script = tempfile::Builder::new()
                .prefix("kld-")
                .suffix(".lua")
                .tempfile()
                .map_err(|source| Error::Io {
                    what: "cannot write a channel program".into(),
                    source,
                })?;
            std::io::Write::write_all(&mut script, source.as_bytes()).map_err(|source| {
                Error::Io {
                    what: "cannot write a channel program".into(),
                    source,
                }
            })?;
            cmd.clone()
                .arg(script.path())
                .args(args)
                .run()
                .map(drop)
                .map_err(Error::Command)
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in self.steps() {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}
