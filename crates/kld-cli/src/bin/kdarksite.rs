//! kdarksite: signed offline APT mirrors that install air-gapped machines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use kld_cli::args::kdarksite::*;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{human_bytes, print_json, Cell, OutputArgs, Table, API_VERSION};
use kld_cli::progress::ProgressLine;
use kld_darksite::build::{self, Options};
use kld_darksite::download::Progress;
use kld_darksite::fetch::Fetcher;
use kld_darksite::set::PackageSet;
use kld_darksite::{serve, verify, Darksite};

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kdarksite", || match cli.command {
        Command::Resolve(a) => resolve(&a),
        Command::Build(a) => {
            let opts = Options {
                mirror: a.mirror.clone(),
                key: a.key.clone(),
                jobs: a.jobs.into(),
                allow_older: a.allow_older,
                waiting,
            };
            build_or_update(&Darksite::new(&a.out), &a.set, &opts, a.dry_run, a.quiet)
        }
        Command::Update(a) => {
            let ds = Darksite::new(&a.dir);
            let (set, mut opts) = build::update_options(&ds, a.mirror.as_deref(), a.jobs.into())?;
            opts.allow_older = a.allow_older;
            opts.waiting = waiting;
            build_or_update(&ds, &set, &opts, a.dry_run, a.quiet)
        }
        Command::Verify(a) => verify_cmd(&a),
        Command::Rollback(a) => rollback(&a),
        Command::Serve(a) => serve_cmd(&a),
    })
}

/// Says why nothing happens while another run holds the darksite.
fn waiting(holder: &str) {
    eprintln!("kdarksite: waiting for the darksite's lock, held by {holder}");
}

fn default_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("kdarksite");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/kdarksite"),
        None => std::env::temp_dir().join("kdarksite-cache"),
    }
}

fn resolve(a: &ResolveArgs) -> Result<ExitCode, Failure> {
    let set = PackageSet::load(&a.set).map_err(kld_darksite::Error::from)?;
    let cache = a.cache.clone().unwrap_or_else(default_cache);
    let r = build::resolve_set(set, &a.mirror, &Fetcher::new(), &cache)?;
    let mut table = Table::new(
        "DarksiteClosure",
        &[
            ("NAME", "name"),
            ("VERSION", "version"),
            ("ARCH", "architecture"),
            ("SUITE", "suite"),
            ("SIZE", "size"),
            ("WHY", "reason"),
        ],
    );
    let mut rows: Vec<_> = r.resolution.packages.iter().collect();
    rows.sort_by(|x, y| r.universe.pkg(x.0).name.cmp(&r.universe.pkg(y.0).name));
    let mut total = 0;
    for (id, reason) in rows {
        let p = r.universe.pkg(*id);
        total += p.size;
        table.push(vec![
            Cell::text(&p.name),
            Cell::text(p.version.as_str()),
            Cell::text(&p.arch),
            Cell::text(&r.universe.source(*id).suite),
            Cell::bytes(p.size),
            Cell::text(reason.to_string()),
        ]);
    }
    table.print(&a.output);
    if human(&a.output) {
        println!(
            "\n{} packages, {} to download, from {} packages in {}",
            table.len(),
            human_bytes(total),
            r.universe.len(),
            r.set.suites.join(", ")
        );
    }
    if !r.resolution.is_complete() {
        return Err(kld_darksite::Error::Unsatisfied(r.resolution.unsatisfied.clone()).into());
    }
    Ok(ExitCode::SUCCESS)
}

fn human(o: &OutputArgs) -> bool {
    !(o.scripted || o.parsable || o.json)
}

/// A progress line on a terminal; nothing otherwise.
fn progress_bar(quiet: bool) -> impl Fn(Progress) + Sync {
    let line = ProgressLine::new(quiet);
    move |p: Progress| {
        let fraction = if p.total_bytes == 0 {
            1.0
        } else {
            p.bytes as f64 / p.total_bytes as f64
        };
        line.draw(
            fraction,
            &format!(
                "{}/{} packages, {}/{}",
                p.done,
                p.total,
                human_bytes(p.bytes),
                human_bytes(p.total_bytes)
            ),
        );
        if p.done == p.total {
            line.finish();
        }
    }
}

