//! Finding the boot environment root and reading its state: the boot
//! environments, which one runs, which boots next, which a rollback returns
//! to, and the datasets all of them share.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kld_zfs::mounts::{read_mounts, Mount};
use kld_zfs::name::{DatasetName, PoolName};
use kld_zfs::parse::Row;
use kld_zfs::{Depth, Kind, Zfs};

use crate::error::{Error, Result};
use crate::journal::{Journal, JOURNAL_PROPERTY};
use crate::name::BeName;

/// The user property on the boot environment root that records the boot
/// environment that was active before the last activation (the rollback
/// target).
pub const PREVIOUS_PROPERTY: &str = "kld:previous-be";

/// The properties read for every dataset under the root.
const COLUMNS: &[&str] = &[
    "mountpoint",
    "canmount",
    "creation",
    "used",
    "referenced",
    "origin",
    PREVIOUS_PROPERTY,
    JOURNAL_PROPERTY,
];

/// Package databases that must travel with the system they describe.
const PACKAGE_DATABASES: &[&str] = &["/var/lib/dpkg", "/var/lib/rpm"];

/// How to find the boot environment root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locate {
    /// The parent of the dataset mounted at `/` (the running system's).
    Running,
    /// `POOL/ROOT`.
    Pool(PoolName),
    /// This dataset.
    Root(DatasetName),
}

/// The boot environments under one root (e.g. `rpool/ROOT`): queries, and
/// operations that return a [`Change`](crate::Change).
#[derive(Debug, Clone)]
pub struct BootEnvironments {
    pub(crate) zfs: Zfs,
    pub(crate) root: DatasetName,
    pub(crate) hooks: Option<PathBuf>,
}

/// One dataset of a boot environment (its root or a child).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dataset {
    /// Its name.
    pub name: DatasetName,
    /// Its `mountpoint` property (`/var` for a child that inherits it).
    pub mountpoint: String,
    /// Its `canmount` property.
    pub canmount: String,
    /// Where it is mounted now, if it is.
    pub mounted_at: Option<PathBuf>,
    /// The snapshot it was cloned from, if any.
    pub origin: Option<String>,
}

/// A boot environment: a child of the root with `mountpoint=/`, and its
/// descendants, which travel with it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootEnvironment {
    /// Its name.
    pub name: BeName,
    /// Its root dataset.
    pub dataset: DatasetName,
    /// Whether the running system booted from it.
    pub active: bool,
    /// Whether the pool boots it next (`bootfs`).
    pub next_boot: bool,
    /// Whether `rollback` would activate it.
    pub rollback_target: bool,
    /// Whether it is half made: an interrupted `create` (recorded in the
    /// journal) that the next change finishes or removes. It is never
    /// activated, mounted, renamed or cloned.
    pub incomplete: bool,
    /// When its root dataset was created, seconds since the epoch.
    pub created: u64,
    /// Space it uses, children and snapshots included.
    pub used: u64,
    /// Space its root dataset refers to.
    pub referenced: u64,
    /// The snapshot its root was cloned from, if any.
    pub origin: Option<String>,
    /// Where its root is mounted now, if it is.
    pub mounted_at: Option<PathBuf>,
    /// Its root dataset and every descendant, parents first.
    pub datasets: Vec<Dataset>,
}

/// A dataset outside the boot environments that every one of them mounts
/// (e.g. `rpool/home`, `rpool/var/log`): a rollback does not touch it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SharedDataset {
    /// Its name.
    pub name: DatasetName,
    /// Where it mounts.
    pub mountpoint: String,
}

/// Everything known about the boot environments under one root.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct State {
    /// The boot environment root, e.g. `rpool/ROOT`.
    pub root: DatasetName,
    /// Its pool.
    pub pool: PoolName,
    /// The pool's `bootfs`, if set.
    pub bootfs: Option<DatasetName>,
    /// The pool's `altroot`, if it was imported under one (mountpoints in
    /// this state are the property values without it).
    pub altroot: Option<String>,
    /// The boot environments, by name.
    pub environments: Vec<BootEnvironment>,
    /// The operation a killed kbe run left unfinished, if any (see
    /// [`BootEnvironments::recovery`]).
    pub journal: Option<Journal>,
    /// The rollback record as written (it may name a boot environment that
    /// is gone).
    #[serde(skip)]
    pub(crate) previous_record: Option<BeName>,
    /// Every file system under the root (boot environments or not), to
    /// refuse names that are taken without asking ZFS again.
    #[serde(skip)]
    pub(crate) taken: BTreeSet<DatasetName>,
}

