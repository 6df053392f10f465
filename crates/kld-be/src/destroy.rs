//! Removing boot environments: destroy one (promoting the boot
//! environments that depend on it, and removing its origin snapshot when
//! nothing else uses it), and prune by age or count.

use kld_zfs::name::SnapshotName;
use kld_zfs::Plan;

use crate::change::Change;
use crate::create::SNAPSHOT_PREFIX;
use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::name::BeName;
use crate::state::{BootEnvironment, BootEnvironments, State};

/// Which boot environments `prune` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Only those created more than this many seconds before `now`.
    pub older_than: Option<u64>,
    /// Never the newest this many (counting every boot environment).
    pub keep: Option<usize>,
    /// The time to measure ages from, seconds since the epoch.
    pub now: u64,
}

/// What `prune` would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneSelection {
    /// The boot environments to destroy, newest first (so that fewer of
    /// them need a promotion).
    pub destroy: Vec<BeName>,
    /// Boot environments the policy selected but that are kept, with why.
    pub protected: Vec<(BeName, String)>,
}

impl BootEnvironments {
    /// Plans destroying a boot environment and its children. Boot
    /// environments cloned from its snapshots are promoted first (they take
    /// over the snapshots they need); its origin snapshots are destroyed
    /// afterwards when they were made by `create` and nothing else uses or
    /// holds them. Refused for the running and next-boot boot environments
    /// and for one that is mounted. The rollback target, named, is
    /// destroyed and the record cleared first (a rollback has nowhere to go
    /// then); [`prune_selection`](Self::prune_selection) never chooses it.
    ///
    /// The change is journaled: the journal names the boot environment and
    /// the origin snapshots to remove, so that a killed destroy is finished
    /// by the next [`recovery`](Self::recovery).
    pub fn destroy(&self, name: &BeName) -> Result<Change> {
        let state = self.state()?;
        let be = state.get(name)?;
        state.refuse_booted(be, "destroy")?;
        if let Some(d) = be.datasets.iter().find(|d| d.mounted_at.is_some()) {
            return Err(Error::Refused(format!(
                "cannot destroy boot environment {name}: {} is mounted at {} (kbe unmount {name})",
                d.name,
                d.mounted_at.as_ref().expect("found mounted").display()
            )));
        }
        let mut change = Change::default();
        let journal = |snapshots: &[SnapshotName]| Journal::Destroy {
            name: name.clone(),
            snapshots: snapshots.to_vec(),
        };
        let (steps, remove) = self.destroy_change(be)?;
        change.push(
            self.journal_plan(&journal(&remove), &[])?,
            self.clear_journal()?,
        );
        if be.rollback_target {
            change.push(self.record_previous(None)?, Plan::default());
            change.note(format!(
                "{name} was the rollback target: the record is cleared (kbe rollback has no \
                 target until the next kbe activate)"
            ));
        }
        change.append(steps);
        change.push(self.clear_journal()?, Plan::default());
        Ok(change)
    }

    /// The promotions and destroys that remove `be`, and the origin
    /// snapshots among them.
    fn destroy_change(&self, be: &BootEnvironment) -> Result<(Change, Vec<SnapshotName>)> {
        let snaps = self.zfs.snapshots(&[&be.dataset], true)?;
        let mut change = Change::default();
        // Origin snapshots that may go afterwards, with the clones and holds
        // they will still have (None: ask ZFS).
        let mut origins: Vec<(SnapshotName, Option<bool>)> = Vec::new();
        for ds in &be.datasets {
            let newest_with_dependents = snaps.iter().rev().find_map(|s| {
                if s.name.dataset() != ds.name {
                    return None;
                }
                let outside: Vec<_> = s
                    .clones
                    .iter()
                    .filter(|c| !c.is_within(&be.dataset))
                    .collect();
                (!outside.is_empty()).then_some((s, outside))
            });
            match newest_with_dependents {
                Some((snap, dependents)) => {
                    let heir = dependents[0];
                    change.push(self.zfs.promote(heir), Plan::default());
                    change.note(format!(
                        "{heir} depends on {} and is promoted: it takes over the snapshots up \
                         to @{}",
                        ds.name,
                        snap.name.short()
                    ));
                    let unused = dependents.len() == 1 && snap.holds == 0;
                    origins.push((heir.snapshot(snap.name.short())?, Some(unused)));
                }
                None => {
                    if let Some(origin) = &ds.origin {
                        origins.push((SnapshotName::new(origin.as_str())?, None));
                    }
                }
            }
        }
        change.push(self.zfs.destroy(&be.dataset, true), Plan::default());
        let ours: Vec<&(SnapshotName, Option<bool>)> = origins
            .iter()
            .filter(|(s, _)| s.short().starts_with(SNAPSHOT_PREFIX))
            .collect();
        let unknown: Vec<&str> = ours
            .iter()
            .filter(|(_, known)| known.is_none())
            .map(|(s, _)| s.as_str())
            .collect();
        let facts = if unknown.is_empty() {
            Vec::new()
        } else {
            self.zfs.get(&unknown, &["clones", "userrefs"], false)?
        };
        let fact = |snap: &str, prop: &str| {
            facts
                .iter()
                .find(|v| v.name == snap && v.property == prop)
                .map(|v| v.value.clone())
                .unwrap_or_default()
        };
        let mut remove = Vec::new();
        for (snap, known) in ours {
            let unused = known.unwrap_or_else(|| {
                let clones = fact(snap.as_str(), "clones");
                let only_ours = clones
                    .split(',')
                    .filter(|c| !c.is_empty() && *c != "-")
                    .all(|c| {
                        kld_zfs::name::DatasetName::new(c).is_ok_and(|c| c.is_within(&be.dataset))
                    });
                only_ours && fact(snap.as_str(), "userrefs") == "0"
            });
            if unused {
                remove.push(snap.clone());
            } else {
                change.note(format!("{snap} is kept: something else uses or holds it"));
            }
        }
        change.push(self.zfs.destroy_snapshots(&remove), Plan::default());
        Ok((change, remove))
    }

