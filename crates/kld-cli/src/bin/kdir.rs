//! kdir: a dataset where a directory would go.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use kld_cli::args::kdir::*;
use kld_cli::failure::{run, Failure};
use kld_cli::migrate::{self, create_all_or_nothing, verify_mounted, Create};
use kld_zfs::mounts::{mount_holding, normalize, read_mounts};
use kld_zfs::name::DatasetName;
use kld_zfs::props::Property;
use kld_zfs::{Depth, Kind, Plan, Zfs};

/// A file system, where its `mountpoint` property puts it (none for
/// `none` and `legacy`), and its pool's altroot.
#[derive(Debug, Clone)]
struct Fs {
    name: DatasetName,
    mountpoint: Option<PathBuf>,
    altroot: Option<PathBuf>,
}

impl Fs {
    /// Whether this is a boot environment's root: mounted at `/` (or at its
    /// pool's altroot, for a pool imported under one).
    fn is_root(&self) -> bool {
        let root = self.altroot.clone().unwrap_or_else(|| PathBuf::from("/"));
        self.mountpoint.as_ref() == Some(&root)
    }

    /// The value to give `mountpoint` for a dataset of this pool to mount at
    /// `path`.
    fn mountpoint_value(&self, path: &Path) -> String {
        migrate::mountpoint_value(self.altroot.as_deref(), path)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kdir", || {
        let zfs = Zfs::new();
        for path in &cli.paths {
            kdir(&zfs, &cli, path).map_err(|f| f.context(path.display()))?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn kdir(zfs: &Zfs, cli: &Cli, path: &Path) -> Result<(), Failure> {
    if !path.is_absolute() {
        return Err(Failure::usage("the path must be absolute"));
    }
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(
            Failure::usage("the path must not contain '..'").hint("give the directory's own path")
        );
    }
    let path = normalize(path);
    if path == Path::new("/") {
        return Err(Failure::usage("/ is the boot environment itself"));
    }
    if cli.props.iter().any(|p| p.name() == "mountpoint") {
        return Err(Failure::usage("-o mountpoint=... conflicts with PATH")
            .hint("the PATH given is the mountpoint"));
    }
    check_real_path(&path)?;
    let _lock = if cli.dry_run {
        None
    } else {
        let purpose = if cli.migrate {
            format!("kdir --migrate {}", path.display())
        } else {
            format!("kdir {}", path.display())
        };
        Some(migrate::lock(&path, &purpose)?)
    };
    if cli.migrate && !cli.dry_run {
        match migrate::recover(zfs, &path)? {
            migrate::Recovery::Nothing => {}
            migrate::Recovery::Undone(done) => {
                for d in done {
                    eprintln!(
                        "kdir: an interrupted migration of {} was undone: {d}",
                        path.display()
                    );
                }
            }
            migrate::Recovery::Finished(dataset, done) => {
                for d in done {
                    eprintln!(
                        "kdir: an interrupted migration of {} was finished: {d}",
                        path.display()
                    );
                }
                println!("{dataset}");
                return Ok(());
            }
        }
    }
    let filesystems = filesystems(zfs)?;
    if let Some(fs) = filesystems
        .iter()
        .find(|f| f.mountpoint.as_deref() == Some(path.as_path()))
    {
        return Err(Failure::new(format!("already a dataset: {}", fs.name)));
    }
    check_mounted_on_zfs(&path)?;
    let (parent, chain) = match &cli.parent {
        Some(name) => {
            let parent = DatasetName::new(name.as_str())?;
            let fs = filesystems
                .iter()
                .find(|f| f.name == parent)
                .ok_or_else(|| Failure::new(format!("dataset {parent} does not exist")))?;
            let base = path
                .file_name()
                .expect("not /")
                .to_string_lossy()
                .into_owned();
            (fs.clone(), vec![base])
        }
        None => {
            let holder = nearest(&filesystems, &path).ok_or_else(|| {
                Failure::new("not under any ZFS dataset")
                    .hint("kdir creates datasets below existing ones")
            })?;
            if holder.is_root() {
                return Err(Failure::new(format!(
                    "the nearest dataset is the boot environment {} (mounted at /): the new dataset would travel \
                     with the OS in every snapshot and rollback",
                    holder.name
                ))
                .hint(format!("choose its parent with --parent, e.g. --parent {}", holder.name.pool())));
            }
            let holder_at = holder
                .mountpoint
                .as_ref()
                .expect("nearest has a mountpoint");
            let rel = path
                .strip_prefix(holder_at)
                .expect("nearest is an ancestor");
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            (holder.clone(), parts)
        }
    };
    // Without -p: one dataset, named after the last component.
    let chain = if cli.parents || chain.len() == 1 {
        chain
    } else {
        let missing = &chain[..chain.len() - 1];
        return Err(Failure::new(format!(
            "{} is not a dataset: kdir would have to create {} first",
            path.parent().expect("not /").display(),
            parent.name.child(&missing.join("/"))?
        ))
        .hint("add -p to create the missing datasets too"));
    };
    let mut props: Vec<Property> = vec![
        Property::parse("compression=lz4")?,
        Property::parse("atime=off")?,
    ];
    if let Some(preset) = cli.preset {
        for p in preset.properties() {
            merge(&mut props, Property::parse(p)?);
        }
    }
    for p in &cli.props {
        merge(&mut props, p.clone());
    }

    // The datasets to create, shallowest first, and where each mounts.
    let mut creates: Vec<Create> = Vec::new();
    let mut name = parent.name.clone();
    let mut inherited = parent.mountpoint.clone();
    let mut at = match (&cli.parent, &parent.mountpoint) {
        (None, Some(mountpoint)) => mountpoint.clone(),
        _ => path.parent().expect("not /").to_owned(),
    };
    for (i, part) in chain.iter().enumerate() {
        name = name.child(part)?;
        if let Some(inherited) = inherited.as_mut() {
            inherited.push(part);
        }
        at.push(part);
        let leaf = i + 1 == chain.len();
        if filesystems.iter().any(|f| f.name == name) {
            if leaf {
                return Err(Failure::new(format!(
                    "dataset {name} already exists, mounted elsewhere"
                )));
            }
            continue;
        }
        let mut own = if leaf { props.clone() } else { Vec::new() };
        if inherited.as_ref() != Some(&at) {
            own.push(Property::new("mountpoint", &parent.mountpoint_value(&at))?);
        }
        if !leaf {
            check_directory(&at, false)?;
        }
        creates.push(Create {
            name: name.clone(),
            props: own,
            altroot: parent.altroot.clone(),
        });
    }
    let leaf = creates
        .last()
        .map(|c| c.name.clone())
        .expect("at least the leaf");
    if check_directory(&path, cli.migrate)? {
        return migrate::migrate(zfs, &creates, &path, cli.dry_run);
    }
    if cli.dry_run {
        let mut plan = Plan::default();
        for c in &creates {
            plan.extend(zfs.create(&c.name, &c.props, false));
        }
        print!("{plan}");
        return Ok(());
    }
    create_all_or_nothing(zfs, &creates)?;
    verify_mounted(zfs, &leaf, &path)?;
    for c in &creates {
        println!("{}", c.name);
    }
    Ok(())
}

/// Replaces a property of the same name, or adds it.
fn merge(props: &mut Vec<Property>, p: Property) {
    props.retain(|q| q.name() != p.name());
    props.push(p);
}

/// Every file system with its effective mountpoint and its pool's altroot.
fn filesystems(zfs: &Zfs) -> Result<Vec<Fs>, Failure> {
    let altroots: std::collections::BTreeMap<String, PathBuf> = zfs
        .pools(&["altroot"])?
        .iter()
        .filter(|r| r.get("altroot").is_some_and(|a| a.starts_with('/')))
        .map(|r| {
            (
                r.get("name").unwrap_or_default().to_owned(),
                PathBuf::from(r.get("altroot").unwrap_or_default()),
            )
        })
        .collect();
    let rows = zfs.list(&[], &[Kind::Filesystem], &["mountpoint"], Depth::All)?;
    let mut out = Vec::new();
    for row in rows {
        let name = DatasetName::new(row.get("name").unwrap_or_default())?;
        let mountpoint = row
            .get("mountpoint")
            .filter(|m| m.starts_with('/'))
            .map(PathBuf::from);
        let altroot = altroots.get(name.pool().as_str()).cloned();
        out.push(Fs {
            name,
            mountpoint,
            altroot,
        });
    }
    Ok(out)
}

/// The file system whose mountpoint is the deepest ancestor of `path`.
fn nearest<'a>(filesystems: &'a [Fs], path: &Path) -> Option<&'a Fs> {
    filesystems
        .iter()
        .filter_map(|f| f.mountpoint.as_ref().map(|m| (f, m)))
        .filter(|(_, m)| path.starts_with(m) && path != m.as_path())
        .max_by_key(|(_, m)| m.components().count())
        .map(|(f, _)| f)
}

