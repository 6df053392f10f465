//! The [`Zfs`] handle: queries that run now, and mutations that return a
//! [`Plan`] to show (`--dry-run`) or run.

use std::collections::BTreeMap;
use std::ffi::OsString;

use kld_exec::Cmd;

use crate::error::{Error, Result};
use crate::name::{BookmarkName, DatasetName, PoolName, SnapshotName};
use crate::parse::{parse_get, parse_list, parse_status, PoolStatus, PropertyValue, Row};
use crate::plan::{Plan, Step};
use crate::props::Property;

/// Kinds of ZFS objects a listing can include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// File systems.
    Filesystem,
    /// Volumes (zvols).
    Volume,
    /// Snapshots.
    Snapshot,
    /// Bookmarks.
    Bookmark,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Filesystem => "filesystem",
            Kind::Volume => "volume",
            Kind::Snapshot => "snapshot",
            Kind::Bookmark => "bookmark",
        }
    }
}

/// File systems and volumes: what "datasets" usually means.
pub const DATASETS: &[Kind] = &[Kind::Filesystem, Kind::Volume];

/// How far below the named roots a listing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The roots only (with `Kind::Snapshot`, the roots' own snapshots).
    Roots,
    /// Everything below.
    All,
    /// At most this many levels below.
    Max(u32),
}

/// A snapshot with the facts kld's tools decide by.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Snapshot {
    /// Its name.
    pub name: SnapshotName,
    /// The transaction group it was taken in.
    pub createtxg: u64,
    /// When it was taken, seconds since the Unix epoch.
    pub creation: u64,
    /// Space only it holds (freed if it alone were destroyed).
    pub used: u64,
    /// Space it refers to.
    pub referenced: u64,
    /// Space written since the previous snapshot.
    pub written: u64,
    /// How many user holds it has.
    pub holds: u64,
    /// Clones made from it.
    pub clones: Vec<DatasetName>,
}

/// The properties read for a [`Snapshot`].
const SNAPSHOT_COLUMNS: &[&str] = &[
    "name",
    "createtxg",
    "creation",
    "used",
    "referenced",
    "written",
    "userrefs",
    "clones",
];

/// One clone to make: its origin, the new dataset, and the properties it
/// gets at birth (in the same ioctl through libzfs_core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneSpec {
    /// The snapshot cloned.
    pub snapshot: SnapshotName,
    /// The new dataset.
    pub target: DatasetName,
    /// Its properties.
    pub props: Vec<Property>,
}

/// Talks to ZFS: libzfs_core (through libzetta) for what it covers, the
/// `zfs` and `zpool` commands for the rest.
#[derive(Debug, Clone)]
pub struct Zfs {
    zfs: OsString,
    zpool: OsString,
    lzc: bool,
}

impl Default for Zfs {
    fn default() -> Self {
        Zfs::new()
    }
}

impl Zfs {
    /// The system's ZFS: `zfs` and `zpool` from `PATH`, libzfs_core where it
    /// serves.
    pub fn new() -> Self {
        Zfs {
            zfs: "zfs".into(),
            zpool: "zpool".into(),
            lzc: true,
        }
    }

    /// Every operation through the `zfs`/`zpool` commands, never
    /// libzfs_core (for comparisons, and where libzfs_core is unavailable).
    pub fn commands_only() -> Self {
        Zfs {
            lzc: false,
            ..Zfs::new()
        }
    }

    /// Commands from the given paths (e.g. a test double), never
    /// libzfs_core.
    pub fn with_programs(zfs: impl Into<OsString>, zpool: impl Into<OsString>) -> Self {
        Zfs {
            zfs: zfs.into(),
            zpool: zpool.into(),
            lzc: false,
        }
    }

    fn zfs(&self) -> Cmd {
        Cmd::new(&self.zfs)
    }

    fn zpool(&self) -> Cmd {
        Cmd::new(&self.zpool)
    }

    // ---- queries -------------------------------------------------------