impl State {
    /// The boot environment called `name`.
    pub fn get(&self, name: &BeName) -> Result<&BootEnvironment> {
        self.environments
            .iter()
            .find(|be| &be.name == name)
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
                root: self.root.to_string(),
            })
    }

    /// The boot environment the running system booted from, if it is one of
    /// these.
    pub fn active(&self) -> Option<&BootEnvironment> {
        self.environments.iter().find(|be| be.active)
    }

    /// The boot environment the pool boots next, if it is one of these.
    pub fn next_boot(&self) -> Option<&BootEnvironment> {
        self.environments.iter().find(|be| be.next_boot)
    }

    /// The boot environment `rollback` would activate, if one is recorded.
    pub fn rollback_target(&self) -> Option<&BootEnvironment> {
        self.environments.iter().find(|be| be.rollback_target)
    }

    /// Refuses when `be` is running, boots next, or is the rollback target:
    /// `doing` says what was asked (e.g. "destroy").
    pub(crate) fn refuse_protected(&self, be: &BootEnvironment, doing: &str) -> Result<()> {
        if be.rollback_target && !be.active && !be.next_boot {
            return Err(Error::Refused(format!(
                "cannot {doing} boot environment {}: it is the rollback target (activate or \
                 roll back first, or destroy it by name)",
                be.name
            )));
        }
        self.refuse_booted(be, doing)
    }

    /// Refuses when `be` is running or boots next.
    pub(crate) fn refuse_booted(&self, be: &BootEnvironment, doing: &str) -> Result<()> {
        let why = if be.active {
            "it is the running boot environment"
        } else if be.next_boot {
            "the pool boots it next (activate another one first)"
        } else {
            return Ok(());
        };
        Err(Error::Refused(format!(
            "cannot {doing} boot environment {}: {why}",
            be.name
        )))
    }
}

impl BootEnvironments {
    /// Finds the boot environment root as `how` says and checks that it
    /// exists.
    pub fn locate(zfs: Zfs, how: Locate) -> Result<BootEnvironments> {
        let root = match how {
            Locate::Root(root) => root,
            Locate::Pool(pool) => DatasetName::from(pool).child("ROOT")?,
            Locate::Running => {
                let mounts = read_mounts()?;
                let (dataset, _) = running_root(&mounts).ok_or_else(|| {
                    Error::NoRoot(
                        "the running system's / is not a ZFS dataset (name the root with \
                         --pool or --root)"
                            .into(),
                    )
                })?;
                dataset.parent().ok_or_else(|| {
                    Error::NoRoot(format!(
                        "/ is the root dataset of pool {} (a boot environment is a child of \
                         a root such as POOL/ROOT)",
                        dataset.pool()
                    ))
                })?
            }
        };
        if !zfs.exists(root.as_str())? {
            return Err(Error::NoRoot(format!("{root} does not exist")));
        }
        Ok(BootEnvironments {
            zfs,
            root,
            hooks: None,
        })
    }

    /// Runs the executables in `dir` (in name order) when a boot environment
    /// is activated, for bootloaders that do not read the pool's `bootfs`;
    /// see [`activate`](Self::activate).
    pub fn with_hooks(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hooks = Some(dir.into());
        self
    }

    /// The boot environment root.
    pub fn root(&self) -> &DatasetName {
        &self.root
    }

