//! Creating a boot environment: from the running one, another one, a
//! snapshot, or by adopting a dataset from outside the root (such as a
//! `zfs receive` target), children included, all or nothing.

use kld_zfs::name::{DatasetName, SnapshotName};
use kld_zfs::parse::Source as PropertySource;
use kld_zfs::props::Property;
use kld_zfs::{CloneSpec, Depth, Kind, Plan, Snapshot};

use crate::change::Change;
use crate::error::{Error, Result};
use crate::journal::{Journal, JOURNAL_PROPERTY};
use crate::name::BeName;
use crate::state::{running_root, strip_altroot, BootEnvironments, PREVIOUS_PROPERTY};

/// The prefix of the snapshots `create` takes; `destroy` removes an origin
/// snapshot only if it has this prefix (and nothing else uses it).
pub const SNAPSHOT_PREFIX: &str = "kbe-";

/// Properties never copied to a clone: set by kbe itself, or fixed by the
/// origin's encryption.
const NOT_COPIED: &[&str] = &[
    "mountpoint",
    "canmount",
    "encryption",
    "keyformat",
    "keylocation",
    "pbkdf2iters",
    PREVIOUS_PROPERTY,
    JOURNAL_PROPERTY,
];

/// What a new boot environment is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The running boot environment, as it is now.
    Running,
    /// Another boot environment, as it is now.
    Environment(BeName),
    /// A snapshot of a boot environment (`NAME@SNAP`).
    EnvironmentSnapshot(BeName, String),
    /// A dataset (given with its pool: `rpool/incoming/debian-v43`): its
    /// newest snapshot that all its descendants share, or a new snapshot if
    /// it has none. A dataset directly under the root counts as a boot
    /// environment.
    Dataset(DatasetName),
    /// A snapshot of any dataset (`rpool/incoming/debian-v43@golden`); its
    /// descendants' snapshots of the same name come too.
    Snapshot(SnapshotName),
}

impl Source {
    /// Reads the FROM argument of `kbe create`: `NAME`, `NAME@SNAP`, or a
    /// dataset or snapshot given with its pool (anything with a `/`).
    pub fn parse(text: &str) -> Result<Source> {
        if text.contains('/') {
            return Ok(if text.contains('@') {
                Source::Snapshot(SnapshotName::new(text)?)
            } else {
                Source::Dataset(DatasetName::new(text)?)
            });
        }
        match text.split_once('@') {
            Some((be, snap)) => {
                // Checked as a snapshot name, through a stand-in dataset.
                SnapshotName::new(format!("p/{be}@{snap}"))?;
                Ok(Source::EnvironmentSnapshot(
                    BeName::new(be)?,
                    snap.to_owned(),
                ))
            }
            None => Ok(Source::Environment(BeName::new(text)?)),
        }
    }
}