    /// Lists objects of the given kinds at and below `roots` (all pools when
    /// `roots` is empty), with the chosen properties; `name` is always the
    /// first column. A root that does not exist is [`Error::NotFound`].
    pub fn list(
        &self,
        roots: &[&str],
        kinds: &[Kind],
        props: &[&str],
        depth: Depth,
    ) -> Result<Vec<Row>> {
        let mut columns = vec!["name"];
        columns.extend(props.iter().copied().filter(|p| *p != "name"));
        let types: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let mut cmd = self.zfs().args([
            "list",
            "-H",
            "-p",
            "-t",
            &types.join(","),
            "-o",
            &columns.join(","),
        ]);
        match depth {
            Depth::Roots if kinds.contains(&Kind::Snapshot) || kinds.contains(&Kind::Bookmark) => {
                cmd = cmd.args(["-d", "1"])
            }
            Depth::Roots => {}
            Depth::All => cmd = cmd.arg("-r"),
            Depth::Max(n) => cmd = cmd.args(["-d", &n.to_string()]),
        }
        let out = cmd.args(roots).run().map_err(not_found)?;
        Ok(parse_list("zfs list", &out.stdout_str(), &columns)?)
    }

    /// Whether a dataset, snapshot or bookmark exists.
    pub fn exists(&self, name: &str) -> Result<bool> {
        match self
            .zfs()
            .args(["list", "-H", "-o", "name", "-t", "all", name])
            .run()
        {
            Ok(_) => Ok(true),
            Err(e) if e.stderr().contains("does not exist") => Ok(false),
            Err(e) => Err(Error::Command(e)),
        }
    }

    /// Property values of the named objects (`zfs get`).
    pub fn get(
        &self,
        names: &[&str],
        props: &[&str],
        recursive: bool,
    ) -> Result<Vec<PropertyValue>> {
        let mut cmd = self
            .zfs()
            .args(["get", "-H", "-p", "-o", "name,property,value,source"]);
        if recursive {
            cmd = cmd.arg("-r");
        }
        let props = if props.is_empty() {
            "all".to_owned()
        } else {
            props.join(",")
        };
        let out = cmd.arg(props).args(names).run().map_err(not_found)?;
        Ok(parse_get("zfs get", &out.stdout_str())?)
    }

    /// The properties set on the named datasets themselves, locally or by
    /// `zfs receive` (`zfs get -s local,received all`), and on their
    /// descendants when `recursive`: what a copy of them must carry.
    pub fn own_properties(&self, names: &[&str], recursive: bool) -> Result<Vec<PropertyValue>> {
        let mut cmd = self.zfs().args([
            "get",
            "-H",
            "-p",
            "-s",
            "local,received",
            "-t",
            "filesystem,volume",
            "-o",
            "name,property,value,source",
        ]);
        if recursive {
            cmd = cmd.arg("-r");
        }
        let out = cmd.arg("all").args(names).run().map_err(not_found)?;
        Ok(parse_get("zfs get", &out.stdout_str())?)
    }

    /// One property's value on one object, as text.
    pub fn get_one(&self, name: &str, prop: &str) -> Result<String> {
        let values = self.get(&[name], &[prop], false)?;
        values
            .into_iter()
            .next()
            .map(|v| v.value)
            .ok_or_else(|| Error::NotFound(format!("property {prop} of {name}")))
    }

    /// The snapshots of `datasets` (and of their descendants when
    /// `recursive`), oldest first.
    pub fn snapshots(&self, datasets: &[&DatasetName], recursive: bool) -> Result<Vec<Snapshot>> {
        let roots: Vec<&str> = datasets.iter().map(|d| d.as_str()).collect();
        let depth = if recursive { Depth::All } else { Depth::Roots };
        let rows = self.list(&roots, &[Kind::Snapshot], &SNAPSHOT_COLUMNS[1..], depth)?;
        let mut snaps = rows
            .iter()
            .map(snapshot_from_row)
            .collect::<Result<Vec<_>>>()?;
        snaps.sort_by_key(|s| s.createtxg);
        Ok(snaps)
    }

