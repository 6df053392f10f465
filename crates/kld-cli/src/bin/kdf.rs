//! kdf: disk space as ZFS accounts it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use kld_cli::args::kdf::*;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{Cell, OutputArgs, Table};
use kld_cli::target::resolve;
use kld_zfs::name::{DatasetName, PoolName};
use kld_zfs::parse::Row;
use kld_zfs::{Depth, Kind, Zfs};

const COLUMNS: &[&str] = &[
    "type",
    "used",
    "avail",
    "refer",
    "usedbysnapshots",
    "usedbychildren",
    "usedbyrefreservation",
    "compressratio",
    "origin",
];

/// One dataset's space.
struct Space {
    name: String,
    used: u64,
    avail: u64,
    refer: u64,
    snaps: u64,
    child: u64,
    refreserv: u64,
    ratio: f64,
    nsnap: u64,
    origin: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kdf", || {
        let zfs = Zfs::new();
        let pool = cli.pool.as_deref().map(PoolName::new).transpose()?;
        if cli.pools {
            return pools(&zfs, pool.as_ref(), &cli.output);
        }
        let targets: Vec<DatasetName> = cli
            .targets
            .iter()
            .map(|t| resolve(&zfs, t))
            .collect::<Result<_, _>>()?;
        if cli.snapshots {
            return snapshots(&zfs, &cli, &targets);
        }
        let mut rows = datasets(&zfs, &cli, &targets, pool.as_ref())?;
        sort(&mut rows, cli.sort.as_deref());
        let mut table = Table::new(
            "DatasetSpaceList",
            &[
                ("NAME", "name"),
                ("USED", "used"),
                ("AVAIL", "available"),
                ("REFER", "referenced"),
                ("SNAPS", "usedBySnapshots"),
                ("CHILD", "usedByChildren"),
                ("REFRESERV", "usedByRefreservation"),
                ("RATIO", "compressRatio"),
                ("NSNAP", "snapshotCount"),
                ("ORIGIN", "origin"),
            ],
        );
        for s in &rows {
            table.push(vec![
                Cell::text(&s.name),
                Cell::bytes(s.used),
                Cell::bytes(s.avail),
                Cell::bytes(s.refer),
                Cell::bytes(s.snaps),
                Cell::bytes(s.child),
                Cell::bytes(s.refreserv),
                Cell::ratio(s.ratio),
                Cell::number(s.nsnap),
                s.origin.clone().map(Cell::text).unwrap_or_else(Cell::none),
            ]);
        }
        table.print(&cli.output);
        let human = !(cli.output.scripted || cli.output.parsable || cli.output.json);
        if human {
            println!();
            let pools_of: Vec<PoolName> = {
                let mut v: Vec<PoolName> = rows
                    .iter()
                    .filter_map(|s| DatasetName::new(&s.name).ok().map(|d| d.pool()))
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            pool_table(&zfs, &pools_of)?.print(&cli.output);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Lists datasets and counts their snapshots from one `zfs list`.
fn datasets(
    zfs: &Zfs,
    cli: &Cli,
    targets: &[DatasetName],
    pool: Option<&PoolName>,
) -> Result<Vec<Space>, Failure> {
    let roots: Vec<&str> = if targets.is_empty() {
        pool.map(|p| vec![p.as_str()]).unwrap_or_default()
    } else {
        targets.iter().map(DatasetName::as_str).collect()
    };
    // Snapshots sit one level below their dataset: list one level deeper
    // than asked so that the deepest datasets' snapshots are counted.
    let (depth, keep_depth) = match (cli.depth, cli.recursive || targets.is_empty()) {
        (Some(d), _) => (Depth::Max(d + 1), Some(d)),
        (None, true) => (Depth::All, None),
        (None, false) => (Depth::Max(1), Some(0)),
    };
    let all = [Kind::Filesystem, Kind::Volume, Kind::Snapshot];
    let rows = zfs.list(&roots, &all, COLUMNS, depth)?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut spaces = Vec::new();
    for row in &rows {
        let name = row.get("name").unwrap_or_default();
        if row.get("type") == Some("snapshot") {
            let dataset = name.split('@').next().unwrap_or_default();
            *counts.entry(dataset.to_owned()).or_default() += 1;
            continue;
        }
        if let Some(max) = keep_depth {
            // Levels below the target it lies under (below the pool's root
            // dataset when listing every pool).
            let below = match root_of(name, &roots) {
                Some(root) => name[root.len()..].matches('/').count(),
                None => name.matches('/').count(),
            };
            if below as u32 > max {
                continue;
            }
        }
        if pool.is_some_and(|p| name.split('/').next() != Some(p.as_str())) {
            continue;
        }
        spaces.push(space(row)?);
    }
    for s in &mut spaces {
        s.nsnap = counts.get(&s.name).copied().unwrap_or(0);
    }
    Ok(spaces)
}

/// The root (of those listed) that `name` lies under.
fn root_of<'a>(name: &str, roots: &[&'a str]) -> Option<&'a str> {
    roots
        .iter()
        .copied()
        .filter(|r| {
            name == *r
                || name
                    .strip_prefix(*r)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|r| r.len())
}

fn space(row: &Row) -> Result<Space, Failure> {
    let n = |c: &str| -> Result<u64, Failure> {
        Ok(row.number(c).map_err(kld_zfs::Error::from)?.unwrap_or(0))
    };
    Ok(Space {
        name: row.get("name").unwrap_or_default().to_owned(),
        used: n("used")?,
        avail: n("avail")?,
        refer: n("refer")?,
        snaps: n("usedbysnapshots")?,
        child: n("usedbychildren")?,
        refreserv: n("usedbyrefreservation")?,
        ratio: row
            .ratio("compressratio")
            .map_err(kld_zfs::Error::from)?
            .unwrap_or(1.0),
        nsnap: 0,
        origin: row.get("origin").filter(|o| *o != "-").map(str::to_owned),
    })
}

fn sort(rows: &mut [Space], field: Option<&str>) {
    let Some(field) = field else { return };
    if field == "name" {
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        return;
    }
    let key = |s: &Space| -> f64 {
        match field {
            "used" => s.used as f64,
            "avail" => s.avail as f64,
            "refer" => s.refer as f64,
            "snaps" => s.snaps as f64,
            "child" => s.child as f64,
            "refreserv" => s.refreserv as f64,
            "ratio" => s.ratio,
            _ => s.nsnap as f64,
        }
    };
    rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.name.cmp(&b.name)));
}

