//! Path -> dataset resolution from the kernel's mount table
//! (`/proc/self/mountinfo`), so that "the dataset holding this path" is a
//! ZFS fact, not a guess from `df`.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::name::DatasetName;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub target: PathBuf,
    /// The filesystem type (`zfs`, `ext4`, `tmpfs`, ...).
    pub fstype: String,
    /// The mount source (for ZFS, the dataset name).
    pub source: String,
}

/// Parses the text of `/proc/self/mountinfo`. Octal escapes (`\040` for a
/// space) are decoded.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| format!("mountinfo line {}: no ' - ' separator", i + 1))?;
        if sep < 6 || fields.len() < sep + 3 {
            return Err(format!("mountinfo line {}: too few fields", i + 1));
        }
        mounts.push(Mount {
            target: PathBuf::from(crate::parse::unescape_octal(fields[4], 3)),
            fstype: crate::parse::unescape_octal(fields[sep + 1], 3),
            source: crate::parse::unescape_octal(fields[sep + 2], 3),
        });
    }
    Ok(mounts)
}

/// The mount that holds `path`: the one with the longest target that is an
/// ancestor of (or equal to) `path`; the last wins where several share a
/// target (it is the one on top).
pub fn mount_holding<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let path = normalize(path);
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.target))
        .max_by_key(|(i, m)| (m.target.components().count(), *i))
        .map(|(_, m)| m)
}

/// The ZFS dataset whose mount holds `path`, and where it is mounted; `None`
/// if the mount holding `path` is not ZFS.
pub fn dataset_holding(mounts: &[Mount], path: &Path) -> Option<(DatasetName, PathBuf)> {
    let best = mount_holding(mounts, path)?;
    if best.fstype != "zfs" {
        return None;
    }
    Some((
        DatasetName::new(best.source.clone()).ok()?,
        best.target.clone(),
    ))
}

/// Where a real path lies: the ZFS dataset whose mount holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The dataset.
    pub dataset: DatasetName,
    /// Where the dataset is mounted.
    pub mountpoint: PathBuf,
    /// The path, with every symbolic link followed.
    pub path: PathBuf,
}

impl Located {
    /// Whether the path is the dataset's mountpoint itself (rather than a
    /// directory or file inside it).
    pub fn is_mountpoint(&self) -> bool {
        self.path == self.mountpoint
    }
}

/// Finds the dataset that really holds `path`: the path must exist; every
/// symbolic link in it is followed (a link to `/tank/pg` is `/tank/pg`, not
/// the directory the link sits in); the mount that holds the real path is
/// the one with the longest target above it, and it must be the file
/// system the path is on (the same device), or the answer is refused.
/// `Ok(None)` when that file system is not ZFS.
pub fn locate(mounts: &[Mount], path: &Path) -> Result<Option<Located>> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(path.display().to_string())
        } else {
            Error::Io {
                what: format!("cannot resolve {}", path.display()),
                source,
            }
        }
    })?;
    let Some(mount) = mount_holding(mounts, &real) else {
        return Ok(None);
    };
    let dev = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|source| Error::Io {
                what: format!("cannot inspect {}", p.display()),
                source,
            })
    };
    if dev(&real)? != dev(&mount.target)? {
        return Err(Error::Refused(format!(
            "cannot tell which file system holds {}: the mount table says {} at {}, but the path is on another device",
            real.display(),
            mount.source,
            mount.target.display()
        )));
    }
    if mount.fstype != "zfs" {
        return Ok(None);
    }
    Ok(Some(Located {
        dataset: DatasetName::new(mount.source.clone())?,
        mountpoint: mount.target.clone(),
        path: real,
    }))
}

/// The mounts strictly below `dir` (or on it), e.g. to refuse moving a
/// directory that a dataset is mounted inside.
pub fn mounts_within<'a>(mounts: &'a [Mount], dir: &Path) -> Vec<&'a Mount> {
    mounts
        .iter()
        .filter(|m| m.target.starts_with(dir))
        .collect()
}