    /// `zpool list` of every imported pool with the chosen properties.
    pub fn pools(&self, props: &[&str]) -> Result<Vec<Row>> {
        let mut columns = vec!["name"];
        columns.extend(props.iter().copied().filter(|p| *p != "name"));
        let out = self
            .zpool()
            .args(["list", "-H", "-p", "-o", &columns.join(",")])
            .run()?;
        Ok(parse_list("zpool list", &out.stdout_str(), &columns)?)
    }

    /// Properties of a pool as text, by name (`zpool get -H -p`); `-`
    /// where one is unset (e.g. `bootfs`, `altroot`).
    pub fn pool_properties(
        &self,
        pool: &PoolName,
        props: &[&str],
    ) -> Result<BTreeMap<String, String>> {
        let out = self
            .zpool()
            .args(["get", "-H", "-p", "-o", "name,property,value,source"])
            .arg(props.join(","))
            .arg(pool)
            .run()
            .map_err(not_found)?;
        Ok(parse_get("zpool get", &out.stdout_str())?
            .into_iter()
            .map(|v| (v.property, v.value))
            .collect())
    }

    /// `zpool status` of one pool.
    pub fn pool_status(&self, pool: &PoolName) -> Result<PoolStatus> {
        self.status(Some(pool))?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("pool {pool}")))
    }

    /// `zpool status` of every imported pool (none is an empty list).
    pub fn pools_status(&self) -> Result<Vec<PoolStatus>> {
        self.status(None)
    }

    /// `zpool status -p [POOL]`, run with `TZ=UTC` so that the times in its
    /// `scan:` lines are UTC.
    fn status(&self, pool: Option<&PoolName>) -> Result<Vec<PoolStatus>> {
        let out = self
            .zpool()
            .env("TZ", "UTC")
            .args(["status", "-p"])
            .args(pool)
            .run()
            .map_err(not_found)?;
        let text = out.stdout_str();
        if text.trim() == "no pools available" {
            return Ok(Vec::new());
        }
        Ok(parse_status(&text)?)
    }

    /// What changed between a snapshot and the dataset now (or a later
    /// snapshot): `zfs diff -H -F`.
    pub fn diff(&self, from: &SnapshotName, to: Option<&str>) -> Result<Vec<crate::diff::Change>> {
        let out = self
            .zfs()
            .args(["diff", "-H", "-F"])
            .arg(from)
            .args(to)
            .run()
            .map_err(not_found)?;
        Ok(crate::diff::parse_diff(&out.stdout_str())?)
    }

    /// The token to resume an interrupted `zfs receive -s` into `dataset`,
    /// if one is pending.
    pub fn resume_token(&self, dataset: &DatasetName) -> Result<Option<String>> {
        let token = self.get_one(dataset.as_str(), "receive_resume_token")?;
        Ok((token != "-" && !token.is_empty()).then_some(token))
    }

    // ---- mutations: plans ----------------------------------------------

    /// Takes every snapshot named, in one transaction group (all or none).
    pub fn snapshot(&self, snaps: &[SnapshotName]) -> Plan {
        if snaps.is_empty() {
            return Plan::default();
        }
        if self.lzc {
            Plan::new(vec![Step::LzcSnapshot(snaps.to_vec())])
        } else {
            Plan::new(vec![Step::Run(self.zfs().arg("snapshot").args(snaps))])
        }
    }

    /// Snapshots each named dataset and all its descendants, in one
    /// transaction group (all or none).
    pub fn snapshot_recursive(&self, snaps: &[SnapshotName]) -> Plan {
        if snaps.is_empty() {
            return Plan::default();
        }
        Plan::new(vec![Step::Run(
            self.zfs().args(["snapshot", "-r"]).args(snaps),
        )])
    }

    /// Destroys the named snapshots: one transaction per pool through
    /// libzfs_core, or one `zfs destroy DATASET@a,b,...` per dataset.
    /// Held snapshots and snapshots with clones make the step fail; filter
    /// them out first.
    pub fn destroy_snapshots(&self, snaps: &[SnapshotName]) -> Plan {
        let mut steps = Vec::new();
        if self.lzc {
            let mut by_pool: BTreeMap<String, Vec<SnapshotName>> = BTreeMap::new();
            for s in snaps {
                by_pool
                    .entry(s.dataset().pool().to_string())
                    .or_default()
                    .push(s.clone());
            }
            steps.extend(by_pool.into_values().map(Step::LzcDestroySnapshots));
        } else {
            let mut by_dataset: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for s in snaps {
                by_dataset
                    .entry(s.dataset().to_string())
                    .or_default()
                    .push(s.short());
            }
            for (dataset, shorts) in by_dataset {
                steps.push(Step::Run(
                    self.zfs()
                        .arg("destroy")
                        .arg(format!("{dataset}@{}", shorts.join(","))),
                ));
            }
        }
        Plan::new(steps)
    }

    /// Creates a dataset with properties, and its missing parents when
    /// `parents` (the parents get no properties).
    pub fn create(&self, dataset: &DatasetName, props: &[Property], parents: bool) -> Plan {
        let mut cmd = self.zfs().arg("create");
        if parents {
            cmd = cmd.arg("-p");
        }
        for p in props {
            cmd = cmd.arg("-o").arg(p.to_string());
        }
        Plan::new(vec![Step::Run(cmd.arg(dataset))])
    }

    /// Destroys one dataset (with its snapshots; with its descendants only if
    /// `recursive`). Never destroys clones elsewhere (`-R` is never used).
    pub fn destroy(&self, dataset: &DatasetName, recursive: bool) -> Plan {
        let mut cmd = self.zfs().arg("destroy");
        if recursive {
            cmd = cmd.arg("-r");
        }
        Plan::new(vec![Step::Run(cmd.arg(dataset))])
    }

    /// Rolls a dataset back to `snap`. With `destroy_newer`, snapshots newer
    /// than `snap` are destroyed (`-r`); clones of them never are (`-R` is
    /// never used, so their existence makes the rollback fail).
    pub fn rollback(&self, snap: &SnapshotName, destroy_newer: bool) -> Plan {
        let mut cmd = self.zfs().arg("rollback");
        if destroy_newer {
            cmd = cmd.arg("-r");
        }
        Plan::new(vec![Step::Run(cmd.arg(snap))])
    }

    /// Rolls `snap`'s dataset and every descendant back to their snapshots of
    /// the same name in one transaction group, through a channel program:
    /// all of them or none. Every dataset of the tree must have the snapshot;
    /// newer snapshots are destroyed only with `destroy_newer`, and one with
    /// clones or holds stops the whole rollback before anything changes.
    ///
    /// A channel program cannot roll back a mounted file system, so the
    /// tree's mounted file systems are unmounted first (which fails, changing
    /// nothing, if one is busy) and mounted again afterwards, whatever the
    /// outcome.
    pub fn rollback_tree(&self, snap: &SnapshotName, destroy_newer: bool) -> Result<Plan> {
        self.rollback_tree_remounting(snap, destroy_newer, &[])
    }

    /// The file systems of the tree at `root` that are mounted now, and
    /// those that are not, each shallowest first.
    pub fn tree_mounts(&self, root: &DatasetName) -> Result<(Vec<DatasetName>, Vec<DatasetName>)> {
        let rows = self.list(
            &[root.as_str()],
            &[Kind::Filesystem],
            &["mounted"],
            Depth::All,
        )?;
        let mut mounted = Vec::new();
        let mut unmounted = Vec::new();
        for r in &rows {
            let name = DatasetName::new(r.get("name").unwrap_or_default())?;
            if r.get("mounted") == Some("yes") {
                mounted.push(name);
            } else {
                unmounted.push(name);
            }
        }
        mounted.sort_by_key(|d| d.depth());
        unmounted.sort_by_key(|d| d.depth());
        Ok((mounted, unmounted))
    }

    /// [`rollback_tree`](Zfs::rollback_tree), and also mounts again
    /// afterwards those of `also` that are in the tree and unmounted now:
    /// the file systems an earlier, interrupted rollback of the tree had
    /// unmounted (which it would have mounted again had it finished).
    pub fn rollback_tree_remounting(
        &self,
        snap: &SnapshotName,
        destroy_newer: bool,
        also: &[DatasetName],
    ) -> Result<Plan> {
        let root = snap.dataset();
        let (mounted, unmounted) = self.tree_mounts(&root)?;
        let mut steps: Vec<Step> = mounted
            .iter()
            .rev()
            .map(|d| Step::Run(self.zfs().arg("unmount").arg(d)))
            .collect();
        steps.push(Step::Program {
            cmd: self
                .zfs()
                .args(["program", "-t", "100000000", "-m", "100000000"])
                .arg(root.pool()),
            name: "rollback-tree.lua",
            source: crate::program::ROLLBACK_TREE,
            args: vec![
                root.to_string(),
                snap.short().to_owned(),
                if destroy_newer {
                    "destroy-newer"
                } else {
                    "keep-newer"
                }
                .to_owned(),
            ],
        });
        let mut remount: Vec<DatasetName> = mounted.clone();
        remount.extend(unmounted.into_iter().filter(|d| also.contains(d)));
        remount.sort_by_key(|d| d.depth());
        let remount = remount
            .iter()
            .map(|d| Step::Run(self.zfs().arg("mount").arg(d)))
            .collect();
        Ok(Plan::new(steps).finally(remount))
    }

    /// Mounts a file system where its `mountpoint` says (`zfs mount`).
    pub fn mount(&self, dataset: &DatasetName) -> Plan {
        Plan::new(vec![Step::Run(self.zfs().arg("mount").arg(dataset))])
    }

    /// Clones `snap` as `target`.
    pub fn clone_snapshot(
        &self,
        snap: &SnapshotName,
        target: &DatasetName,
        props: &[Property],
    ) -> Plan {
        let mut cmd = self.zfs().arg("clone");
        for p in props {
            cmd = cmd.arg("-o").arg(p.to_string());
        }
        Plan::new(vec![Step::Run(cmd.arg(snap).arg(target))])
    }

    /// Makes every clone of `clones` (whose parents must all exist already:
    /// one level of a tree at a time), unmounted, each with its properties
    /// set at birth. Through libzfs_core: one `lzc_clone` each, all at the
    /// same time (their sync tasks share transaction groups), no process;
    /// otherwise a `zfs clone -o ...` each, one after another.
    pub fn clone_all(&self, clones: &[CloneSpec]) -> Plan {
        if clones.is_empty() {
            return Plan::default();
        }
        if self.lzc {
            return Plan::new(vec![Step::LzcClones(clones.to_vec())]);
        }
        Plan::new(
            clones
                .iter()
                .map(|c| {
                    let mut cmd = self.zfs().arg("clone");
                    for p in &c.props {
                        cmd = cmd.arg("-o").arg(p.to_string());
                    }
                    Step::Run(cmd.arg(&c.snapshot).arg(&c.target))
                })
                .collect(),
        )
    }

    /// Clones `snap` as each of `targets`, leaving them unmounted: through
    /// libzfs_core one call each and no process, otherwise `zfs clone` and
    /// `zfs unmount` each. Mount them with `zfs mount` when wanted.
    pub fn clone_unmounted(&self, snap: &SnapshotName, targets: &[DatasetName]) -> Plan {
        let mut steps = Vec::new();
        for target in targets {
            if self.lzc {
                steps.push(Step::LzcClone {
                    snapshot: snap.clone(),
                    target: target.clone(),
                });
            } else {
                steps.push(Step::Run(self.zfs().arg("clone").arg(snap).arg(target)));
                steps.push(Step::Run(self.zfs().arg("unmount").arg(target)));
            }
        }
        Plan::new(steps)
    }

    /// Makes a clone independent of its origin (`zfs promote`).
    pub fn promote(&self, clone: &DatasetName) -> Plan {
        Plan::new(vec![Step::Run(self.zfs().arg("promote").arg(clone))])
    }

    /// Renames a dataset (within its pool).
    pub fn rename(&self, from: &DatasetName, to: &DatasetName) -> Plan {
        Plan::new(vec![Step::Run(self.zfs().arg("rename").arg(from).arg(to))])
    }

    /// Renames a snapshot (`zfs rename ds@a ds@b`).
    pub fn rename_snapshot(&self, from: &SnapshotName, to: &SnapshotName) -> Plan {
        Plan::new(vec![Step::Run(self.zfs().arg("rename").arg(from).arg(to))])
    }

    /// Places a user hold `tag` on each snapshot.
    pub fn hold(&self, tag: &str, snaps: &[SnapshotName]) -> Plan {
        Plan::new(vec![Step::Run(
            self.zfs().arg("hold").arg("--").arg(tag).args(snaps),
        )])
    }

    /// Releases the user hold `tag` from each snapshot.
    pub fn release(&self, tag: &str, snaps: &[SnapshotName]) -> Plan {
        Plan::new(vec![Step::Run(
            self.zfs().arg("release").arg("--").arg(tag).args(snaps),
        )])
    }

    /// Bookmarks a snapshot.
    pub fn bookmark(&self, snap: &SnapshotName, bookmark: &BookmarkName) -> Plan {
        Plan::new(vec![Step::Run(
            self.zfs().arg("bookmark").arg(snap).arg(bookmark),
        )])
    }

    /// Sets properties on a dataset.
    pub fn set(&self, dataset: &DatasetName, props: &[Property]) -> Plan {
        if props.is_empty() {
            return Plan::default();
        }
        let args: Vec<String> = props.iter().map(Property::to_string).collect();
        Plan::new(vec![Step::Run(
            self.zfs().arg("set").args(args).arg(dataset),
        )])
    }

    /// Sets the dataset a pool boots from (`zpool set bootfs=...`), which
    /// ZFSBootMenu and Debian's `root=zfs:AUTO` honour; `None` clears it.
    pub fn set_bootfs(&self, pool: &PoolName, dataset: Option<&DatasetName>) -> Plan {
        let value = dataset.map(DatasetName::as_str).unwrap_or("");
        Plan::new(vec![Step::Run(
            self.zpool()
                .arg("set")
                .arg(format!("bootfs={value}"))
                .arg(pool),
        )])
    }

    /// Clears a property so that it is inherited (or defaults), on the
    /// dataset and, if `recursive`, its descendants.
    pub fn inherit(&self, dataset: &DatasetName, prop: &str, recursive: bool) -> Result<Plan> {
        crate::props::check_property_name(prop)?;
        let mut cmd = self.zfs().arg("inherit");
        if recursive {
            cmd = cmd.arg("-r");
        }
        Ok(Plan::new(vec![Step::Run(cmd.arg(prop).arg(dataset))]))
    }

    /// A replication pipeline: `zfs send` of `send` piped into
    /// `zfs receive` of `receive`, streamed through an OS pipe.
    pub fn replicate(
        &self,
        send: &crate::send::Send,
        receive: &crate::send::Receive,
    ) -> kld_exec::Pipeline {
        send.command(self.zfs()).pipe(receive.command(self.zfs()))
    }
}

fn snapshot_from_row(row: &Row) -> Result<Snapshot> {
    let n = |c: &str| row.number(c).map(|v| v.unwrap_or(0));
    let clones = match row.get("clones") {
        None | Some("-") | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(DatasetName::new)
            .collect::<Result<_, _>>()?,
    };
    Ok(Snapshot {
        name: SnapshotName::new(row.get("name").unwrap_or_default())?,
        createtxg: n("createtxg")?,
        creation: n("creation")?,
        used: n("used")?,
        referenced: n("referenced")?,
        written: n("written")?,
        holds: n("userrefs")?,
        clones,
    })
}

/// Turns "dataset does not exist" failures into [`Error::NotFound`].
fn not_found(e: kld_exec::Error) -> Error {
    let stderr = e.stderr();
    if stderr.contains("does not exist") || stderr.contains("no such pool") {
        let what = stderr
            .split('\'')
            .nth(1)
            .map(str::to_owned)
            .unwrap_or_else(|| stderr.lines().next().unwrap_or_default().to_owned());
        Error::NotFound(what)
    } else {
        Error::Command(e)
    }
}
