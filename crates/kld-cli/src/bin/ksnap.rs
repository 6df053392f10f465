//! ksnap: snapshots before a change, and the way back.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use kld_cli::args::ksnap::*;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{Cell, Table};
use kld_cli::target::{resolve, resolve_exact};
use kld_cli::time;
use kld_fs::lock::{Lock, LockError};
use kld_zfs::name::{DatasetName, SnapshotName};
use kld_zfs::{Plan, Snapshot, Zfs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("ksnap", || {
        let zfs = Zfs::new();
        match cli.command {
            Command::Create(args) => create(&zfs, &args),
            Command::List(args) => list(&zfs, &args),
            Command::Rollback(args) => rollback(&zfs, &args),
            Command::Prune(args) => prune(&zfs, &args),
            Command::Destroy(args) => destroy(&zfs, &args),
            Command::Diff(args) => diff(&zfs, &args),
            Command::Short(words) => short(&zfs, words),
        }
    })
}

fn short(zfs: &Zfs, words: Vec<String>) -> Result<ExitCode, Failure> {
    let mut words = words.into_iter();
    let target = words.next().unwrap_or_default();
    if target.starts_with('-') {
        return Err(Failure::usage(format!("unknown option {target}")).hint("see ksnap --help"));
    }
    let label = words.next().unwrap_or_else(|| "manual".into());
    if let Some(extra) = words.next() {
        return Err(Failure::usage(format!("unexpected argument {extra}"))
            .hint("ksnap TARGET [LABEL]; for several targets use ksnap create"));
    }
    create(
        zfs,
        &Create {
            recursive: false,
            label,
            at: None,
            dry_run: false,
            targets: vec![target],
        },
    )
}

/// Checks a label: snapshot-name characters, and no '@' or '/'.
fn check_label(label: &str) -> Result<(), Failure> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && !label.starts_with('-')
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(format!("invalid label {label:?}")).hint(
            "a label is up to 64 letters, digits, '_', '-', '.' or ':', not starting with '-'",
        ))
    }
}

/// The label of a snapshot ksnap made (`LABEL-YYYYMMDD-HHMMSS`), if it is one.
fn label_of(short: &str) -> Option<&str> {
    let cut = short.len().checked_sub(16)?;
    let (label, rest) = short.split_at(cut);
    (rest.starts_with('-') && !label.is_empty() && time::parse_stamp(&rest[1..]).is_some())
        .then_some(label)
}