    /// Reads the state: one `zfs list` of the root, the pool's `bootfs`
    /// (read at the same time), and the mount table.
    pub fn state(&self) -> Result<State> {
        let pool = self.root.pool();
        let (rows, pool_props) = std::thread::scope(|s| {
            let props = s.spawn(|| self.zfs.pool_properties(&pool, &["bootfs", "altroot"]));
            let rows = self.zfs.list(
                &[self.root.as_str()],
                &[Kind::Filesystem],
                COLUMNS,
                Depth::All,
            );
            (rows, props.join().expect("the pool query does not panic"))
        });
        let (rows, pool_props) = (rows?, pool_props?);
        let mounts = read_mounts()?;
        let set = |p: &str| {
            pool_props
                .get(p)
                .filter(|v| !matches!(v.as_str(), "-" | ""))
                .cloned()
        };
        let bootfs = set("bootfs").map(DatasetName::new).transpose()?;
        build_state(&self.root, &rows, bootfs, set("altroot"), &mounts)
    }

    /// The datasets of the pool outside the boot environment root that
    /// mount at boot (`canmount=on`, a mountpoint): every boot environment
    /// shares them, and warnings
    /// about those that hold what should travel with a boot environment
    /// (the package database).
    pub fn shared(&self) -> Result<(Vec<SharedDataset>, Vec<String>)> {
        let pool = self.root.pool();
        let altroot = self.zfs.pool_properties(&pool, &["altroot"])?;
        let altroot = altroot.get("altroot").filter(|a| a.starts_with('/'));
        let rows = self.zfs.list(
            &[pool.as_str()],
            &[Kind::Filesystem],
            &["mountpoint", "canmount"],
            Depth::All,
        )?;
        let mut shared = Vec::new();
        for row in &rows {
            let name = DatasetName::new(row.get("name").unwrap_or_default())?;
            let mountpoint = strip_altroot(
                row.get("mountpoint").unwrap_or("-"),
                altroot.map(String::as_str),
            );
            if name.is_within(&self.root)
                || self.root.is_within(&name)
                || row.get("canmount") != Some("on")
                || !mountpoint.starts_with('/')
            {
                continue;
            }
            shared.push(SharedDataset { name, mountpoint });
        }
        let warnings = package_database_warnings(&shared);
        Ok((shared, warnings))
    }

    /// Warnings about the running system from its mount table alone (no
    /// ZFS query): a package database (`/var/lib/dpkg`, `/var/lib/rpm`) that
    /// exists and lives on a dataset outside the boot environment root.
    pub fn running_warnings(&self) -> Result<Vec<String>> {
        let mounts = read_mounts()?;
        let mut warnings = Vec::new();
        for db in PACKAGE_DATABASES {
            if !Path::new(db).exists() {
                continue;
            }
            // By the real path: a package database behind a symbolic link
            // is where the link leads.
            let located = kld_zfs::mounts::locate(&mounts, Path::new(db))
                .ok()
                .flatten();
            if let Some((ds, target)) = located.map(|l| (l.dataset, l.mountpoint)) {
                if !ds.is_within(&self.root) && target != Path::new("/") {
                    warnings.push(format!(
                        "{db} is on {ds} (mounted at {}), outside the boot environments: \
                         after a rollback, installed files and the package database would \
                         disagree; keep it inside the boot environment",
                        target.display()
                    ));
                }
            }
        }
        Ok(warnings)
    }
}

/// The ZFS dataset mounted at `/`, if `/` is ZFS.
pub(crate) fn running_root(mounts: &[Mount]) -> Option<(DatasetName, PathBuf)> {
    kld_zfs::mounts::dataset_holding(mounts, Path::new("/"))
        .filter(|(_, target)| target == Path::new("/"))
}

