//! The journal: what a multi-step kbe operation is in the middle of, kept
//! in the pool (the user property `kld:journal` on the boot environment
//! root) so that a run killed half-way is finished or undone by the next
//! one, and the lock that keeps two kbe runs on one pool apart.

use std::fmt;

use kld_zfs::name::SnapshotName;
use kld_zfs::props::Property;
use kld_zfs::Plan;

use crate::change::Change;
use crate::error::{Error, Result};
use crate::name::BeName;
use crate::state::{BootEnvironments, PREVIOUS_PROPERTY};

/// The user property on the boot environment root that records the
/// operation in progress: written before its first change, cleared after
/// its last.
pub const JOURNAL_PROPERTY: &str = "kld:journal";

/// An operation in progress, as recorded in [`JOURNAL_PROPERTY`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "operation", rename_all = "camelCase")]
pub enum Journal {
    /// `create NAME SNAPSHOT`: boot environment NAME is being made; until
    /// the record is cleared it is incomplete. `snapshot` is the snapshot
    /// of the source's top dataset that kbe took for it (its descendants
    /// have one of the same name), if it took one.
    Create {
        /// The new boot environment.
        name: BeName,
        /// The snapshot kbe took of the source, if any.
        snapshot: Option<SnapshotName>,
    },
    /// `activate NAME PREVIOUS`: NAME is being made the next-boot boot
    /// environment; PREVIOUS is the rollback record before it started.
    Activate {
        /// The boot environment being activated.
        name: BeName,
        /// The rollback target recorded before, if any.
        previous: Option<BeName>,
    },
    /// `destroy NAME SNAPSHOTS`: NAME is being destroyed, and these origin
    /// snapshots after it.
    Destroy {
        /// The boot environment being destroyed.
        name: BeName,
        /// The origin snapshots to remove once it is gone.
        snapshots: Vec<SnapshotName>,
    },
    /// A record this version of kbe cannot read.
    Unknown(String),
}

impl Journal {
    /// Reads the property's value (`-` or empty: nothing in progress).
    pub(crate) fn parse(text: &str) -> Option<Journal> {
        let text = text.trim();
        if text.is_empty() || text == "-" {
            return None;
        }
        let unknown = || Some(Journal::Unknown(text.to_owned()));
        let words: Vec<&str> = text.split(' ').collect();
        let Some(Ok(name)) = words.get(1).map(|n| BeName::new(*n)) else {
            return unknown();
        };
        let arg = words.get(2).copied().filter(|a| *a != "-");
        let parsed = match (words[0], words.len()) {
            ("create", 3) => arg
                .map(SnapshotName::new)
                .transpose()
                .ok()
                .map(|snapshot| Journal::Create { name, snapshot }),
            ("activate", 3) => arg
                .map(BeName::new)
                .transpose()
                .ok()
                .map(|previous| Journal::Activate { name, previous }),
            ("destroy", 3) => arg
                .map(|a| a.split(',').map(SnapshotName::new).collect())
                .unwrap_or(Ok(Vec::new()))
                .ok()
                .map(|snapshots| Journal::Destroy { name, snapshots }),
            _ => None,
        };
        parsed.or_else(unknown)
    }

    /// The boot environment it is about, if it could be read.
    pub fn name(&self) -> Option<&BeName> {
        match self {
            Journal::Create { name, .. }
            | Journal::Activate { name, .. }
            | Journal::Destroy { name, .. } => Some(name),
            Journal::Unknown(_) => None,
        }
    }
}

impl fmt::Display for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_dash = |s: Option<&str>| s.unwrap_or("-").to_owned();
        match self {
            Journal::Create { name, snapshot } => write!(
                f,
                "create {name} {}",
                or_dash(snapshot.as_ref().map(SnapshotName::as_str))
            ),
            Journal::Activate { name, previous } => write!(
                f,
                "activate {name} {}",
                or_dash(previous.as_ref().map(BeName::as_str))
            ),
            Journal::Destroy { name, snapshots } => {
                let list: Vec<&str> = snapshots.iter().map(SnapshotName::as_str).collect();
                let list = if list.is_empty() {
                    "-".to_owned()
                } else {
                    list.join(",")
                };
                write!(f, "destroy {name} {list}")
            }
            Journal::Unknown(text) => f.write_str(text),
        }
    }
}

impl BootEnvironments {
    /// Takes the lock that every kbe change of this pool holds
    /// (`/run/kld/kbe-POOL.lock`), or fails at once naming the holder.
    /// `purpose` is quoted to a run that is refused (e.g. `kbe create b`).
    pub fn lock(&self, purpose: &str) -> Result<kld_fs::lock::Lock> {
        let pool = self.root.pool();
        kld_fs::lock::Lock::try_system(&format!("kbe-{pool}"), purpose).map_err(|e| match e {
            kld_fs::lock::LockError::Busy { holder, .. } => Error::Busy {
                pool: pool.to_string(),
                holder,
            },
            other => Error::Refused(format!("cannot take kbe's lock: {other}")),
        })
    }

