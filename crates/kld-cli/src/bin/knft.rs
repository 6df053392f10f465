//! knft: nftables zones from a TOML file, applied atomically to kld's own
//! table, with an exact rollback and a confirmation deadline.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kld_cli::args::knft::*;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{Cell, Table};
use kld_exec::Cmd;
use kld_nft::{Firewall, LiveTable, Recovered, Revert, SetOp, StateDir, ZoneFile};

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("knft", || {
        let fw = Firewall::new(StateDir::new(&cli.state_dir));
        match &cli.command {
            Command::Check(a) => check(&fw, a),
            Command::Diff(a) => diff(&fw, a),
            Command::Apply(a) => apply(&fw, &cli, a),
            Command::Confirm(a) => confirm(&fw, a),
            Command::Rollback(a) => rollback(&fw, a),
            Command::Show(a) => show(&fw, a),
            Command::Set(SetCommand::Add(a)) => set(&fw, SetOp::Add, a),
            Command::Set(SetCommand::Del(a)) => set(&fw, SetOp::Delete, a),
            Command::AwaitConfirm { token } => await_confirm(&fw, token),
        }
    })
}

/// A failure about a zone file, with a hint when the file is not TOML.
fn file_failure(file: &std::path::Path, e: kld_nft::Error) -> Failure {
    let about_file = matches!(e, kld_nft::Error::File(_));
    let f = Failure::from(e);
    if about_file && file.extension().is_none_or(|x| x != "toml") {
        f.hint("a zone file is TOML; see crates/kld-nft/examples/web-server.toml")
    } else {
        f
    }
}

fn read(file: &std::path::Path) -> Result<ZoneFile, Failure> {
    ZoneFile::read(file).map_err(|e| file_failure(file, e))
}

fn check(fw: &Firewall, a: &FileArg) -> Result<ExitCode, Failure> {
    let file = read(&a.file)?;
    let ruleset = fw.check(&file)?;
    println!(
        "{}: {} zones, {} rules in table inet kld; nft accepts it",
        a.file.display(),
        file.zones.len(),
        ruleset.rule_count()
    );
    Ok(ExitCode::SUCCESS)
}