fn build_state(
    root: &DatasetName,
    rows: &[Row],
    bootfs: Option<DatasetName>,
    altroot: Option<String>,
    mounts: &[Mount],
) -> Result<State> {
    let mountpoint =
        |r: &Row| strip_altroot(r.get("mountpoint").unwrap_or("-"), altroot.as_deref());
    let running = running_root(mounts).map(|(d, _)| d);
    let mounted_at = |name: &DatasetName| {
        mounts
            .iter()
            .rev()
            .find(|m| m.fstype == "zfs" && m.source == name.as_str())
            .map(|m| m.target.clone())
    };
    let mut previous = None;
    let mut journal = None;
    let mut datasets = Vec::new();
    let mut taken = BTreeSet::new();
    for row in rows {
        let name = DatasetName::new(row.get("name").unwrap_or_default())?;
        taken.insert(name.clone());
        if &name == root {
            previous = match row.get(PREVIOUS_PROPERTY) {
                None | Some("-") | Some("") => None,
                Some(v) => BeName::new(v).ok(),
            };
            journal = row.get(JOURNAL_PROPERTY).and_then(Journal::parse);
            continue;
        }
        datasets.push((name, row));
    }
    let creating = match &journal {
        Some(Journal::Create { name, .. }) => Some(name),
        _ => None,
    };
    let mut environments = Vec::new();
    for (name, row) in &datasets {
        if name.parent().as_ref() != Some(root) {
            continue;
        }
        let Ok(be_name) = BeName::new(name.basename()) else {
            continue; // not a name kbe can address; left alone
        };
        let incomplete = creating == Some(&be_name);
        if mountpoint(row) != "/" && !incomplete {
            continue;
        }
        let tree: Vec<Dataset> = datasets
            .iter()
            .filter(|(d, _)| d.is_within(name))
            .map(|(d, r)| Dataset {
                name: d.clone(),
                mountpoint: mountpoint(r),
                canmount: r.get("canmount").unwrap_or("-").to_owned(),
                mounted_at: mounted_at(d),
                origin: origin(r),
            })
            .collect();
        let n = |c: &str| row.number(c).map(|v| v.unwrap_or(0));
        environments.push(BootEnvironment {
            active: running.as_ref() == Some(name),
            next_boot: bootfs.as_ref() == Some(name),
            rollback_target: previous.as_ref() == Some(&be_name),
            incomplete,
            name: be_name,
            dataset: name.clone(),
            created: n("creation").map_err(kld_zfs::Error::from)?,
            used: n("used").map_err(kld_zfs::Error::from)?,
            referenced: n("referenced").map_err(kld_zfs::Error::from)?,
            origin: origin(row),
            mounted_at: mounted_at(name),
            datasets: tree,
        });
    }
    environments.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(State {
        root: root.clone(),
        pool: root.pool(),
        bootfs,
        altroot,
        environments,
        journal,
        previous_record: previous,
        taken,
    })
}

/// A `mountpoint` value as set, without the altroot that ZFS shows in
/// front of it for a pool imported under one.
pub(crate) fn strip_altroot(value: &str, altroot: Option<&str>) -> String {
    let Some(altroot) = altroot.filter(|a| *a != "/") else {
        return value.to_owned();
    };
    match value.strip_prefix(altroot.trim_end_matches('/')) {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => value.to_owned(),
    }
}

fn origin(row: &Row) -> Option<String> {
    row.get("origin")
        .filter(|o| *o != "-" && !o.is_empty())
        .map(str::to_owned)
}

/// Whether `path` is `dir` or lies below it, by whole components.
pub(crate) fn covers(dir: &str, path: &str) -> bool {
    Path::new(path).starts_with(Path::new(dir))
}