/// Refuses a path that goes through a symbolic link (or `..` after one):
/// kdir finds the parent dataset and sets mountpoints by the path as
/// written, while the kernel follows the link, so the two would disagree.
/// The part of the path that exists is resolved and must be spelled as
/// given.
fn check_real_path(path: &Path) -> Result<(), Failure> {
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        let Some(name) = existing.file_name() else {
            break;
        };
        rest.push(name.to_owned());
        existing.pop();
    }
    let real = std::fs::canonicalize(&existing)
        .map_err(|e| Failure::new(format!("cannot resolve {}: {e}", existing.display())))?;
    if real != existing {
        let mut whole = real.clone();
        for name in rest.iter().rev() {
            whole.push(name);
        }
        return Err(Failure::new(format!(
            "{} goes through a symbolic link: {} is {}",
            path.display(),
            existing.display(),
            real.display()
        ))
        .hint(format!("give the real path: {}", whole.display())));
    }
    Ok(())
}

/// Refuses a path whose nearest mount is not ZFS (e.g. below /boot/efi).
fn check_mounted_on_zfs(path: &Path) -> Result<(), Failure> {
    let mounts = read_mounts()?;
    let mount = mount_holding(&mounts, path);
    match mount {
        Some(m) if m.fstype != "zfs" => Err(Failure::new(format!(
            "{} is on a {} file system mounted at {}, not on ZFS",
            path.display(),
            m.fstype,
            m.target.display()
        ))),
        _ => Ok(()),
    }
}