fn create(zfs: &Zfs, args: &Create) -> Result<ExitCode, Failure> {
    check_label(&args.label)?;
    let mut datasets = Vec::new();
    for t in &args.targets {
        let ds = resolve(zfs, t)?;
        if !datasets.contains(&ds) {
            datasets.push(ds);
        }
    }
    let short = format!(
        "{}-{}",
        args.label,
        time::stamp(args.at.unwrap_or_else(time::now))
    );
    let snaps: Vec<SnapshotName> = datasets
        .iter()
        .map(|d| d.snapshot(&short))
        .collect::<Result<_, _>>()?;
    let plan = if args.recursive {
        zfs.snapshot_recursive(&snaps)
    } else {
        zfs.snapshot(&snaps)
    };
    if args.dry_run {
        print!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    // Never overwrite: ZFS takes all the snapshots or none and refuses a
    // name that exists; only then is it worth listing which one it was.
    if let Err(e) = plan.run() {
        let roots: Vec<&DatasetName> = datasets.iter().collect();
        let taken: Vec<String> = zfs
            .snapshots(&roots, args.recursive)?
            .into_iter()
            .filter(|s| s.name.short() == short)
            .map(|s| s.name.to_string())
            .collect();
        if taken.is_empty() {
            return Err(e.into());
        }
        return Err(Failure::new(format!("snapshot already exists: {}", taken.join(" ")))
            .hint("ksnap never overwrites a snapshot; nothing was taken; wait a second or use another label or --at"));
    }
    for s in &snaps {
        println!("{s}");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(zfs: &Zfs, args: &List) -> Result<ExitCode, Failure> {
    let snaps = if args.targets.is_empty() {
        zfs.snapshots(&[], true)?
    } else {
        let datasets: Vec<DatasetName> = args
            .targets
            .iter()
            .map(|t| resolve(zfs, t))
            .collect::<Result<_, _>>()?;
        zfs.snapshots(&datasets.iter().collect::<Vec<_>>(), args.recursive)?
    };
    let mut table = Table::new(
        "SnapshotList",
        &[
            ("SNAPSHOT", "name"),
            ("CREATED", "creation"),
            ("USED", "used"),
            ("REFER", "referenced"),
            ("WRITTEN", "written"),
            ("HOLDS", "holds"),
            ("CLONES", "clones"),
        ],
    );
    for s in snaps {
        let clones: Vec<String> = s.clones.iter().map(ToString::to_string).collect();
        table.push(vec![
            Cell::text(s.name.as_str()),
            Cell::time(s.creation),
            Cell::bytes(s.used),
            Cell::bytes(s.referenced),
            Cell::bytes(s.written),
            Cell::number(s.holds),
            Cell::list(clones),
        ]);
    }
    table.print(&args.output);
    Ok(ExitCode::SUCCESS)
}

/// Finds the snapshot SNAP names among `snaps` (one dataset's, oldest
/// first): a full name, an exact short name, or else the newest with that
/// label.
fn choose<'a>(
    dataset: &DatasetName,
    snaps: &'a [Snapshot],
    spec: &str,
) -> Result<(&'a Snapshot, String), Failure> {
    let short = short_of(dataset, spec)?;
    if let Some(s) = snaps.iter().find(|s| s.name.short() == short) {
        return Ok((s, format!("snapshot {}", s.name)));
    }
    if let Some(s) = snaps
        .iter()
        .rev()
        .find(|s| label_of(s.name.short()) == Some(short))
    {
        return Ok((s, format!("{} (the newest with label {short:?})", s.name)));
    }
    Err(Failure::new(format!(
        "{dataset} has no snapshot {short:?} and none labelled {short:?}"
    ))
    .hint(format!("`ksnap list {dataset}` shows its snapshots")))
}

fn rollback(zfs: &Zfs, args: &Rollback) -> Result<ExitCode, Failure> {
    let dataset = resolve_exact(zfs, &args.target)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock(
            &format!("ksnap-rollback-{}", dataset.pool()),
            &format!("ksnap rollback {dataset}"),
            &format!(
                "another ksnap rollback in pool {} is running",
                dataset.pool()
            ),
        )?)
    };
    let snaps = zfs.snapshots(&[&dataset], false)?;
    let (chosen, described) = choose(&dataset, &snaps, &args.snap)?;
    eprintln!(
        "ksnap: rolling {dataset}{} back to {described}",
        if args.recursive { " and its tree" } else { "" }
    );
    if args.recursive {
        return rollback_tree(zfs, &dataset, &chosen.name, args);
    }
    let plan = {
        let newer: Vec<&Snapshot> = snaps
            .iter()
            .filter(|s| s.createtxg > chosen.createtxg)
            .collect();
        let names = |v: &[&Snapshot]| {
            v.iter()
                .map(|s| s.name.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let cloned: Vec<&Snapshot> = newer
            .iter()
            .copied()
            .filter(|s| !s.clones.is_empty())
            .collect();
        if !cloned.is_empty() {
            return Err(
                Failure::new(format!("newer snapshots have clones: {}", names(&cloned)))
                    .hint("ksnap never destroys clones; promote or destroy them first"),
            );
        }
        if !newer.is_empty() && !args.destroy_newer {
            return Err(
                Failure::new(format!("newer snapshots exist: {}", names(&newer)))
                    .hint("add --destroy-newer to destroy them with the rollback"),
            );
        }
        zfs.rollback(&chosen.name, args.destroy_newer)
    };
    execute(&plan, args.dry_run, &[&chosen.name])
}

/// `ksnap rollback -r`: the tree's mounted file systems are unmounted, the
/// tree rolled back in one channel program, and the file systems mounted
/// again. Which ones to mount again is journaled first (in the runtime
/// directory, under the rollback lock), so that a run killed in between
/// leaves a record the next `ksnap rollback -r` of the tree reads: it
/// mounts again what the killed run had unmounted.
fn rollback_tree(
    zfs: &Zfs,
    root: &DatasetName,
    snap: &SnapshotName,
    args: &Rollback,
) -> Result<ExitCode, Failure> {
    let journal = tree_journal(root)?;
    let earlier: Vec<DatasetName> = match std::fs::read_to_string(&journal) {
        Ok(text) => text
            .lines()
            .filter_map(|l| DatasetName::new(l).ok())
            .filter(|d| d.is_within(root))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Failure::new(format!(
                "cannot read the journal {}: {e}",
                journal.display()
            )))
        }
    };
    let plan = zfs.rollback_tree_remounting(snap, args.destroy_newer, &earlier)?;
    if args.dry_run {
        print!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    if !earlier.is_empty() {
        let names: Vec<String> = earlier.iter().map(ToString::to_string).collect();
        eprintln!(
            "ksnap: an interrupted rollback of {root} left unmounted what this one mounts again: {}",
            names.join(" ")
        );
    }
    let (mounted, _) = zfs.tree_mounts(root)?;
    let mut remount: Vec<String> = mounted.iter().map(ToString::to_string).collect();
    remount.extend(earlier.iter().map(ToString::to_string));
    remount.sort();
    remount.dedup();
    let mut text = remount.join("\n");
    text.push('\n');
    kld_fs::replace(&journal, text.as_bytes(), 0o600).map_err(|e| {
        Failure::new(format!(
            "cannot write the journal {}: {e}",
            journal.display()
        ))
    })?;
    plan.run()?;
    match std::fs::remove_file(&journal) {
        Ok(()) => kld_fs::fault::step(|| format!("remove {}", journal.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Failure::new(format!(
                "rolled back, but cannot remove the journal {}: {e}",
                journal.display()
            )))
        }
    }
    println!("{snap}");
    Ok(ExitCode::SUCCESS)
}

/// Where `ksnap rollback -r` of `root` journals what it unmounted.
fn tree_journal(root: &DatasetName) -> Result<std::path::PathBuf, Failure> {
    use sha2::Digest;
    let dir = kld_fs::secret::runtime_dir()
        .map_err(|e| Failure::new(format!("cannot prepare the runtime directory: {e}")))?;
    let digest = sha2::Sha256::digest(root.as_str().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("ksnap-rollback-{hex}.journal")))
}