    /// The step that records `journal` on the root (with other properties
    /// of the root set in the same `zfs set`, all or none).
    pub(crate) fn journal_plan(&self, journal: &Journal, with: &[Property]) -> Result<Plan> {
        let mut props = vec![Property::new(JOURNAL_PROPERTY, &journal.to_string())?];
        props.extend_from_slice(with);
        Ok(self.zfs.set(&self.root, &props))
    }

    /// The step that clears the journal.
    pub(crate) fn clear_journal(&self) -> Result<Plan> {
        Ok(self.zfs.inherit(&self.root, JOURNAL_PROPERTY, false)?)
    }

    /// Plans finishing or undoing what a killed kbe run left: the
    /// operation in the journal. Empty when nothing was interrupted. Run it
    /// (under [`lock`](Self::lock)) before any other change; its notes say
    /// what it does.
    ///
    /// - an interrupted **create** of NAME is *finished* if only the
    ///   journal's clearing was missing (NAME has `mountpoint=/`), otherwise
    ///   NAME is *removed*: its datasets, and the snapshots kbe took for it
    ///   that nothing else uses;
    /// - an interrupted **activate** is *finished* if `bootfs` names the
    ///   boot environment already, otherwise *undone*: the rollback record
    ///   is restored and the hooks run again for the boot environment
    ///   booting next (as when a hook fails);
    /// - an interrupted **destroy** of NAME is *finished* if NAME is gone
    ///   (its origin snapshots are removed); if NAME is still there it is
    ///   left whole (promotions already made stay, which lose nothing) and
    ///   the note says to run `kbe destroy NAME` again.
    pub fn recovery(&self) -> Result<Change> {
        let mut change = Change::default();
        // One cheap query when nothing was interrupted (the usual case).
        let recorded = self.zfs.get_one(self.root.as_str(), JOURNAL_PROPERTY)?;
        if Journal::parse(&recorded).is_none() {
            return Ok(change);
        }
        let state = self.state()?;
        let Some(journal) = &state.journal else {
            return Ok(change);
        };
        match journal {
            Journal::Create { name, snapshot } => {
                let be = state.environments.iter().find(|b| &b.name == name);
                // `mountpoint=/` set on it (not inherited) is its last change.
                let finished = match be {
                    Some(be) => self
                        .zfs
                        .get(&[be.dataset.as_str()], &["mountpoint"], false)?
                        .iter()
                        .any(|v| {
                            v.source == kld_zfs::parse::Source::Local
                                && be.datasets.first().is_some_and(|d| d.mountpoint == "/")
                        }),
                    None => false,
                };
                match be {
                    Some(_) if finished => {
                        change.note(format!(
                            "finished the interrupted kbe create of {name}: it was complete \
                             but for clearing the journal"
                        ));
                    }
                    _ => {
                        let mut removed = Vec::new();
                        if let Some(be) = be {
                            change.push(self.zfs.destroy(&be.dataset, true), Plan::default());
                            removed.push(format!("{} (and its descendants)", be.dataset));
                        }
                        if let Some(snapshot) = snapshot {
                            let snaps =
                                self.unused_snapshots_named(snapshot, be.map(|b| &b.dataset))?;
                            removed.extend(snaps.iter().map(|s| s.to_string()));
                            change.push(self.zfs.destroy_snapshots(&snaps), Plan::default());
                        }
                        change.note(format!(
                            "removed what the interrupted kbe create of {name} had made: {}",
                            if removed.is_empty() {
                                "nothing yet".to_owned()
                            } else {
                                removed.join(", ")
                            }
                        ));
                    }
                }
            }
            Journal::Activate { name, previous } => {
                let be = state.environments.iter().find(|b| &b.name == name);
                if be.is_some_and(|b| b.next_boot) {
                    change.note(format!(
                        "finished the interrupted kbe activate of {name}: bootfs was set already"
                    ));
                } else {
                    change.push(self.record_previous(previous.as_ref())?, Plan::default());
                    let next = state.next_boot();
                    if let (Some(be), Some(next)) = (be, next) {
                        change.append(self.hooks_change(&state, next, Some(be))?);
                    }
                    change.note(format!(
                        "undid the interrupted kbe activate of {name}: bootfs is unchanged ({}) \
                         and the rollback record is {} again",
                        next.map(|b| b.name.to_string())
                            .unwrap_or_else(|| "unset".into()),
                        previous
                            .as_ref()
                            .map(BeName::to_string)
                            .unwrap_or_else(|| "unset".into())
                    ));
                }
            }
            Journal::Destroy { name, snapshots } => {
                if state.taken.contains(&self.root.child(name.as_str())?) {
                    change.note(format!(
                        "the interrupted kbe destroy of {name} stopped before {name} was \
                         destroyed: it is whole (boot environments it had are promoted); \
                         run kbe destroy {name} again to destroy it"
                    ));
                } else {
                    let existing = self.existing_unused(snapshots)?;
                    change.push(self.zfs.destroy_snapshots(&existing), Plan::default());
                    change.note(format!(
                        "finished the interrupted kbe destroy of {name}{}",
                        if existing.is_empty() {
                            String::new()
                        } else {
                            let names: Vec<&str> = existing.iter().map(|s| s.as_str()).collect();
                            format!(": removed {}", names.join(", "))
                        }
                    ));
                }
            }
            Journal::Unknown(text) => {
                return Err(Error::Refused(format!(
                    "{} records an operation this kbe cannot read ({JOURNAL_PROPERTY}={text:?}): \
                     check the pool, then clear it with: zfs inherit {JOURNAL_PROPERTY} {}",
                    self.root, self.root
                )))
            }
        }
        change.push(self.clear_journal()?, Plan::default());
        Ok(change)
    }

