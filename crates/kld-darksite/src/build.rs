//! Building a darksite end to end: read the set, fetch and verify upstream
//! metadata, resolve, download and verify the packages, publish signed and
//! swap in. [`plan`] does everything up to the download without changing
//! anything, for `--dry-run`.

use std::path::{Path, PathBuf};

use crate::darksite::{BuildRecord, Darksite};
use crate::download::{self, Item, Progress, Store};
use crate::fetch::Fetcher;
use crate::local;
use crate::publish::{date_unix, newest_date, Plan};
use crate::resolve::{self, Resolution, Universe};
use crate::set::PackageSet;
use crate::upstream::{self, Suite};
use crate::Error;

/// A set resolved over its upstream suites.
#[derive(Debug)]
pub struct Resolved {
    /// The set.
    pub set: PackageSet,
    /// The upstream suites as fetched and verified.
    pub suites: Vec<Suite>,
    /// Every package of their indices (and the set's local files).
    pub universe: Universe,
    /// The closure.
    pub resolution: Resolution,
}

impl Resolved {
    /// The publication this resolution makes.
    pub fn plan(&self) -> Plan {
        let date = newest_date(self.suites.iter().filter_map(|s| s.release.date.as_deref()))
            .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 UTC".into());
        Plan::new(
            &self.universe,
            &self.resolution,
            &self.set.distribution,
            &self.set.name,
            &self.set.architectures,
            &date,
        )
    }

    /// The files to download for the closure.
    pub fn items(&self) -> Vec<Item> {
        self.resolution
            .packages
            .iter()
            .map(|(id, _)| {
                let p = self.universe.pkg(*id);
                Item {
                    label: format!("{} {}", p.name, p.version),
                    url: self.universe.url(*id),
                    size: p.size,
                    sha256: p.sha256.clone(),
                }
            })
            .collect()
    }
}

/// Fetches the set's upstream metadata (indices cached in `cache`), adds
/// its local files and resolves it.
pub fn resolve_set(
    set: PackageSet,
    mirror: &str,
    fetcher: &Fetcher,
    cache: &Path,
) -> Result<Resolved, Error> {
    let (suites, mut sources) = upstream::fetch(&set, mirror, fetcher, cache)?;
    if !set.local.is_empty() {
        let component = set.components[0].clone();
        // Local files come first: among equal versions they win.
        sources.insert(0, local::source(&set.local, &component, set.native_arch())?);
    }
    let universe = Universe::new(sources, &set.architectures);
    let resolution = resolve::resolve(&universe, &set);
    Ok(Resolved {
        set,
        suites,
        universe,
        resolution,
    })
}

/// How a build runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The mirror URL (`http://...` or `file:///...`).
    pub mirror: String,
    /// The signing key; `None` uses (and first makes) the darksite's own.
    pub key: Option<PathBuf>,
    /// Parallel downloads.
    pub jobs: usize,
    /// Build from an upstream Release older than the one the last build
    /// used (normally refused as a replay).
    pub allow_older: bool,
    /// Told who holds the darksite's lock, if another run does, before
    /// this one waits for it.
    pub waiting: fn(&str),
}

impl Options {
    /// Options for `mirror` with the darksite's own key, 4 downloads at
    /// once, replays refused and a silent wait for the lock.
    pub fn new(mirror: impl Into<String>) -> Options {
        Options {
            mirror: mirror.into(),
            key: None,
            jobs: 4,
            allow_older: false,
            waiting: |_| {},
        }
    }
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The publication made.
    pub release: u64,
    /// Packages published.
    pub packages: usize,
    /// Their total size.
    pub bytes: u64,
    /// What the download did.
    pub download: download::Report,
    /// The fingerprint of the signing key.
    pub fingerprint: String,
    /// Whether a new signing key was made.
    pub new_key: bool,
}

/// What a build would do (`--dry-run`).
#[derive(Debug)]
pub struct BuildPlan {
    /// The resolution.
    pub resolved: Resolved,
    /// The publication it would make.
    pub plan: Plan,
    /// Files the store lacks, to download.
    pub to_download: Vec<Item>,
    /// The number the publication would get.
    pub release: u64,
}

