//! Sealing a ZFS disk: its pool imported by GUID under a temporary name and
//! a temporary altroot (so it never collides with a pool of the same name
//! on this machine), every dataset of the installed system mounted (the
//! boot environment and its children, and the pool's separate `/home`,
//! `/root`, `/var/log`, `/var/lib` datasets), the tree sealed, and the pool
//! exported again whatever happens.

use std::path::{Path, PathBuf};

use kld_exec::Cmd;

use crate::error::{Error, Result};
use crate::ops::Op;
use crate::plan::Plan;

/// A pool `zpool import` can see on the given devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Importable {
    /// Its name on disk.
    pub name: String,
    /// Its GUID.
    pub guid: String,
}

/// Parses the listing `zpool import -d DEV` prints (`pool:` and `id:`
/// lines of each pool).
pub fn parse_importable(text: &str) -> Vec<Importable> {
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("pool: ") {
            name = Some(n.trim().to_owned());
        } else if let Some(id) = line.strip_prefix("id: ") {
            if let Some(name) = name.take() {
                out.push(Importable {
                    name,
                    guid: id.trim().to_owned(),
                });
            }
        }
    }
    out
}

/// How to seal a disk.
#[derive(Debug, Clone)]
pub struct DiskSeal {
    /// The operations.
    pub ops: Vec<Op>,
    /// Import even if the pool was last used by another system without
    /// being exported (a golden VM's root pool, after shutdown). Never
    /// right for a pool that is in use elsewhere.
    pub force_import: bool,
    /// Import read-only and only plan (for `--dry-run`).
    pub dry_run: bool,
}

/// What sealing a disk did (or, for a dry run, would do).
#[derive(Debug, Clone)]
pub struct DiskReport {
    /// The pool's name on disk.
    pub pool: String,
    /// The boot environment, as a dataset of the on-disk pool name.
    pub bootfs: String,
    /// Datasets mounted and sealed, with their mount points inside the tree.
    pub datasets: Vec<(String, String)>,
    /// The plan (applied unless it was a dry run).
    pub plan: Plan,
    /// What a killed seal had left imported and was released first.
    pub released: Released,
}

/// An imported pool that is exported, and a loop device detached, when this
/// goes out of scope.
struct Imported {
    temp_name: Option<String>,
    altroot: PathBuf,
    loop_dev: Option<PathBuf>,
}

impl Imported {
    fn finish(&mut self) -> Result<()> {
        let mut first = Ok(());
        if let Some(p) = self.temp_name.take() {
            if let Err(e) = Cmd::new("zpool").args(["export", &p]).run() {
                first = Err(e.into());
            }
        }
        if let Some(l) = self.loop_dev.take() {
            let r = Cmd::new("losetup").arg("-d").arg(&l).run();
            if first.is_ok() {
                first = r.map(drop).map_err(Error::from);
            }
        }
        let _ = std::fs::remove_dir(&self.altroot);
        first
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn partitions(dev: &Path) -> Vec<PathBuf> {
    let real = std::fs::canonicalize(dev).unwrap_or_else(|_| dev.to_path_buf());
    let Some(name) = real.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let mut parts: Vec<PathBuf> = std::fs::read_dir(format!("/sys/class/block/{name}"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("partition").exists())
                .map(|e| PathBuf::from("/dev").join(e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts
}

/// The PID in a temporary pool name (`kldseal<PID>x<N>`).
fn temp_pool_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("kldseal")?.split_once('x')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            Err(e) => e == rustix::io::Errno::PERM,
        })
}

/// The loop devices backing the image file `file`.
fn loops_of(file: &Path) -> Vec<PathBuf> {
    let Ok(real) = std::fs::canonicalize(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
            // A deleted file reads `PATH (deleted)`.
            if Path::new(b.trim().trim_end_matches(" (deleted)")) == real {
                out.push(PathBuf::from("/dev").join(e.file_name()));
            }
        }
    }
    out
}

/// What [`release_stale`] found and did, one sentence each.
pub type Released = Vec<String>;

/// Exports the temporary pools that killed seals (their process gone) left
/// imported from `source` (a disk, or an image file through its loop
/// devices), detaches those loop devices and removes their altroots, and
/// says what it did. A pool that cannot be exported is an error naming it
/// and the commands that recover. [`seal_disk`] does this first; kexport
/// for the sealing copies a killed run left.
pub fn release_stale(source: &Path) -> Result<Released> {
    release(source, |pid| !alive(pid), true)
}

/// Like [`release_stale`], for this process's own temporary pools (a
/// caller stopping on a signal while a seal is in progress).
pub fn release_own(source: &Path) -> Result<Released> {
    let own = std::process::id();
    release(source, |pid| pid == own, true)
}

fn release(source: &Path, left: impl Fn(u32) -> bool, act: bool) -> Result<Released> {
    let mut said = Vec::new();
    let Ok(out) = Cmd::new("zpool").args(["list", "-H", "-o", "name"]).run() else {
        return Ok(said); // no ZFS here: nothing can be imported
    };
    let is_file = std::fs::metadata(source).is_ok_and(|m| m.is_file());
    let bases: Vec<PathBuf> = if is_file {
        loops_of(source)
    } else {
        std::fs::canonicalize(source).into_iter().collect()
    };
    let mut ours: Vec<PathBuf> = Vec::new();
    for b in &bases {
        ours.push(b.clone());
        ours.extend(partitions(b));
    }
    let ours: Vec<PathBuf> = ours
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let mut used_loops = Vec::new();
    for name in out.stdout_str().lines() {
        let Some(pid) = temp_pool_pid(name) else {
            continue;
        };
        if !left(pid) {
            continue;
        }
        let listing = Cmd::new("zpool")
            .args(["list", "-v", "-H", "-P", "-o", "name", name])
            .run()?
            .stdout_str();
        let on_source = listing
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
            .filter_map(|w| std::fs::canonicalize(w).ok())
            .any(|d| ours.contains(&d));
        if !on_source {
            continue;
        }
        if !act {
            return Err(Error::StalePool {
                pool: name.to_owned(),
                pid,
                source_path: source.to_path_buf(),
                why: "a dry run changes nothing; kseal without --dry-run exports it".into(),
            });
        }
        if let Err(e) = Cmd::new("zpool").args(["export", name]).run() {
            return Err(Error::StalePool {
                pool: name.to_owned(),
                pid,
                source_path: source.to_path_buf(),
                why: e.to_string(),
            });
        }
        said.push(if pid == std::process::id() {
            format!("exported pool {name}, imported from {}", source.display())
        } else {
            format!(
                "exported pool {name}, left imported from {} by a killed seal (pid {pid})",
                source.display()
            )
        });
        for dir in std::fs::read_dir("/run").into_iter().flatten().flatten() {
            let n = dir.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("kld-seal-{pid}-")) && std::fs::remove_dir(dir.path()).is_ok()
            {
                said.push(format!("removed its altroot {}", dir.path().display()));
            }
        }
        used_loops.extend(bases.iter().filter(|_| is_file).cloned());
    }
    used_loops.sort();
    used_loops.dedup();
    for l in used_loops {
        Cmd::new("losetup").arg("-d").arg(&l).run()?;
        said.push(format!(
            "detached {} from {}",
            l.display(),
            source.display()
        ));
    }
    Ok(said)
}

