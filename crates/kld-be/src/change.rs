//! Changes: the steps a mutating operation will take, each with what undoes
//! it, shown by `--dry-run` and run all or nothing.

use std::fmt;

use kld_zfs::Plan;

use crate::error::{Error, Result};

/// One step and the plan that undoes it.
#[derive(Debug, Clone)]
struct Action {
    run: Plan,
    undo: Plan,
}

/// The steps of one boot-environment operation. [`Change::run`] runs them in
/// order; if one fails, the steps before it are undone, newest first, so
/// that nothing is left half done.
#[derive(Debug, Clone, Default)]
pub struct Change {
    actions: Vec<Action>,
    notes: Vec<String>,
}

impl Change {
    /// Adds a step with what undoes it (an empty plan if it needs no undoing
    /// or cannot be undone, e.g. a destroy that comes last).
    pub(crate) fn push(&mut self, run: Plan, undo: Plan) {
        if !run.is_empty() {
            self.actions.push(Action { run, undo });
        }
    }

    /// Adds the steps and notes of another change after these.
    pub(crate) fn append(&mut self, other: Change) {
        self.actions.extend(other.actions);
        self.notes.extend(other.notes);
    }

    /// Adds a remark for the user (what was decided, what to watch).
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Remarks about the change, for the user (not part of the steps).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The steps, one line each, as they will run.
    pub fn steps(&self) -> Vec<String> {
        self.actions
            .iter()
            .flat_map(|a| a.run.steps().map(|s| s.to_string()))
            .collect()
    }

    /// Runs the steps in order. If one fails, the steps before it are undone
    /// (newest first) and the error says what failed and what, if anything,
    /// could not be undone.
    pub fn run(&self) -> Result<()> {
        for (i, action) in self.actions.iter().enumerate() {
            if let Err(cause) = action.run.run() {
                let mut not_undone = Vec::new();
                for done in self.actions[..i].iter().rev() {
                    if let Err(e) = done.undo.run() {
                        not_undone.push(format!("{}({e})", done.undo.to_string().trim_end()));
                    }
                }
                return Err(Error::Failed {
                    step: action.run.to_string().trim_end().to_owned(),
                    cause: Box::new(cause),
                    undone: i,
                    not_undone,
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in self.steps() {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kld_exec::Cmd;
    use kld_zfs::Step;

    fn sh(script: &str) -> Plan {
        Plan::new(vec![Step::Run(Cmd::new("sh").args(["-c", script]))])
    }

    #[test]
    fn a_failing_step_undoes_the_steps_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let mut change = Change::default();
        change.push(sh(&format!("touch {d}/one")), sh(&format!("rm {d}/one")));
        change.push(sh(&format!("touch {d}/two")), sh(&format!("rm {d}/two")));
        change.push(sh("exit 3"), Plan::default());
        change.push(sh(&format!("touch {d}/four")), Plan::default());
        let err = change.run().unwrap_err();
        assert!(matches!(err, Error::Failed { undone: 2, .. }), "{err}");
        assert!(err.to_string().contains("exit 3"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_undo_that_fails_is_reported() {
        let mut change = Change::default();
        change.push(sh("true"), sh("echo cannot >&2; exit 1"));
        change.push(sh("false"), Plan::default());
        let err = change.run().unwrap_err().to_string();
        assert!(err.contains("left over"), "{err}");
    }
}