/// Reads the calling process's mount table.
pub fn read_mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Io {
        what: "cannot read /proc/self/mountinfo".into(),
        source,
    })?;
    parse_mountinfo(&text).map_err(|message| Error::Io {
        what: message,
        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
    })
}

/// Makes `path` absolute (against the current directory) and removes `.`
/// and `..` lexically, without following symbolic links.
pub fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime shared:1 - zfs rpool/ROOT/debian rw,xattr,posixacl
23 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
40 22 0:35 / /home rw,relatime shared:20 - zfs rpool/home rw,xattr,posixacl
41 40 0:36 / /home/user\\040with\\040space rw shared:21 - zfs rpool/home/user\\040with\\040space rw
42 22 259:1 / /boot/efi rw,relatime shared:22 - vfat /dev/sda1 rw
43 22 0:37 / /run rw,nosuid shared:23 - tmpfs tmpfs rw
";

    #[test]
    fn resolves_the_deepest_zfs_mount() {
        let m = parse_mountinfo(SAMPLE).unwrap();
        let at = |p: &str| dataset_holding(&m, Path::new(p)).map(|(d, t)| (d.to_string(), t));
        assert_eq!(
            at("/etc/passwd"),
            Some(("rpool/ROOT/debian".into(), "/".into()))
        );
        assert_eq!(
            at("/home/alice/x"),
            Some(("rpool/home".into(), "/home".into()))
        );
        assert_eq!(
            at("/home/user with space/f"),
            Some((
                "rpool/home/user with space".into(),
                "/home/user with space".into()
            ))
        );
        assert_eq!(at("/homes"), Some(("rpool/ROOT/debian".into(), "/".into())));
        assert_eq!(at("/boot/efi/EFI"), None, "not ZFS: no dataset");
        assert_eq!(at("/run/x"), None);
        assert_eq!(
            at("/home/../etc"),
            Some(("rpool/ROOT/debian".into(), "/".into()))
        );
    }

    #[test]
    fn locate_follows_links_and_wants_the_path_to_exist() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("pg")).unwrap();
        std::os::unix::fs::symlink(real.join("pg"), real.join("pglink")).unwrap();
        // A made-up table: a dataset at the temporary directory, another at
        // its pg directory (same device here, so the device check passes).
        let line = |id: u32, target: &Path, source: &str| {
            format!("{id} 1 0:1 / {} rw - zfs {source} rw\n", target.display())
        };
        let text = line(1, &real, "t/root") + &line(2, &real.join("pg"), "t/pg");
        let mounts = parse_mountinfo(&text).unwrap();
        let at = locate(&mounts, &real.join("pglink")).unwrap().unwrap();
        assert_eq!(at.dataset.as_str(), "t/pg");
        assert!(at.is_mountpoint());
        std::fs::create_dir(real.join("pg/sub")).unwrap();
        let inside = locate(&mounts, &real.join("pglink/sub")).unwrap().unwrap();
        assert_eq!(inside.dataset.as_str(), "t/pg");
        assert!(!inside.is_mountpoint());
        assert!(matches!(
            locate(&mounts, &real.join("pgg")),
            Err(Error::NotFound(p)) if p.ends_with("pgg")
        ));
        assert_eq!(mounts_within(&mounts, &real.join("pg")).len(), 1);
        assert_eq!(mounts_within(&mounts, &real).len(), 2);
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse_mountinfo("1 2 3\n").is_err());
    }

    #[test]
    fn this_machines_mount_table_parses() {
        let mounts = read_mounts().unwrap();
        assert!(mounts.iter().any(|m| m.target == Path::new("/")));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_mountinfo(&text);
        }

        #[test]
        fn escaped_targets_round_trip(name in "[a-z \\\\]{1,12}") {
            let escaped: String = name.chars().map(|c| match c {
                ' ' => "\\040".to_owned(),
                '\\' => "\\134".to_owned(),
                c => c.to_string(),
            }).collect();
            let line = format!("1 0 0:1 / /{escaped} rw - zfs p/{escaped} rw\n");
            let m = parse_mountinfo(&line).unwrap();
            prop_assert_eq!(m[0].target.to_str().unwrap(), format!("/{name}"));
        }
    }
}