fn unused_pool_name() -> Result<String> {
    let out = Cmd::new("zpool").args(["list", "-H", "-o", "name"]).run()?;
    let taken: Vec<String> = out.stdout_str().lines().map(str::to_owned).collect();
    let pid = std::process::id();
    Ok((0..)
        .map(|n| format!("kldseal{pid}x{n}"))
        .find(|c| !taken.contains(c))
        .expect("an unbounded range"))
}

/// Seals the ZFS system on `source` (a block device, a zvol, or a raw
/// image file, attached to a loop device for the time of the seal).
///
/// A temporary pool a killed seal left imported from `source` is exported
/// first ([`release_stale`]; the report says so).
pub fn seal_disk(source: &Path, how: &DiskSeal) -> Result<DiskReport> {
    let released = release(source, |pid| !alive(pid), !how.dry_run)?;
    crate::inuse::ensure_unused(source)?;
    let meta = std::fs::metadata(source).map_err(Error::io("opening", source))?;
    let pid = std::process::id();
    let altroot = PathBuf::from(format!("/run/kld-seal-{pid}-{}", unique()));
    let mut guard = Imported {
        temp_name: None,
        altroot: altroot.clone(),
        loop_dev: None,
    };
    let dev = if meta.is_file() {
        let mut c = Cmd::new("losetup").args(["--find", "--show", "--partscan"]);
        if how.dry_run {
            c = c.arg("--read-only");
        }
        let l = PathBuf::from(c.arg(source).run()?.stdout_str().trim());
        guard.loop_dev = Some(l.clone());
        l
    } else {
        source.to_path_buf()
    };
    let mut search = vec![dev.clone()];
    search.extend(partitions(&dev));
    let mut list = Cmd::new("zpool").arg("import");
    for d in &search {
        list = list.arg("-d").arg(d);
    }
    // `zpool import` without a pool lists and exits 1 when it finds none.
    let found = match list.run() {
        Ok(o) => parse_importable(&o.stdout_str()),
        Err(_) => Vec::new(),
    };
    let pool = match found.as_slice() {
        [p] => p.clone(),
        [] => return Err(Error::NoPool(source.to_path_buf())),
        many => {
            return Err(Error::Parse {
                what: format!("the pools on {}", source.display()),
                why: format!(
                    "more than one: {}",
                    many.iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    };
    std::fs::create_dir(&altroot).map_err(Error::io("creating", &altroot))?;
    let temp = unused_pool_name()?;
    let mut import = Cmd::new("zpool").arg("import");
    for d in &search {
        import = import.arg("-d").arg(d);
    }
    import = import.args(["-N", "-R"]).arg(&altroot);
    if how.force_import {
        import = import.arg("-f");
    }
    if how.dry_run {
        import = import.args(["-o", "readonly=on"]);
    }
    import.args(["-t", &pool.guid, &temp]).run()?;
    guard.temp_name = Some(temp.clone());

    let bootfs = Cmd::new("zpool")
        .args(["get", "-H", "-o", "value", "bootfs", &temp])
        .run()?
        .stdout_str()
        .trim()
        .to_owned();
    if bootfs.is_empty() || bootfs == "-" {
        return Err(Error::NoBootfs(pool.name.clone()));
    }
    let listing = Cmd::new("zfs")
        .args([
            "list",
            "-H",
            "-o",
            "name,canmount,mountpoint",
            "-t",
            "filesystem",
            "-r",
            &temp,
        ])
        .run()?
        .stdout_str();
    let be_container = bootfs
        .rsplit_once('/')
        .map(|x| x.0.to_owned())
        .unwrap_or_default();
    let mut mounts = system_datasets(&listing, &bootfs, &be_container);
    mounts.sort_by(|a, b| a.1.cmp(&b.1));
    for (ds, _) in &mounts {
        Cmd::new("zfs").args(["mount", ds]).run()?;
    }
    let plan = crate::rules::plan(&altroot, &how.ops)?;
    if !how.dry_run {
        plan.apply()?;
        Cmd::new("sync").run()?;
    }
    guard.finish()?;
    let on_disk = |ds: &str| ds.replacen(&temp, &pool.name, 1);
    let strip = |mp: &str| {
        let inside = Path::new(mp)
            .strip_prefix(&altroot)
            .map(|p| Path::new("/").join(p));
        inside
            .unwrap_or_else(|_| PathBuf::from(mp))
            .display()
            .to_string()
    };
    Ok(DiskReport {
        released,
        pool: pool.name.clone(),
        bootfs: on_disk(&bootfs),
        datasets: mounts.iter().map(|(d, m)| (on_disk(d), strip(m))).collect(),
        plan: Plan {
            root: PathBuf::from("/"),
            steps: plan
                .steps
                .into_iter()
                .map(|mut s| {
                    reroot(&mut s.action, &altroot);
                    s
                })
                .collect(),
            ops: plan.ops,
        },
    })
}

/// The datasets of the installed system, with their mount points: the boot
/// environment and its descendants (unless `canmount=off`), and every other
/// dataset outside the boot environments' container with `canmount=on`.
/// `none` and `legacy` mount points are left alone.
pub fn system_datasets(listing: &str, bootfs: &str, be_container: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, canmount, mp) = (f.next()?, f.next()?, f.next()?);
            if mp == "none" || mp == "legacy" || canmount == "off" {
                return None;
            }
            let in_be = name == bootfs || name.starts_with(&format!("{bootfs}/"));
            let other_be =
                !in_be && !be_container.is_empty() && name.starts_with(&format!("{be_container}/"));
            (in_be || (!other_be && canmount == "on")).then(|| (name.to_owned(), mp.to_owned()))
        })
        .collect()
}

fn reroot(a: &mut crate::plan::Action, altroot: &Path) {
    use crate::plan::Action;
    let p = match a {
        Action::Remove(p) | Action::RemoveTree(p) | Action::Truncate(p) => p,
        Action::Write { path, .. } | Action::Symlink { path, .. } => path,
    };
    if let Ok(inside) = p.strip_prefix(altroot) {
        *p = Path::new("/").join(inside);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn importable_listing() {
        let text = "   pool: rpool\n     id: 1234567\n  state: ONLINE\n action: The pool can be imported.\n config:\n\n\trpool  ONLINE\n\t  vdb1  ONLINE\n";
        assert_eq!(
            parse_importable(text),
            [Importable {
                name: "rpool".into(),
                guid: "1234567".into()
            }]
        );
        assert!(parse_importable("no pools available to import").is_empty());
    }

    #[test]
    fn the_installed_system_is_mounted_not_other_boot_environments() {
        let listing = "t\toff\tnone\nt/ROOT\toff\tnone\nt/ROOT/a\tnoauto\t/r\nt/ROOT/a/var\tnoauto\t/r/var\n\
                       t/ROOT/b\tnoauto\t/r\nt/home\ton\t/r/home\nt/var\toff\t/r/var\nt/var/log\ton\t/r/var/log\n\
                       t/legacy\ton\tlegacy\nt/off\toff\t/r/off\n";
        let got: Vec<String> = system_datasets(listing, "t/ROOT/a", "t/ROOT")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got, ["t/ROOT/a", "t/ROOT/a/var", "t/home", "t/var/log"]);
    }
}