/// Checks what is at `path`: nothing or an empty directory is fine; a
/// non-empty directory only when migrating (returns true); anything else is
/// refused.
fn check_directory(path: &Path, migrate: bool) -> Result<bool, Failure> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Failure::new(format!(
                "cannot inspect {}: {e}",
                path.display()
            )))
        }
    };
    if !meta.is_dir() {
        return Err(Failure::new(format!(
            "{} exists and is not a directory",
            path.display()
        )));
    }
    let empty = std::fs::read_dir(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?
        .next()
        .is_none();
    if empty {
        Ok(false)
    } else if migrate {
        Ok(true)
    } else {
        Err(Failure::new(format!(
            "{} is a directory that is not empty",
            path.display()
        ))
        .hint("--migrate moves its contents into the new dataset (copy, verify, swap)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(name: &str, mp: &str) -> Fs {
        Fs {
            name: DatasetName::new(name).unwrap(),
            mountpoint: Some(mp.into()),
            altroot: None,
        }
    }

    #[test]
    fn altroots() {
        let mut root = fs("r/ROOT/d", "/mnt/r");
        assert!(!root.is_root());
        root.altroot = Some("/mnt/r".into());
        assert!(root.is_root());
        assert_eq!(root.mountpoint_value(Path::new("/mnt/r/data")), "/data");
        assert_eq!(
            fs("r/x", "/x").mountpoint_value(Path::new("/data")),
            "/data"
        );
    }

    #[test]
    fn nearest_by_mountpoint() {
        let all = [
            fs("r/ROOT/d", "/"),
            fs("r/var", "/var"),
            fs("r/var/log", "/var/log"),
            fs("r/srv", "/srv"),
        ];
        assert_eq!(
            nearest(&all, Path::new("/var/lib/x"))
                .unwrap()
                .name
                .as_str(),
            "r/var"
        );
        assert_eq!(
            nearest(&all, Path::new("/var/log/a"))
                .unwrap()
                .name
                .as_str(),
            "r/var/log"
        );
        assert_eq!(
            nearest(&all, Path::new("/data")).unwrap().name.as_str(),
            "r/ROOT/d"
        );
        assert_eq!(
            nearest(&all, Path::new("/srvx")).unwrap().name.as_str(),
            "r/ROOT/d"
        );
    }
}