fn destroy(zfs: &Zfs, args: &Destroy) -> Result<ExitCode, Failure> {
    let dataset = resolve_exact(zfs, &args.target)?;
    let snaps = zfs.snapshots(&[&dataset], false)?;
    let mut chosen = Vec::new();
    for spec in &args.snaps {
        let short = short_of(&dataset, spec)?;
        let name = dataset.snapshot(short)?;
        let snap = snaps
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Failure::new(format!("snapshot {name} does not exist")))?;
        if snap.holds > 0 {
            return Err(
                Failure::new(format!("{name} is held ({} holds)", snap.holds))
                    .hint("`zfs holds` shows them"),
            );
        }
        if !snap.clones.is_empty() {
            let clones: Vec<String> = snap.clones.iter().map(ToString::to_string).collect();
            return Err(
                Failure::new(format!("{name} has clones: {}", clones.join(" ")))
                    .hint("ksnap never destroys clones; promote or destroy them first"),
            );
        }
        if !chosen.contains(&name) {
            chosen.push(name);
        }
    }
    let plan = zfs.destroy_snapshots(&chosen);
    execute(&plan, args.dry_run, &chosen)
}

fn diff(zfs: &Zfs, args: &Diff) -> Result<ExitCode, Failure> {
    let dataset = resolve(zfs, &args.target)?;
    let snaps = zfs.snapshots(&[&dataset], false)?;
    let (chosen, _) = choose(&dataset, &snaps, &args.snap)?;
    let changes = zfs.diff(&chosen.name, None)?;
    let mut table = Table::new(
        "SnapshotDiff",
        &[
            ("CHANGE", "change"),
            ("TYPE", "type"),
            ("PATH", "path"),
            ("NEW PATH", "newPath"),
        ],
    );
    for c in changes {
        let kind = match c.kind {
            kld_zfs::diff::ChangeKind::Added => "added",
            kld_zfs::diff::ChangeKind::Removed => "removed",
            kld_zfs::diff::ChangeKind::Modified => "modified",
            kld_zfs::diff::ChangeKind::Renamed => "renamed",
        };
        table.push(vec![
            Cell::text(kind),
            Cell::text(c.file_type.to_string()),
            Cell::text(c.path),
            c.new_path.map(Cell::text).unwrap_or_else(Cell::none),
        ]);
    }
    table.print(&args.output);
    Ok(ExitCode::SUCCESS)
}