    /// Chooses the boot environments `policy` prunes. The running, next-boot
    /// and rollback boot environments are never chosen.
    pub fn prune_selection(&self, policy: &PrunePolicy) -> Result<PruneSelection> {
        if policy.older_than.is_none() && policy.keep.is_none() {
            return Err(Error::Refused(
                "prune needs an age (older than) or a count to keep".into(),
            ));
        }
        Ok(select(&self.state()?, policy))
    }
}

/// The pure part of [`BootEnvironments::prune_selection`].
fn select(state: &State, policy: &PrunePolicy) -> PruneSelection {
    let mut newest_first: Vec<&BootEnvironment> = state.environments.iter().collect();
    newest_first.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    let mut selection = PruneSelection {
        destroy: Vec::new(),
        protected: Vec::new(),
    };
    for (i, be) in newest_first.iter().enumerate() {
        let kept_by_count = policy.keep.is_some_and(|k| i < k);
        let young = policy
            .older_than
            .is_some_and(|age| be.created.saturating_add(age) > policy.now);
        if kept_by_count || young {
            continue;
        }
        match state.refuse_protected(be, "prune") {
            Ok(()) => selection.destroy.push(be.name.clone()),
            Err(e) => selection.protected.push((be.name.clone(), e.to_string())),
        }
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;
    use kld_zfs::name::DatasetName;

    fn be(name: &str, created: u64) -> BootEnvironment {
        BootEnvironment {
            name: BeName::new(name).unwrap(),
            dataset: DatasetName::new(format!("p/ROOT/{name}")).unwrap(),
            active: false,
            next_boot: false,
            rollback_target: false,
            incomplete: false,
            created,
            used: 0,
            referenced: 0,
            origin: None,
            mounted_at: None,
            datasets: Vec::new(),
        }
    }

    fn state(envs: Vec<BootEnvironment>) -> State {
        State {
            root: DatasetName::new("p/ROOT").unwrap(),
            pool: kld_zfs::name::PoolName::new("p").unwrap(),
            bootfs: None,
            altroot: None,
            environments: envs,
            journal: None,
            previous_record: None,
            taken: Default::default(),
        }
    }

    fn names(v: &[BeName]) -> Vec<&str> {
        v.iter().map(BeName::as_str).collect()
    }

    #[test]
    fn keeps_the_newest_and_the_young_and_never_the_protected() {
        let mut running = be("a", 100);
        running.active = true;
        let mut next = be("d", 400);
        next.next_boot = true;
        let s = state(vec![
            running,
            be("b", 200),
            be("c", 300),
            next,
            be("e", 500),
        ]);
        let keep2 = PrunePolicy {
            older_than: None,
            keep: Some(2),
            now: 1000,
        };
        let sel = select(&s, &keep2);
        assert_eq!(names(&sel.destroy), ["c", "b"], "newest first");
        assert_eq!(sel.protected.len(), 1);
        assert_eq!(sel.protected[0].0.as_str(), "a");
        let old = PrunePolicy {
            older_than: Some(750),
            keep: None,
            now: 1000,
        };
        assert_eq!(names(&select(&s, &old).destroy), ["b"]);
        let both = PrunePolicy {
            older_than: Some(650),
            keep: Some(4),
            now: 1000,
        };
        assert!(select(&s, &both).destroy.is_empty());
    }

    #[test]
    fn the_rollback_target_is_kept_by_prune_but_may_be_destroyed_by_name() {
        let mut target = be("r", 100);
        target.rollback_target = true;
        let mut next = be("n", 10);
        next.next_boot = true;
        let s = state(vec![target.clone(), be("x", 50), next.clone()]);
        let all = PrunePolicy {
            older_than: None,
            keep: Some(0),
            now: 1000,
        };
        let sel = select(&s, &all);
        assert_eq!(names(&sel.destroy), ["x"]);
        assert!(sel
            .protected
            .iter()
            .any(|(n, why)| n.as_str() == "r" && why.contains("rollback target")));
        assert!(s.refuse_booted(&target, "destroy").is_ok());
        assert!(s.refuse_booted(&next, "destroy").is_err());
    }
}
