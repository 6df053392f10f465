//! Mounting a boot environment somewhere else (to inspect it, or to
//! upgrade it in a chroot) and unmounting it again.

use std::path::Path;

use kld_exec::Cmd;
use kld_zfs::{Plan, Step};

use crate::change::Change;
use crate::error::{Error, Result};
use crate::name::BeName;
use crate::state::BootEnvironments;

impl BootEnvironments {
    /// Plans mounting boot environment `name` at `path` (an existing
    /// directory), its children below it where their `mountpoint` says
    /// (those with `canmount=off` or no mountpoint are skipped). A mount
    /// that fails unmounts the ones before it.
    pub fn mount(&self, name: &BeName, path: &Path) -> Result<Change> {
        let state = self.state()?;
        let be = state.get(name)?;
        if be.active {
            return Err(Error::Refused(format!(
                "{name} is the running boot environment; it is mounted at /"
            )));
        }
        if be.incomplete {
            return Err(Error::Refused(format!(
                "cannot mount boot environment {name}: it is incomplete (an interrupted kbe \
                 create; the next kbe command that changes something removes it)"
            )));
        }
        if let Some(d) = be.datasets.iter().find(|d| d.mounted_at.is_some()) {
            return Err(Error::Refused(format!(
                "{} is already mounted at {}",
                d.name,
                d.mounted_at.as_ref().expect("found mounted").display()
            )));
        }
        if !path.is_absolute() || !path.is_dir() {
            return Err(Error::Refused(format!(
                "{} is not an existing directory given by its absolute path",
                path.display()
            )));
        }
        let mut change = Change::default();
        for ds in &be.datasets {
            if ds.canmount == "off" || !ds.mountpoint.starts_with('/') {
                continue;
            }
            let target = path.join(ds.mountpoint.trim_start_matches('/'));
            let mut steps = Vec::new();
            if ds.name != be.dataset {
                steps.push(Step::Run(Cmd::new("mkdir").arg("-p").arg(&target)));
            }
            steps.push(Step::Run(
                Cmd::new("mount")
                    .args(["-t", "zfs", "-o", "zfsutil"])
                    .arg(&ds.name)
                    .arg(&target),
            ));
            change.push(
                Plan::new(steps),
                Plan::new(vec![Step::Run(Cmd::new("umount").arg(&target))]),
            );
        }
        Ok(change)
    }

    /// Plans unmounting every dataset of boot environment `name`, deepest
    /// first. Refused for the running boot environment and one that is not
    /// mounted.
    pub fn unmount(&self, name: &BeName) -> Result<Change> {
        let state = self.state()?;
        let be = state.get(name)?;
        if be.active {
            return Err(Error::Refused(format!(
                "{name} is the running boot environment"
            )));
        }
        let mut targets: Vec<&Path> = be
            .datasets
            .iter()
            .filter_map(|d| d.mounted_at.as_deref())
            .collect();
        if targets.is_empty() {
            return Err(Error::Refused(format!("{name} is not mounted")));
        }
        targets.sort_by_key(|t| std::cmp::Reverse(t.components().count()));
        let mut change = Change::default();
        for t in targets {
            change.push(
                Plan::new(vec![Step::Run(Cmd::new("umount").arg(t))]),
                Plan::default(),
            );
        }
        Ok(change)
    }
}