fn build_or_update(
    ds: &Darksite,
    set: &Path,
    opts: &Options,
    dry_run: bool,
    quiet: bool,
) -> Result<ExitCode, Failure> {
    let fetcher = Fetcher::new();
    if dry_run {
        let plan = build::plan(ds, set, opts, &fetcher)?;
        let fetch_bytes: u64 = plan.to_download.iter().map(|i| i.size).sum();
        println!(
            "would publish {} packages ({}) from {} as {}/releases/{} and point {}/current at it",
            plan.plan.entries.len(),
            human_bytes(plan.plan.bytes()),
            opts.mirror,
            ds.root().display(),
            plan.release,
            ds.root().display()
        );
        println!(
            "would download {} packages ({}); {} are already in the store",
            plan.to_download.len(),
            human_bytes(fetch_bytes),
            plan.plan.entries.len() - plan.to_download.len()
        );
        for i in &plan.to_download {
            println!("  {} ({}) {}", i.label, human_bytes(i.size), i.url);
        }
        if let Some(cur) = ds.current() {
            println!("would keep publication {cur} for rollback");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bar = progress_bar(quiet);
    let r = build::build(ds, set, opts, &fetcher, &bar)?;
    let root = ds.root().display();
    if r.new_key {
        println!(
            "made a new signing key {} (secret in {})",
            r.fingerprint,
            ds.default_key().display()
        );
    }
    println!(
        "published {} packages ({}) as {root}/releases/{}: downloaded {} ({}), {} already verified in the store",
        r.packages,
        human_bytes(r.bytes),
        r.release,
        r.download.fetched,
        human_bytes(r.download.fetched_bytes),
        r.download.reused
    );
    println!(
        "signed by {}; clients trust {root}/current/{}",
        r.fingerprint,
        kld_darksite::publish::KEY_FILE
    );
    Ok(ExitCode::SUCCESS)
}

fn verify_cmd(a: &VerifyArgs) -> Result<ExitCode, Failure> {
    let r = verify::verify(&a.dir, a.keyring.as_deref()).map_err(kld_darksite::Error::from)?;
    if a.json {
        let doc = serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": "DarksiteVerification",
            "verified": true,
            "publication": r.root,
            "suites": r.suites,
            "packages": r.packages,
            "files": r.files,
            "bytes": r.bytes,
            "signedBy": r.signed_by,
        });
        print_json(&doc);
    } else {
        println!(
            "{}: verified: {} packages, {} files ({}) match the indices, Release signed by {}",
            r.root.display(),
            r.packages,
            r.files,
            human_bytes(r.bytes),
            r.signed_by
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rollback(a: &RollbackArgs) -> Result<ExitCode, Failure> {
    let ds = Darksite::new(&a.dir);
    if a.dry_run {
        let r = ds.plan_rollback()?;
        println!(
            "would point {}/current from releases/{} back to releases/{}",
            a.dir.display(),
            r.from,
            r.to
        );
        return Ok(ExitCode::SUCCESS);
    }
    let r = ds.rollback(waiting)?;
    println!(
        "{}/current: releases/{} (was releases/{})",
        a.dir.display(),
        r.to,
        r.from
    );
    Ok(ExitCode::SUCCESS)
}

fn serve_cmd(a: &ServeArgs) -> Result<ExitCode, Failure> {
    if !verify::publication_root(&a.dir).join("dists").is_dir() {
        return Err(
            Failure::new(format!("{} has no published darksite", a.dir.display()))
                .hint("build one with `kdarksite build SET --mirror URL --out DIR`"),
        );
    }
    let server = serve::Server::bind(&a.dir, &a.listen)
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", a.listen)))?;
    let addr = server
        .local_addr()
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", a.listen)))?;
    eprintln!("kdarksite: serving {} on http://{addr}/", a.dir.display());
    server
        .run()
        .map_err(|e| Failure::new(format!("serving failed: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
