//! Choosing what boots next: activate (the pool's `bootfs`, the previous
//! boot environment recorded, hooks for other bootloaders), rollback, and
//! rename.

use std::path::{Path, PathBuf};

use kld_exec::Cmd;
use kld_zfs::props::Property;
use kld_zfs::{Plan, Step};

use crate::change::Change;
use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::name::BeName;
use crate::state::{BootEnvironment, BootEnvironments, State, PREVIOUS_PROPERTY};

impl BootEnvironments {
    /// Plans making `name` the boot environment the pool boots next. In
    /// order: the boot environment booting next now is recorded on the root
    /// (`kld:previous-be`) as the rollback target; each hook runs as
    /// `HOOK activate NEW_DATASET OLD_DATASET` (`-` for none); the pool's
    /// `bootfs` changes last. If a hook fails, the record is restored, the
    /// hooks that ran are run again for the old boot environment, and
    /// `bootfs` is untouched.
    pub fn activate(&self, name: &BeName) -> Result<Change> {
        let state = self.state()?;
        let be = state.get(name)?;
        let mut change = Change::default();
        if be.incomplete {
            return Err(Error::Refused(format!(
                "cannot activate boot environment {name}: it is incomplete (an interrupted kbe \
                 create; the next kbe command that changes something removes it)"
            )));
        }
        if be.next_boot {
            change.note(format!("{name} already boots next; nothing to do"));
            return Ok(change);
        }
        let old = state.next_boot();
        // The journal and the new rollback record in one `zfs set`: a kill
        // after it leaves a journal that says what to undo.
        let journal = Journal::Activate {
            name: name.clone(),
            previous: state.previous_record.clone(),
        };
        let mut record = match old {
            Some(old) => self.journal_plan(
                &journal,
                &[Property::new(PREVIOUS_PROPERTY, old.name.as_str())?],
            )?,
            None => {
                let mut plan = self.journal_plan(&journal, &[])?;
                plan.extend(self.record_previous(None)?);
                plan
            }
        };
        let mut undo = self.record_previous(state.previous_record.as_ref())?;
        undo.extend(self.clear_journal()?);
        change.push(std::mem::take(&mut record), undo);
        change.append(self.hooks_change(&state, be, old)?);
        change.push(
            self.zfs.set_bootfs(&state.pool, Some(&be.dataset)),
            Plan::default(),
        );
        change.push(self.clear_journal()?, Plan::default());
        if be.canmount_noauto_missing() {
            change.note(format!(
                "{} has canmount other than noauto: it may mount over the running system",
                be.dataset
            ));
        }
        change.note(match old {
            Some(old) => format!("{name} boots next; `kbe rollback` returns to {}", old.name),
            None => format!("{name} boots next"),
        });
        Ok(change)
    }

    /// The hooks run for `new` replacing `old`, each undone by running it
    /// the other way round.
    pub(crate) fn hooks_change(
        &self,
        state: &State,
        new: &BootEnvironment,
        old: Option<&BootEnvironment>,
    ) -> Result<Change> {
        let mut change = Change::default();
        for hook in hooks(self.hooks.as_deref())? {
            let run = hook_plan(&hook, state, Some(new), old);
            let undo = match old {
                Some(old) => hook_plan(&hook, state, Some(old), Some(new)),
                None => Plan::default(),
            };
            change.push(run, undo);
        }
        Ok(change)
    }

    /// Plans activating the recorded rollback target: the boot environment
    /// that booted next before the last activation.
    pub fn rollback(&self) -> Result<Change> {
        let state = self.state()?;
        let target = state.rollback_target().ok_or_else(|| {
            Error::Refused(format!(
                "no rollback target is recorded on {} (kbe activate records one)",
                self.root
            ))
        })?;
        self.activate(&target.name)
    }

    /// Plans renaming a boot environment (its children travel with it).
    pub fn rename(&self, from: &BeName, to: &BeName) -> Result<Change> {
        let state = self.state()?;
        let be = state.get(from)?;
        state.refuse_protected(be, "rename")?;
        if be.incomplete {
            return Err(Error::Refused(format!(
                "cannot rename boot environment {from}: it is incomplete (an interrupted kbe \
                 create; the next kbe command that changes something removes it)"
            )));
        }
        let target = self.root.child(to.as_str())?;
        if state.taken.contains(&target) {
            return Err(Error::Refused(format!("{target} already exists")));
        }
        let mut change = Change::default();
        change.push(self.zfs.rename(&be.dataset, &target), Plan::default());
        Ok(change)
    }
}

impl BootEnvironment {
    fn canmount_noauto_missing(&self) -> bool {
        self.datasets
            .first()
            .is_some_and(|d| d.canmount != "noauto")
    }
}

/// The executable files in `dir`, in name order (none if it is absent).
fn hooks(dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(kld_zfs::Error::Io {
                what: format!("cannot list the hook directory {}", dir.display()),
                source,
            }
            .into())
        }
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    found.sort();
    Ok(found)
}

fn hook_plan(
    hook: &Path,
    state: &State,
    new: Option<&BootEnvironment>,
    old: Option<&BootEnvironment>,
) -> Plan {
    let ds = |b: Option<&BootEnvironment>| b.map(|b| b.dataset.to_string()).unwrap_or("-".into());
    let name = |b: Option<&BootEnvironment>| b.map(|b| b.name.to_string()).unwrap_or_default();
    Plan::new(vec![Step::Run(
        Cmd::new(hook)
            .arg("activate")
            .arg(ds(new))
            .arg(ds(old))
            .env("KLD_BE_POOL", state.pool.as_str())
            .env("KLD_BE_ROOT", state.root.as_str())
            .env("KLD_BE_NAME", name(new))
            .env("KLD_BE_PREVIOUS", name(old)),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_the_executables_in_name_order() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, mode) in [("20-grub", 0o755), ("10-zbm", 0o755), ("README", 0o644)] {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let found = hooks(Some(dir.path())).unwrap();
        let names: Vec<_> = found.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["10-zbm", "20-grub"]);
        assert!(hooks(Some(&dir.path().join("absent"))).unwrap().is_empty());
        assert!(hooks(None).unwrap().is_empty());
    }
}
