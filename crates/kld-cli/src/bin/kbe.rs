//! kbe: boot environments, and the way back after an upgrade.

use std::process::ExitCode;

use clap::Parser;
use kld_be::{BeName, BootEnvironment, BootEnvironments, Change, Locate, PrunePolicy, Source};
use kld_cli::args::kbe::*;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{print_json, Cell, Table, API_VERSION};
use kld_cli::time;
use kld_zfs::name::{DatasetName, PoolName};
use kld_zfs::Zfs;

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kbe", || {
        let bes = locate(&cli)?;
        let dry_run = match &cli.command {
            Command::List(_) | Command::Current(_) => None,
            Command::Create(a) => Some(a.dry_run),
            Command::Activate(a) | Command::Destroy(a) | Command::Unmount(a) => Some(a.dry_run),
            Command::Rollback(a) => Some(a.dry_run),
            Command::Rename(a) => Some(a.dry_run),
            Command::Mount(a) => Some(a.dry_run),
            Command::Prune(a) => Some(a.dry_run),
        };
        // Every change holds the pool's lock, and first finishes or undoes
        // what a killed run left.
        let _lock = match dry_run {
            Some(false) => Some(prepare(&bes)?),
            Some(true) => {
                announce_journal(&bes);
                None
            }
            None => None,
        };
        match &cli.command {
            Command::List(args) => list(&bes, args),
            Command::Current(args) => current(&bes, args),
            Command::Create(args) => {
                let name = BeName::new(&args.name)?;
                let source = match &args.from {
                    Some(from) => Source::parse(from)?,
                    None => Source::Running,
                };
                warn_running(&bes);
                execute(&bes.create(&name, &source)?, args.dry_run)
            }
            Command::Activate(args) => {
                warn_running(&bes);
                execute(&bes.activate(&BeName::new(&args.name)?)?, args.dry_run)
            }
            Command::Rollback(args) => execute(&bes.rollback()?, args.dry_run),
            Command::Rename(args) => execute(
                &bes.rename(&BeName::new(&args.old)?, &BeName::new(&args.new)?)?,
                args.dry_run,
            ),
            Command::Destroy(args) => {
                execute(&bes.destroy(&BeName::new(&args.name)?)?, args.dry_run)
            }
            Command::Mount(args) => execute(
                &bes.mount(&BeName::new(&args.name)?, &args.path)?,
                args.dry_run,
            ),
            Command::Unmount(args) => {
                execute(&bes.unmount(&BeName::new(&args.name)?)?, args.dry_run)
            }
            Command::Prune(args) => prune(&bes, args),
        }
    })
}

/// Takes the pool's lock, then finishes or undoes an operation a killed
/// kbe run left (saying which).
fn prepare(bes: &BootEnvironments) -> Result<kld_be::Lock, Failure> {
    let lock = bes.lock(&purpose()).map_err(|e| {
        let busy = matches!(e, kld_be::Error::Busy { .. });
        let f = Failure::from(e);
        if busy {
            f.hint("wait for it to finish, then run this again")
        } else {
            f
        }
    })?;
    let recovery = bes.recovery()?;
    recovery.run().map_err(|e| {
        Failure::from(e).context("cannot finish or undo what an interrupted kbe run left")
    })?;
    for note in recovery.notes() {
        eprintln!("kbe: {note}");
    }
    Ok(lock)
}

/// Says, on a dry run, that an interrupted operation is waiting.
fn announce_journal(bes: &BootEnvironments) {
    if let Ok(state) = bes.state() {
        if let Some(journal) = &state.journal {
            eprintln!(
                "kbe: an interrupted kbe operation is recorded ({journal}); the next kbe \
                 command that changes something finishes or undoes it first"
            );
        }
    }
}

/// What this run does, for the lock file: `kbe create b a`, printable
/// characters only.
fn purpose() -> String {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let text: String = format!("kbe {}", words.join(" "))
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect();
    text
}

fn locate(cli: &Cli) -> Result<BootEnvironments, Failure> {
    let how = match (&cli.pool, &cli.root) {
        (Some(pool), _) => Locate::Pool(PoolName::new(pool)?),
        (None, Some(root)) => Locate::Root(DatasetName::new(root)?),
        (None, None) => Locate::Running,
    };
    let bes = BootEnvironments::locate(Zfs::new(), how).map_err(|e| {
        let hint = matches!(e, kld_be::Error::NoRoot(_));
        let f = Failure::from(e);
        if hint {
            f.hint("name the boot environment root with --pool POOL or --root DATASET")
        } else {
            f
        }
    })?;
    Ok(bes.with_hooks(&cli.hooks_dir))
}