    /// The snapshots named like `top`'s at and below its dataset that no
    /// clone (other than those within `going`, being destroyed too) uses
    /// and no hold keeps.
    fn unused_snapshots_named(
        &self,
        top: &SnapshotName,
        going: Option<&kld_zfs::name::DatasetName>,
    ) -> Result<Vec<SnapshotName>> {
        let dataset = top.dataset();
        if !self.zfs.exists(dataset.as_str())? {
            return Ok(Vec::new());
        }
        let snaps = self.zfs.snapshots(&[&dataset], true)?;
        Ok(snaps
            .into_iter()
            .filter(|s| s.name.short() == top.short() && s.holds == 0)
            .filter(|s| {
                s.clones
                    .iter()
                    .all(|c| going.is_some_and(|g| c.is_within(g)))
            })
            .map(|s| s.name)
            .collect())
    }

    /// Those of `snaps` that exist, have no clone and no hold.
    fn existing_unused(&self, snaps: &[SnapshotName]) -> Result<Vec<SnapshotName>> {
        let mut found = Vec::new();
        for snap in snaps {
            if !self.zfs.exists(snap.as_str())? {
                continue;
            }
            let facts = self
                .zfs
                .get(&[snap.as_str()], &["clones", "userrefs"], false)?;
            let fact = |p: &str| {
                facts
                    .iter()
                    .find(|v| v.property == p)
                    .map(|v| v.value.clone())
                    .unwrap_or_default()
            };
            let clones = fact("clones");
            if (clones.is_empty() || clones == "-") && fact("userrefs") == "0" {
                found.push(snap.clone());
            }
        }
        Ok(found)
    }

    /// Plans setting the rollback record (or clearing it).
    pub(crate) fn record_previous(&self, previous: Option<&BeName>) -> Result<Plan> {
        Ok(match previous {
            Some(name) => self.zfs.set(
                &self.root,
                &[Property::new(PREVIOUS_PROPERTY, name.as_str())?],
            ),
            None => self.zfs.inherit(&self.root, PREVIOUS_PROPERTY, false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_reads_back_as_written() {
        let be = |s: &str| BeName::new(s).unwrap();
        let snap = |s: &str| SnapshotName::new(s).unwrap();
        for j in [
            Journal::Create {
                name: be("b"),
                snapshot: Some(snap("p/ROOT/a@kbe-b")),
            },
            Journal::Create {
                name: be("b"),
                snapshot: None,
            },
            Journal::Activate {
                name: be("b"),
                previous: Some(be("c")),
            },
            Journal::Activate {
                name: be("b"),
                previous: None,
            },
            Journal::Destroy {
                name: be("d"),
                snapshots: vec![snap("p/ROOT/a@kbe-d"), snap("p/ROOT/a/var@kbe-d")],
            },
            Journal::Destroy {
                name: be("d"),
                snapshots: Vec::new(),
            },
        ] {
            assert_eq!(Journal::parse(&j.to_string()), Some(j.clone()), "{j}");
        }
        assert_eq!(Journal::parse("-"), None);
        assert_eq!(Journal::parse(""), None);
        for odd in [
            "create",
            "create b",
            "create b p/x@y extra",
            "frob b -",
            "create -x -",
        ] {
            assert!(
                matches!(Journal::parse(odd), Some(Journal::Unknown(_))),
                "{odd:?}"
            );
        }
    }
}