fn diff(fw: &Firewall, a: &FileArg) -> Result<ExitCode, Failure> {
    let differences = fw
        .diff_file(&a.file)
        .map_err(|e| file_failure(&a.file, e))?;
    if differences.is_empty() {
        println!(
            "no changes: table inet kld is what {} describes",
            a.file.display()
        );
    }
    for d in differences {
        println!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Finishes or undoes an apply that was interrupted, and says so.
fn recover(fw: &Firewall) -> Result<(), Failure> {
    match fw.recover()? {
        Some(Recovered::Undone { token }) => eprintln!(
            "knft: an interrupted apply ({token}) was undone: table inet kld is as it was before it"
        ),
        Some(Recovered::Finished { token }) => eprintln!(
            "knft: an interrupted apply ({token}) had taken effect: its state files are finished"
        ),
        None => {}
    }
    Ok(())
}

fn apply(fw: &Firewall, cli: &Cli, a: &Apply) -> Result<ExitCode, Failure> {
    let ruleset = kld_nft::render(&read(&a.file)?);
    if a.dry_run {
        print!("{}", ruleset.text());
        return Ok(ExitCode::SUCCESS);
    }
    recover(fw)?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(format!("cannot find knft's own program: {e}")))?;
    let mut watcher_pid = None;
    // The watcher starts before the new ruleset is loaded, so that a live
    // unconfirmed change always has one. The fault-injection variables are
    // not passed on: the watcher's steps are its own (tests kill
    // `knft await-confirm` directly).
    let watch = |pending: &kld_nft::Pending| {
        let pid = Cmd::new(&exe)
            .arg("--state-dir")
            .arg(&cli.state_dir)
            .args(["await-confirm", &pending.token])
            .env(kld_fs::fault::KILL_AFTER, "")
            .env(kld_fs::fault::TRACE, "")
            .spawn_detached()
            .map_err(|e| e.to_string())?;
        watcher_pid = Some(pid);
        Ok(())
    };
    let applied = fw
        .apply_watched(&ruleset, a.confirm.map(Duration::from_secs), watch)
        .map_err(|e| Failure::from(e).context(format!("cannot apply {}", a.file.display())))?;
    println!("applied {} rules to table inet kld", applied.rules);
    if let (Some(_), Some(pid)) = (applied.pending, watcher_pid) {
        println!(
            "it reverts in {} s unless `knft confirm` runs (watcher pid {pid})",
            a.confirm.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn confirm(fw: &Firewall, a: &DryRun) -> Result<ExitCode, Failure> {
    if a.dry_run {
        // Read only, like show: nothing is recovered or reverted.
        let status = fw.status()?;
        if let Some(j) = &status.interrupted {
            println!(
                "would first {} the interrupted apply {}",
                if j.committed { "finish" } else { "undo" },
                j.token
            );
            if !j.committed || j.deadline.is_none() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        let pending = status
            .pending
            .as_ref()
            .filter(|_| !status.overdue())
            .ok_or(kld_nft::Error::NothingPending)?;
        println!(
            "would keep the pending change (token {}) and load it at boot",
            pending.token
        );
        return Ok(ExitCode::SUCCESS);
    }
    recover(fw)?;
    fw.confirm()?;
    println!("confirmed: the change stays and loads at boot");
    Ok(ExitCode::SUCCESS)
}

fn rollback(fw: &Firewall, a: &DryRun) -> Result<ExitCode, Failure> {
    if a.dry_run {
        let previous = fw.previous()?.ok_or(kld_nft::Error::NoPrevious)?;
        print!("{previous}");
        return Ok(ExitCode::SUCCESS);
    }
    recover(fw)?;
    fw.rollback()?;
    println!("rolled back: table inet kld is as it was before the last apply");
    Ok(ExitCode::SUCCESS)
}

fn show(fw: &Firewall, a: &Show) -> Result<ExitCode, Failure> {
    let live = fw.live()?.ok_or(kld_nft::Error::NoTable)?;
    let table = if a.sets {
        sets_table(&live)
    } else {
        zones_table(&live)
    };
    table.print(&a.output);
    let human = !(a.output.scripted || a.output.parsable || a.output.json);
    if human {
        // Read only: show never reverts or recovers anything.
        let status = fw.status()?;
        if let Some(j) = &status.interrupted {
            println!(
                "\nan apply ({}) was interrupted: the next `knft apply`, `confirm` or `rollback` {}",
                j.token,
                if j.committed {
                    "finishes it"
                } else {
                    "undoes it"
                }
            );
        } else if let Some(p) = &status.pending {
            if status.overdue() {
                println!(
                    "\nthe last change was not confirmed in time and its watcher is gone: `knft rollback` reverts it (so does the next apply)"
                );
            } else {
                let left = p.deadline.saturating_sub(now());
                println!("\nthe last change awaits `knft confirm`: it reverts in {left} s");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One row per zone: how packets get into it (from the input chain's
/// dispatch rules), its allow rules and the packets it dropped.
fn zones_table(live: &LiveTable) -> Table {
    let mut table = Table::new(
        "NftZoneList",
        &[
            ("ZONE", "name"),
            ("MATCH", "match"),
            ("RULES", "rules"),
            ("DROPPED", "droppedPackets"),
        ],
    );
    let Some(input) = live.chain("input") else {
        return table;
    };
    let mut zones: Vec<(String, Vec<String>)> = Vec::new();
    for rule in &input.rules {
        let Some(chain) = rule.verdict.strip_prefix("jump in_") else {
            continue;
        };
        let matched = rule
            .comment
            .as_deref()
            .and_then(|c| c.split_once(": ").map(|(_, m)| m))
            .map(|m| m.rsplit_once(" [").map_or(m, |(m, _)| m).to_owned())
            .unwrap_or_default();
        match zones.iter_mut().find(|(z, _)| z == chain) {
            Some((_, m)) => m.push(matched),
            None => zones.push((chain.to_owned(), vec![matched])),
        }
    }
    for (zone, matched) in zones {
        let chain = live.chain(&format!("in_{zone}"));
        let rules = chain.map_or(0, |c| {
            c.rules
                .iter()
                .filter(|r| r.verdict == "accept" || r.verdict.starts_with("jump "))
                .count()
        });
        let dropped = chain.and_then(|c| c.rules.iter().rev().find_map(|r| r.packets));
        table.push(vec![
            Cell::text(zone),
            Cell::list(matched),
            Cell::number(rules as u64),
            dropped.map_or_else(Cell::none, Cell::number),
        ]);
    }
    table
}

fn sets_table(live: &LiveTable) -> Table {
    let mut table = Table::new(
        "NftSetList",
        &[("SET", "name"), ("TYPE", "type"), ("ELEMENTS", "elements")],
    );
    for set in live.sets.iter().filter(|s| !s.name.starts_with("kld_")) {
        table.push(vec![
            Cell::text(&set.name),
            Cell::text(&set.kind),
            Cell::list(set.elements.as_slice()),
        ]);
    }
    table
}

fn set(fw: &Firewall, op: SetOp, a: &SetArgs) -> Result<ExitCode, Failure> {
    if a.dry_run {
        println!("{}", Firewall::set_command(op, &a.set, &a.elements));
        return Ok(ExitCode::SUCCESS);
    }
    fw.set_elements(op, &a.set, &a.elements)?;
    let verb = match op {
        SetOp::Add => "added to",
        SetOp::Delete => "deleted from",
    };
    println!("{} element(s) {verb} set {}", a.elements.len(), a.set);
    Ok(ExitCode::SUCCESS)
}

fn await_confirm(fw: &Firewall, token: &str) -> Result<ExitCode, Failure> {
    match fw.watch(token)? {
        Revert::Reverted => eprintln!("knft: the change was not confirmed in time: reverted"),
        Revert::NotNeeded => {}
    }
    Ok(ExitCode::SUCCESS)
}