/// Prints the steps (`--dry-run`) or runs them, then the change's notes.
fn execute(change: &Change, dry_run: bool) -> Result<ExitCode, Failure> {
    if dry_run {
        print!("{change}");
    } else {
        change.run()?;
    }
    for note in change.notes() {
        eprintln!("kbe: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Warns when the running system keeps what should travel with a boot
/// environment (the package database) outside of it.
fn warn_running(bes: &BootEnvironments) {
    if let Ok(warnings) = bes.running_warnings() {
        for w in warnings {
            eprintln!("kbe: warning: {w}");
        }
    }
}

fn flags(be: &BootEnvironment) -> String {
    let mut f = String::new();
    for (on, c) in [
        (be.incomplete, 'I'),
        (be.active, 'N'),
        (be.next_boot, 'R'),
        (be.rollback_target, 'B'),
    ] {
        if on {
            f.push(c);
        }
    }
    if f.is_empty() {
        f.push('-');
    }
    f
}

fn list(bes: &BootEnvironments, args: &List) -> Result<ExitCode, Failure> {
    let state = bes.state()?;
    if let Some(journal) = &state.journal {
        eprintln!(
            "kbe: an interrupted kbe operation is recorded ({journal}); the next kbe command \
             that changes something finishes or undoes it"
        );
    }
    let shared = if args.verbose {
        Some(bes.shared()?)
    } else {
        None
    };
    if let Some((_, warnings)) = &shared {
        for w in warnings {
            eprintln!("kbe: warning: {w}");
        }
    }
    if args.output.json {
        let mut doc = serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": "BootEnvironmentList",
            "root": state.root,
            "pool": state.pool,
            "bootfs": state.bootfs,
            "items": state.environments.iter().map(be_json).collect::<Vec<_>>(),
        });
        if let Some((shared, warnings)) = &shared {
            doc["shared"] = serde_json::json!(shared
                .iter()
                .map(|s| serde_json::json!({"name": s.name, "mountpoint": s.mountpoint}))
                .collect::<Vec<_>>());
            doc["warnings"] = serde_json::json!(warnings);
        }
        print_json(&doc);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(
        "BootEnvironmentList",
        &[
            ("NAME", "name"),
            ("FLAGS", "flags"),
            ("MOUNTED", "mounted"),
            ("CREATED", "created"),
            ("USED", "used"),
            ("ORIGIN", "origin"),
        ],
    );
    for be in &state.environments {
        table.push(vec![
            Cell::text(be.name.as_str()),
            Cell::text(flags(be)),
            be.mounted_at
                .as_ref()
                .map(|p| Cell::text(p.display().to_string()))
                .unwrap_or_else(Cell::none),
            Cell::time(be.created),
            Cell::bytes(be.used),
            be.origin.clone().map(Cell::text).unwrap_or_else(Cell::none),
        ]);
    }
    table.print(&args.output);
    if let Some((shared, _)) = &shared {
        let human = !args.output.scripted;
        let mut datasets = Table::new(
            "BootEnvironmentDatasetList",
            &[
                ("DATASET", "name"),
                ("BOOT ENVIRONMENT", "environment"),
                ("MOUNTPOINT", "mountpoint"),
                ("CANMOUNT", "canmount"),
            ],
        );
        for be in &state.environments {
            for d in &be.datasets {
                datasets.push(vec![
                    Cell::text(d.name.as_str()),
                    Cell::text(be.name.as_str()),
                    Cell::text(&d.mountpoint),
                    Cell::text(&d.canmount),
                ]);
            }
        }
        for s in shared {
            datasets.push(vec![
                Cell::text(s.name.as_str()),
                Cell::text("(shared)"),
                Cell::text(&s.mountpoint),
                Cell::text("on"),
            ]);
        }
        if human {
            println!();
        }
        datasets.print(&args.output);
    }
    Ok(ExitCode::SUCCESS)
}

fn be_json(be: &BootEnvironment) -> serde_json::Value {
    serde_json::json!({
        "name": be.name,
        "dataset": be.dataset,
        "flags": flags(be),
        "active": be.active,
        "nextBoot": be.next_boot,
        "rollbackTarget": be.rollback_target,
        "incomplete": be.incomplete,
        "created": be.created,
        "used": be.used,
        "referenced": be.referenced,
        "origin": be.origin,
        "mounted": be.mounted_at,
        "datasets": be.datasets.iter().map(|d| serde_json::json!({
            "name": d.name,
            "mountpoint": d.mountpoint,
            "canmount": d.canmount,
            "mounted": d.mounted_at,
            "origin": d.origin,
        })).collect::<Vec<_>>(),
    })
}

fn current(bes: &BootEnvironments, args: &Current) -> Result<ExitCode, Failure> {
    let state = bes.state()?;
    let name = |b: Option<&BootEnvironment>| b.map(|b| b.name.to_string());
    if args.json {
        let doc = serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": "CurrentBootEnvironment",
            "active": name(state.active()),
            "nextBoot": name(state.next_boot()),
            "rollbackTarget": name(state.rollback_target()),
        });
        print_json(&doc);
        return Ok(ExitCode::SUCCESS);
    }
    match state.active() {
        Some(be) => {
            println!("{}", be.name);
            Ok(ExitCode::SUCCESS)
        }
        None => Err(Failure::new(format!(
            "the running system is not booted from a boot environment under {}",
            state.root
        ))),
    }
}

fn prune(bes: &BootEnvironments, args: &Prune) -> Result<ExitCode, Failure> {
    let policy = PrunePolicy {
        older_than: args.older_than,
        keep: args.keep,
        now: time::now(),
    };
    let selection = bes.prune_selection(&policy)?;
    for (name, why) in &selection.protected {
        eprintln!("kbe: keeping {name}: {why}");
    }
    for name in &selection.destroy {
        let change = bes
            .destroy(name)
            .map_err(|e| Failure::from(e).context(format!("cannot prune {name}")))?;
        if args.dry_run {
            print!("{change}");
        } else {
            change
                .run()
                .map_err(|e| Failure::from(e).context(format!("cannot prune {name}")))?;
            println!("{name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