fn package_database_warnings(shared: &[SharedDataset]) -> Vec<String> {
    let mut warnings = Vec::new();
    for ds in shared {
        let held: Vec<&str> = PACKAGE_DATABASES
            .iter()
            .copied()
            .filter(|db| covers(&ds.mountpoint, db) && ds.mountpoint != "/")
            .collect();
        if held.is_empty() {
            continue;
        }
        warnings.push(format!(
            "{} (mounted at {}) is shared by every boot environment and holds the package \
             database ({}): after a rollback, installed files and the package database \
             would disagree; keep it inside the boot environment",
            ds.name,
            ds.mountpoint,
            held.join(" or ")
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use kld_zfs::mounts::parse_mountinfo;
    use kld_zfs::parse::parse_list;

    fn columns() -> Vec<&'static str> {
        let mut c = vec!["name"];
        c.extend(COLUMNS);
        c
    }

    const LIST: &str = "\
rpool/ROOT\tnone\toff\t100\t300\t24\t-\ta\t-
rpool/ROOT/a\t/\tnoauto\t110\t200\t100\t-\ta\t-
rpool/ROOT/a/var\t/var\tnoauto\t111\t50\t50\t-\ta\t-
rpool/ROOT/b\t/\tnoauto\t120\t10\t100\trpool/ROOT/a@kbe-b\ta\t-
rpool/ROOT/b/var\t/var\tnoauto\t120\t1\t50\trpool/ROOT/a/var@kbe-b\ta\t-
rpool/ROOT/data\t/data\ton\t130\t1\t1\t-\ta\t-
";

    fn state(mountinfo: &str, bootfs: &str) -> State {
        state_of(LIST, mountinfo, bootfs)
    }

    fn state_of(list: &str, mountinfo: &str, bootfs: &str) -> State {
        let rows = parse_list("zfs list", list, &columns()).unwrap();
        let mounts = parse_mountinfo(mountinfo).unwrap();
        let bootfs = Some(DatasetName::new(bootfs).unwrap());
        build_state(
            &DatasetName::new("rpool/ROOT").unwrap(),
            &rows,
            bootfs,
            None,
            &mounts,
        )
        .unwrap()
    }

    #[test]
    fn reads_environments_flags_and_children() {
        let s = state(
            "22 1 0:21 / / rw,relatime shared:1 - zfs rpool/ROOT/a rw,xattr\n",
            "rpool/ROOT/b",
        );
        let names: Vec<&str> = s.environments.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "rpool/ROOT/data is not a BE");
        let a = &s.environments[0];
        assert!(a.active && !a.next_boot && a.rollback_target);
        assert_eq!(a.datasets.len(), 2);
        assert_eq!(a.datasets[1].mountpoint, "/var");
        let b = &s.environments[1];
        assert!(!b.active && b.next_boot);
        assert_eq!(b.origin.as_deref(), Some("rpool/ROOT/a@kbe-b"));
        assert_eq!(s.active().unwrap().name.as_str(), "a");
        assert!(s.refuse_protected(a, "destroy").is_err());
    }

    /// Issue 17 #6: a boot environment the journal says is being created
    /// is listed as incomplete, even before it has `mountpoint=/`.
    #[test]
    fn a_boot_environment_being_created_is_incomplete() {
        let list = "\
rpool/ROOT\tnone\toff\t100\t300\t24\t-\t-\tcreate c rpool/ROOT/a@kbe-c
rpool/ROOT/a\t/\tnoauto\t110\t200\t100\t-\t-\t-
rpool/ROOT/c\tnone\tnoauto\t120\t10\t100\trpool/ROOT/a@kbe-c\t-\t-
";
        let s = state_of(list, "1 0 0:1 / / rw - rootfs rootfs rw\n", "rpool/ROOT/a");
        let names: Vec<(&str, bool)> = s
            .environments
            .iter()
            .map(|b| (b.name.as_str(), b.incomplete))
            .collect();
        assert_eq!(names, [("a", false), ("c", true)]);
        assert!(matches!(&s.journal, Some(Journal::Create { name, .. }) if name.as_str() == "c"));
    }

    #[test]
    fn no_running_environment_when_root_is_elsewhere() {
        let s = state("1 0 0:1 / / rw - rootfs rootfs rw\n", "rpool/ROOT/a");
        assert!(s.active().is_none());
        assert_eq!(s.next_boot().unwrap().name.as_str(), "a");
    }

    #[test]
    fn mountpoints_lose_the_altroot() {
        assert_eq!(strip_altroot("/mnt", Some("/mnt")), "/");
        assert_eq!(strip_altroot("/mnt/var", Some("/mnt/")), "/var");
        assert_eq!(strip_altroot("/mntx", Some("/mnt")), "/mntx");
        assert_eq!(strip_altroot("none", Some("/mnt")), "none");
        assert_eq!(strip_altroot("/var", None), "/var");
        assert_eq!(strip_altroot("/var", Some("/")), "/var");
    }

    #[test]
    fn warns_when_the_package_database_is_shared() {
        let shared = |m: &str| SharedDataset {
            name: DatasetName::new("rpool/x").unwrap(),
            mountpoint: m.into(),
        };
        assert_eq!(package_database_warnings(&[shared("/var/lib")]).len(), 1);
        assert_eq!(package_database_warnings(&[shared("/var")]).len(), 1);
        assert!(package_database_warnings(&[shared("/var/log")]).is_empty());
        assert!(package_database_warnings(&[shared("/var/libx")]).is_empty());
        assert!(package_database_warnings(&[shared("/home")]).is_empty());
    }
}