fn prune(zfs: &Zfs, args: &Prune) -> Result<ExitCode, Failure> {
    if let Some(label) = &args.label {
        check_label(label)?;
    }
    let datasets: Vec<DatasetName> = args
        .targets
        .iter()
        .map(|t| resolve_exact(zfs, t))
        .collect::<Result<_, _>>()?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock(
            "ksnap-prune",
            &format!("ksnap prune {}", args.targets.join(" ")),
            "another ksnap prune is running",
        )?)
    };
    let snaps = zfs.snapshots(&datasets.iter().collect::<Vec<_>>(), args.recursive)?;
    // Candidates: ksnap's own names, grouped per dataset and label, newest
    // first.
    let mut groups: BTreeMap<(String, String), Vec<&Snapshot>> = BTreeMap::new();
    for s in &snaps {
        let Some(label) = label_of(s.name.short()) else {
            continue;
        };
        if args.label.as_deref().is_some_and(|l| l != label) {
            continue;
        }
        groups
            .entry((s.name.dataset().to_string(), label.to_owned()))
            .or_default()
            .push(s);
    }
    let cutoff = args.older_than.map(|age| time::now().saturating_sub(age));
    let mut doomed = Vec::new();
    let mut skipped = Vec::new();
    for group in groups.values_mut() {
        group.sort_by_key(|s| std::cmp::Reverse(s.createtxg));
        for (i, s) in group.iter().enumerate() {
            let expired = match (args.keep, cutoff) {
                (Some(keep), _) => i >= keep,
                (None, Some(cutoff)) => s.creation < cutoff,
                (None, None) => false,
            };
            if !expired {
                continue;
            }
            if s.holds > 0 {
                skipped.push(format!("{} (held)", s.name));
            } else if !s.clones.is_empty() {
                skipped.push(format!("{} (has clones)", s.name));
            } else {
                doomed.push((s.createtxg, s.name.clone()));
            }
        }
    }
    doomed.sort();
    let doomed: Vec<SnapshotName> = doomed.into_iter().map(|(_, name)| name).collect();
    for s in &skipped {
        eprintln!("ksnap: skipped {s}");
    }
    let plan = zfs.destroy_snapshots(&doomed);
    execute(&plan, args.dry_run, &doomed)
}

/// Prints the plan (`--dry-run`), or runs it and prints what it made or
/// destroyed, one name a line.
fn execute<T: std::fmt::Display>(
    plan: &Plan,
    dry_run: bool,
    names: &[T],
) -> Result<ExitCode, Failure> {
    if dry_run {
        print!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    plan.run()?;
    for name in names {
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The part after '@' of SPEC, which names a snapshot of `dataset` either
/// by that part alone or in full.
fn short_of<'a>(dataset: &DatasetName, spec: &'a str) -> Result<&'a str, Failure> {
    match spec.split_once('@') {
        Some((ds, short)) if ds == dataset.as_str() => Ok(short),
        Some(_) => Err(Failure::usage(format!(
            "{spec} is not a snapshot of {dataset}"
        ))),
        None => Ok(spec),
    }
}

/// Takes the system lock NAME (root's, in /run/kld) for PURPOSE, or says
/// BUSY and who holds it.
fn lock(name: &str, purpose: &str, busy: &str) -> Result<Lock, Failure> {
    Lock::try_system(name, purpose).map_err(|e| match e {
        LockError::Busy { holder, path } => {
            Failure::new(format!("{busy}: held by {holder}")).hint(format!(
                "wait for it to finish (it holds {}); nothing was changed",
                path.display()
            ))
        }
        e => Failure::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_exactly() {
        assert_eq!(label_of("manual-20260124-153000"), Some("manual"));
        assert_eq!(label_of("pre-upgrade-20260124-153000"), Some("pre-upgrade"));
        assert_eq!(label_of("manual-20261324-153000"), None, "month 13");
        assert_eq!(label_of("-20260124-153000"), None);
        assert_eq!(label_of("autosnap_2026-01-24_15:30:00_daily"), None);
        assert_eq!(label_of("x"), None);
    }

    #[test]
    fn labels_are_checked() {
        check_label("pre-upgrade").unwrap();
        for bad in ["", "-x", "a/b", "a@b", "a b", "a;b"] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
    }
}