/// Resolves and plans a build without changing anything (indices are
/// fetched into a temporary directory unless the darksite already caches
/// them).
pub fn plan(
    darksite: &Darksite,
    set_path: &Path,
    opts: &Options,
    fetcher: &Fetcher,
) -> Result<BuildPlan, Error> {
    let set = PackageSet::load(set_path)?;
    let tmp = tempfile::tempdir().map_err(|source| Error::Io {
        what: "cannot create a temporary directory",
        path: std::env::temp_dir(),
        source,
    })?;
    // The darksite's own cache is written to under its lock only.
    let (cache, _locked) = if darksite.index_cache().is_dir() {
        let locked = darksite.lock(
            &format!("kdarksite build --dry-run {}", darksite.root().display()),
            opts.waiting,
        )?;
        (darksite.index_cache(), Some(locked))
    } else {
        (tmp.path().to_owned(), None)
    };
    let resolved = resolve_set(set, &opts.mirror, fetcher, &cache)?;
    if !resolved.resolution.is_complete() {
        return Err(Error::Unsatisfied(resolved.resolution.unsatisfied.clone()));
    }
    let store_dir = darksite.state_dir().join("store");
    let to_download = resolved
        .items()
        .into_iter()
        .filter(|i| !std::fs::metadata(store_dir.join(&i.sha256)).is_ok_and(|m| m.len() == i.size))
        .collect();
    Ok(BuildPlan {
        plan: resolved.plan(),
        resolved,
        to_download,
        release: darksite.next_release(),
    })
}

/// Builds (or updates) the darksite from the set at `set_path`. Nothing
/// reaches the published tree unless every package downloaded and verified
/// and the staged publication verifies.
pub fn build(
    darksite: &Darksite,
    set_path: &Path,
    opts: &Options,
    fetcher: &Fetcher,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, Error> {
    let set_path = std::path::absolute(set_path).map_err(|source| Error::Io {
        what: "cannot resolve",
        path: set_path.to_owned(),
        source,
    })?;
    let set = PackageSet::load(&set_path)?;
    // The key is checked before anything is fetched.
    let key = match &opts.key {
        Some(k) => std::path::absolute(k).unwrap_or_else(|_| k.clone()),
        None => darksite.default_key(),
    };
    if key != darksite.default_key() || key.exists() {
        crate::sign::check_key(&key)?;
    }
    let locked = darksite.lock(
        &format!("kdarksite build {}", darksite.root().display()),
        opts.waiting,
    )?;
    let resolved = resolve_set(set, &opts.mirror, fetcher, &darksite.index_cache())?;
    if !resolved.resolution.is_complete() {
        return Err(Error::Unsatisfied(resolved.resolution.unsatisfied.clone()));
    }
    let previous = darksite.record()?;
    let release_dates = check_replay(&resolved.suites, previous.as_ref(), opts.allow_older)?;
    let store: Store = darksite.store()?;
    let items = resolved.items();
    let download = download::download(fetcher, &store, &items, opts.jobs, progress)?;
    let (signer, new_key) = darksite.signer(&key)?;
    let plan = resolved.plan();
    let release = darksite.publish(&locked, &plan, &store, &signer)?;
    darksite.save_record(&BuildRecord {
        set: set_path,
        mirror: opts.mirror.clone(),
        key,
        release_dates,
    })?;
    Ok(Report {
        release,
        packages: plan.entries.len(),
        bytes: plan.bytes(),
        download,
        fingerprint: signer.fingerprint().to_owned(),
        new_key,
    })
}

/// Refuses an upstream Release dated before the one the last build used
/// (unless `allow_older`); returns the dates to record.
fn check_replay(
    suites: &[Suite],
    previous: Option<&BuildRecord>,
    allow_older: bool,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut dates = std::collections::BTreeMap::new();
    for s in suites {
        let Some(date) = &s.release.date else {
            continue;
        };
        let last = previous.and_then(|r| r.release_dates.get(&s.name));
        if let Some(last) = last {
            let (now, then) = (date_unix(date), date_unix(last));
            if let (Some(now), Some(then)) = (now, then) {
                if now < then && !allow_older {
                    return Err(Error::OlderRelease {
                        suite: s.name.clone(),
                        date: date.clone(),
                        last: last.clone(),
                    });
                }
            }
        }
        dates.insert(s.name.clone(), date.clone());
    }
    Ok(dates)
}

/// The options and set of the darksite's last build, for `update`; the
/// mirror can be overridden.
pub fn update_options(
    darksite: &Darksite,
    mirror: Option<&str>,
    jobs: usize,
) -> Result<(PathBuf, Options), Error> {
    let record = darksite.record()?.ok_or_else(|| {
        Error::State(format!(
            "{} has no build record: build it first with `kdarksite build SET --mirror URL --out {}`",
            darksite.root().display(),
            darksite.root().display()
        ))
    })?;
    Ok((
        record.set,
        Options {
            mirror: mirror.map(str::to_owned).unwrap_or(record.mirror),
            key: Some(record.key),
            jobs,
            allow_older: false,
            waiting: |_| {},
        },
    ))
}