impl BootEnvironments {
    /// Plans a new boot environment `name` from `source`, as one journaled
    /// operation: the journal on the root names it first (from then on it
    /// is listed as incomplete and cannot be activated); one snapshot of
    /// the source tree in one transaction group (unless a snapshot was
    /// named); a clone of each dataset with the source's own properties
    /// and `canmount=noauto` (or `off` where the source has `off`) in the
    /// same `lzc_clone` call, parents first, the datasets of one level at
    /// the same time; the new root's `mountpoint=/` then; the journal's
    /// clearing last. Nothing mounts over the running system, and no
    /// bootloader sees the new boot environment before it is whole. If a
    /// step fails, what was made is destroyed again; if the run is killed,
    /// the next [`recovery`](Self::recovery) removes it.
    pub fn create(&self, name: &BeName, source: &Source) -> Result<Change> {
        // The source's own properties are read while the state is.
        let guess = self.source_dataset(source);
        let (state, early_props) = std::thread::scope(|s| {
            let props = guess
                .as_ref()
                .map(|from| s.spawn(move || self.zfs.own_properties(&[from.as_str()], true)));
            let state = self.state();
            (
                state,
                props.map(|p| p.join().expect("the property query does not panic")),
            )
        });
        let state = state?;
        let target = self.root.child(name.as_str())?;
        if state.taken.contains(&target) {
            return Err(Error::Refused(format!(
                "{target} already exists: choose another name"
            )));
        }
        let (from, snapshot, be) = match source {
            Source::Running => {
                let be = state.active().ok_or_else(|| {
                    Error::Refused(format!(
                        "the running system is not booted from a boot environment under {}: \
                         say which to create from (kbe create NAME FROM)",
                        self.root
                    ))
                })?;
                (be.dataset.clone(), None, Some(be))
            }
            Source::Environment(be) => {
                let be = state.get(be)?;
                (be.dataset.clone(), None, Some(be))
            }
            Source::EnvironmentSnapshot(be, snap) => {
                let be = state.get(be)?;
                (be.dataset.clone(), Some(snap.clone()), Some(be))
            }
            Source::Dataset(ds) => {
                let be = state.environments.iter().find(|b| &b.dataset == ds);
                (ds.clone(), None, be)
            }
            Source::Snapshot(snap) => (snap.dataset(), Some(snap.short().to_owned()), None),
        };
        if let Some(be) = be.filter(|b| b.incomplete) {
            return Err(Error::Refused(format!(
                "cannot create from boot environment {}: it is incomplete (an interrupted kbe \
                 create; the next kbe command that changes something removes it)",
                be.name
            )));
        }
        if target.is_within(&from) || self.root.is_within(&from) {
            return Err(Error::Refused(format!(
                "cannot make a boot environment of {from}: it contains the boot environment root"
            )));
        }
        // A boot environment's datasets are known from the state; anything
        // else is listed.
        let tree: Vec<DatasetName> = match be {
            Some(be) if be.dataset == from => be.datasets.iter().map(|d| d.name.clone()).collect(),
            _ => self
                .zfs
                .list(&[from.as_str()], &[Kind::Filesystem], &[], Depth::All)?
                .iter()
                .map(|r| DatasetName::new(r.get("name").unwrap_or_default()))
                .collect::<Result<_, _>>()?,
        };
        let adopting = from.parent().as_ref() != Some(&self.root);
        // Snapshots are listed only where one must be chosen or checked: a
        // new snapshot that exists already makes the (atomic) snapshot step
        // fail with nothing changed.
        let snaps: Vec<Snapshot> = if snapshot.is_some() || adopting {
            self.zfs.snapshots(&[&from], true)?
        } else {
            Vec::new()
        };
        let (short, take) = match snapshot {
            Some(short) => (short, false),
            None if adopting => match newest_common(&tree, &snaps) {
                Some(short) => (short, false),
                None => (format!("{SNAPSHOT_PREFIX}{name}"), true),
            },
            None => (format!("{SNAPSHOT_PREFIX}{name}"), true),
        };
        let has = |ds: &DatasetName| {
            snaps
                .iter()
                .any(|s| &s.name.dataset() == ds && s.name.short() == short)
        };
        let origins: Vec<SnapshotName> = tree
            .iter()
            .map(|d| d.snapshot(&short))
            .collect::<Result<_, _>>()?;
        if !take {
            let missing: Vec<String> = tree
                .iter()
                .filter(|d| !has(d))
                .map(|d| format!("{d}@{short}"))
                .collect();
            if !missing.is_empty() {
                return Err(Error::Refused(format!(
                    "a boot environment is cloned whole, and these snapshots do not exist: {}",
                    missing.join(", ")
                )));
            }
        }
        let props = match early_props {
            Some(props) if guess.as_ref() == Some(&from) => props?,
            _ => self.zfs.own_properties(&[from.as_str()], true)?,
        };
        let mut change = Change::default();
        let journal = Journal::Create {
            name: name.clone(),
            snapshot: take.then(|| origins[0].clone()),
        };
        change.push(self.journal_plan(&journal, &[])?, self.clear_journal()?);
        if take {
            change.push(
                self.zfs.snapshot(&origins),
                self.zfs.destroy_snapshots(&origins),
            );
        }
        // Each clone with its properties, by depth: the new root (whose
        // destruction undoes all of them) first, then one level at a time.
        let mut levels: Vec<(usize, Vec<CloneSpec>)> = Vec::new();
        for (ds, origin) in tree.iter().zip(&origins) {
            let rel = &ds.as_str()[from.as_str().len()..];
            let new = DatasetName::new(format!("{target}{rel}"))?;
            let own = |p: &str| {
                props
                    .iter()
                    .find(|v| v.name == ds.as_str() && v.property == p)
                    .map(|v| v.value.as_str())
            };
            let mut set = Vec::new();
            if ds == &from {
                set.push(Property::new("canmount", "noauto")?);
            } else {
                let canmount = if own("canmount") == Some("off") {
                    "off"
                } else {
                    "noauto"
                };
                set.push(Property::new("canmount", canmount)?);
                let local_mountpoint = props.iter().any(|v| {
                    v.name == ds.as_str()
                        && v.property == "mountpoint"
                        && v.source == PropertySource::Local
                });
                if local_mountpoint {
                    let value =
                        strip_altroot(own("mountpoint").unwrap_or("-"), state.altroot.as_deref());
                    set.push(Property::new("mountpoint", &value)?);
                }
            }
            for v in props.iter().filter(|v| {
                v.name == ds.as_str()
                    && matches!(v.source, PropertySource::Local | PropertySource::Received)
                    && !NOT_COPIED.contains(&v.property.as_str())
            }) {
                set.push(Property::new(&v.property, &v.value)?);
            }
            let spec = CloneSpec {
                snapshot: origin.clone(),
                target: new.clone(),
                props: set,
            };
            let depth = new.depth();
            match levels.iter_mut().find(|(d, _)| *d == depth) {
                Some((_, level)) => level.push(spec),
                None => levels.push((depth, vec![spec])),
            }
        }
        levels.sort_by_key(|(d, _)| *d);
        for (i, (_, level)) in levels.iter().enumerate() {
            let undo = if i == 0 {
                self.zfs.destroy(&target, true)
            } else {
                Plan::default()
            };
            change.push(self.zfs.clone_all(level), undo);
        }
        change.push(
            self.zfs.set(&target, &[Property::new("mountpoint", "/")?]),
            Plan::default(),
        );
        change.push(self.clear_journal()?, Plan::default());
        change.note(format!(
            "{name} is a clone of {from}@{short}{}; boot it with: kbe activate {name}",
            if tree.len() > 1 {
                format!(" ({} datasets)", tree.len())
            } else {
                String::new()
            }
        ));
        Ok(change)
    }