fn snapshots(zfs: &Zfs, cli: &Cli, targets: &[DatasetName]) -> Result<ExitCode, Failure> {
    if targets.is_empty() {
        return Err(Failure::usage("--snapshots needs a TARGET").hint("kdf --snapshots rpool/home"));
    }
    let snaps = zfs.snapshots(&targets.iter().collect::<Vec<_>>(), cli.recursive)?;
    let mut table = Table::new(
        "SnapshotSpaceList",
        &[
            ("SNAPSHOT", "name"),
            ("UNIQUE", "unique"),
            ("WRITTEN", "written"),
            ("REFER", "referenced"),
            ("CREATED", "creation"),
            ("CLONES", "clones"),
        ],
    );
    for s in snaps {
        let clones: Vec<String> = s.clones.iter().map(ToString::to_string).collect();
        table.push(vec![
            Cell::text(s.name.as_str()),
            Cell::bytes(s.used),
            Cell::bytes(s.written),
            Cell::bytes(s.referenced),
            Cell::time(s.creation),
            Cell::list(clones),
        ]);
    }
    table.print(&cli.output);
    Ok(ExitCode::SUCCESS)
}

fn pools(zfs: &Zfs, pool: Option<&PoolName>, output: &OutputArgs) -> Result<ExitCode, Failure> {
    let names: Vec<PoolName> = match pool {
        Some(p) => vec![p.clone()],
        None => Vec::new(),
    };
    pool_table(zfs, &names)?.print(output);
    Ok(ExitCode::SUCCESS)
}

/// Totals of the named pools (all pools when none is named).
fn pool_table(zfs: &Zfs, names: &[PoolName]) -> Result<Table, Failure> {
    let rows = zfs.pools(&["size", "allocated", "free", "capacity", "health"])?;
    if let Some(missing) = names
        .iter()
        .find(|n| !rows.iter().any(|r| r.get("name") == Some(n.as_str())))
    {
        return Err(Failure::new(format!("pool {missing} is not imported"))
            .hint("`zpool list` shows the pools"));
    }
    let mut table = Table::new(
        "PoolSpaceList",
        &[
            ("POOL", "name"),
            ("SIZE", "size"),
            ("ALLOC", "allocated"),
            ("FREE", "free"),
            ("CAP", "capacityPercent"),
            ("HEALTH", "health"),
        ],
    );
    for r in rows {
        let name = r.get("name").unwrap_or_default();
        if !names.is_empty() && !names.iter().any(|n| n.as_str() == name) {
            continue;
        }
        let n = |c: &str| -> Result<u64, Failure> {
            Ok(r.number(c).map_err(kld_zfs::Error::from)?.unwrap_or(0))
        };
        table.push(vec![
            Cell::text(name),
            Cell::bytes(n("size")?),
            Cell::bytes(n("allocated")?),
            Cell::bytes(n("free")?),
            Cell::percent(n("capacity")?),
            Cell::text(r.get("health").unwrap_or("-")),
        ]);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots() {
        assert_eq!(root_of("tank/a/b", &["tank", "tank/a"]), Some("tank/a"));
        assert_eq!(root_of("tank/ab", &["tank/a"]), None);
    }
}