    /// The dataset `source` names, where that is known without the state
    /// (to read its properties at the same time as the state).
    fn source_dataset(&self, source: &Source) -> Option<DatasetName> {
        match source {
            Source::Running => kld_zfs::mounts::read_mounts()
                .ok()
                .and_then(|m| running_root(&m))
                .map(|(d, _)| d),
            Source::Environment(be) | Source::EnvironmentSnapshot(be, _) => {
                self.root.child(be.as_str()).ok()
            }
            Source::Dataset(ds) => Some(ds.clone()),
            Source::Snapshot(snap) => Some(snap.dataset()),
        }
    }
}

/// The newest snapshot name that every dataset of `tree` has.
fn newest_common(tree: &[DatasetName], snaps: &[Snapshot]) -> Option<String> {
    let top = tree.first()?;
    snaps
        .iter()
        .rev()
        .filter(|s| &s.name.dataset() == top)
        .map(|s| s.name.short())
        .find(|short| {
            tree.iter().all(|d| {
                snaps
                    .iter()
                    .any(|s| &s.name.dataset() == d && s.name.short() == *short)
            })
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_of_from() {
        let be = |s: &str| BeName::new(s).unwrap();
        assert_eq!(Source::parse("a").unwrap(), Source::Environment(be("a")));
        assert_eq!(
            Source::parse("a@pre").unwrap(),
            Source::EnvironmentSnapshot(be("a"), "pre".into())
        );
        assert_eq!(
            Source::parse("rpool/in/v43").unwrap(),
            Source::Dataset(DatasetName::new("rpool/in/v43").unwrap())
        );
        assert_eq!(
            Source::parse("rpool/in/v43@golden").unwrap(),
            Source::Snapshot(SnapshotName::new("rpool/in/v43@golden").unwrap())
        );
        for bad in ["-a", "a@", "a@b@c", "rpool//x", "a;b", "rpool/x@-y;z"] {
            assert!(Source::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    fn snap(name: &str, txg: u64) -> Snapshot {
        Snapshot {
            name: SnapshotName::new(name).unwrap(),
            createtxg: txg,
            creation: txg,
            used: 0,
            referenced: 0,
            written: 0,
            holds: 0,
            clones: Vec::new(),
        }
    }

    #[test]
    fn the_newest_snapshot_every_dataset_has() {
        let tree: Vec<DatasetName> = ["p/in", "p/in/var"]
            .iter()
            .map(|d| DatasetName::new(*d).unwrap())
            .collect();
        let snaps = vec![
            snap("p/in@one", 1),
            snap("p/in/var@one", 1),
            snap("p/in@two", 2),
        ];
        assert_eq!(newest_common(&tree, &snaps).as_deref(), Some("one"));
        assert_eq!(newest_common(&tree, &snaps[2..]), None);
    }
}
