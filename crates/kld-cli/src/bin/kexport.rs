//! kexport: a disk exported as verified golden images (qcow2, vmdk, vhd,
//! ova, raw), sealed first on a copy, optionally uploaded over SSH.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kld_cli::args::kexport::Cli;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{Cell, Table};
use kld_cli::progress::ProgressLine;
use kld_seal::ovf::Machine;
use kld_seal::{DiskSeal, Export, Exported, Format, Op, Upload};

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kexport", || export(&cli))
}

/// The tag of kexport's private working directory in OUTDIR
/// (`.kld-kexport-PID`, 0700): the sealing copy and the partial outputs.
const WORK: &str = "kexport";

/// Releases what a sealing copy may hold (a temporary pool imported from
/// it, its loop device) so that the copy can go.
fn release_copies(dir: &Path) -> Vec<String> {
    let mut said = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match kld_seal::release_stale(&e.path()) {
            Ok(r) => said.extend(r),
            Err(err) => said.push(err.to_string()),
        }
    }
    said
}

/// Removes the working directory of this run on SIGINT and SIGTERM (the
/// unsealed copy must not outlive the run), then ends with the signal's
/// conventional status (130, 143). The programs kexport runs get Ctrl-C
/// too, or end when their files go.
fn on_signal_remove(work: PathBuf) -> Result<(), Failure> {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;
    let mut signals = Signals::new([Signal::Int, Signal::Term])
        .map_err(|e| Failure::new(format!("cannot handle signals: {e}")))?;
    std::thread::spawn(move || {
        let got = futures_lite::future::block_on(signals.next());
        // The temporary pool of a seal in progress goes first: it holds
        // the copy open through its loop device.
        for e in std::fs::read_dir(&work).into_iter().flatten().flatten() {
            match kld_seal::release_own(&e.path()) {
                Ok(said) => said.iter().for_each(|w| eprintln!("kexport: {w}")),
                Err(err) => eprintln!("kexport: {err}"),
            }
        }
        let _ = std::fs::remove_dir_all(&work);
        eprintln!("kexport: stopped; the sealing copy was removed");
        let code = match got {
            Some(Ok(Signal::Int)) => 130,
            _ => 143,
        };
        std::process::exit(code);
    });
    Ok(())
}

fn formats(s: &str) -> Result<Vec<Format>, Failure> {
    if s == "all" {
        return Ok(Format::ALL.to_vec());
    }
    Ok(vec![s.parse::<Format>().map_err(Failure::usage)?])
}

fn name(cli: &Cli) -> Result<String, Failure> {
    let name = match (&cli.name, std::env::var("KEXPORT_NAME")) {
        (Some(n), _) => n.clone(),
        (None, Ok(n)) if !n.is_empty() => n,
        _ => format!("kld-export-{}", kld_cli::time::stamp(kld_cli::time::now())),
    };
    kld_seal::check_name(&name).map_err(Failure::from)?;
    Ok(name)
}

fn say(what: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("kexport: {what}");
    }
}

fn export(cli: &Cli) -> Result<ExitCode, Failure> {
    let formats = formats(&cli.format)?;
    let name = name(cli)?;
    let upload = match &cli.upload {
        Some(d) => {
            let mut u = Upload::new(d.parse().map_err(Failure::from)?);
            if let Some(k) = &cli.known_hosts {
                u = u.known_hosts(k);
            }
            if let Some(i) = &cli.identity {
                u = u.identity(i);
            }
            if let Some(p) = cli.port {
                u = u.port(p);
            }
            Some(u)
        }
        None => None,
    };
    if !cli.no_seal {
        // Before the sealing copy; an export checks its own source too.
        kld_seal::ensure_unused(&cli.source)?;
    }
    let machine = Machine {
        name: name.clone(),
        cpus: cli.cpus,
        memory_mib: cli.memory,
    };
    // Before the copy and the seal, which take minutes on a real disk.
    Export::new(&cli.source, &cli.outdir, machine.clone())?.check_free(&formats)?;
    if cli.dry_run {
        return dry_run(cli, &name, &formats, machine);
    }
    std::fs::create_dir_all(&cli.outdir)
        .map_err(|e| Failure::new(format!("creating {}: {e}", cli.outdir.display())))?;
    // What killed runs left: their sealing copies (unsealed disks) and
    // partial outputs, with any pool still imported from a copy.
    for dir in kld_fs::secret::PrivateDir::sweep(&cli.outdir, WORK, |d| {
        for what in release_copies(d) {
            eprintln!("kexport: {what}");
        }
    }) {
        eprintln!(
            "kexport: removed {}, left by a run that was killed (its sealing copy and partial outputs)",
            dir.display()
        );
    }
    let work = kld_fs::secret::PrivateDir::create(&cli.outdir, WORK).map_err(|e| {
        Failure::new(format!(
            "creating a working directory in {}: {e}",
            cli.outdir.display()
        ))
    })?;
    on_signal_remove(work.path().to_owned())?;
    let line = Arc::new(ProgressLine::new(false));
    let source = if cli.no_seal {
        cli.source.clone()
    } else {
        let copy = sealing_copy(work.path(), &name);
        // 0600 from its first byte; qemu-img writes into it.
        kld_fs::secret::create(&copy)
            .map_err(|e| Failure::new(format!("creating {}: {e}", copy.display())))?;
        say(&format!(
            "copying {} to seal the copy",
            cli.source.display()
        ));
        let copied = kld_seal::copy_raw(&cli.source, &copy, |f| {
            line.draw(f, "copying the source");
        });
        line.finish();
        copied.map_err(|e| Failure::from(e).context("copying the source"))?;
        let report = kld_seal::seal_disk(
            &copy,
            &DiskSeal {
                ops: Op::DEFAULT.to_vec(),
                force_import: cli.force_import,
                dry_run: false,
            },
        )
        .map_err(|e| Failure::from(e).context("sealing the copy"))?;
        say(&format!(
            "sealed pool {} ({} datasets, {} changes)",
            report.pool,
            report.datasets.len(),
            report.plan.steps.len()
        ));
        copy
    };
    let mut job = Export::new(&source, &cli.outdir, machine)?.work_dir(work.path());
    if line.shown() {
        let line = Arc::clone(&line);
        job = job.progress(move |p| line.draw(p.fraction, &format!("writing {}", p.format)));
    }
    let mut done: Vec<(Exported, Option<String>)> = Vec::new();
    for f in &formats {
        say(&format!("exporting {f}"));
        let exported = job.export(*f);
        line.finish();
        let e = exported.map_err(|e| {
            Failure::from(e).context(format!("exporting {f} ({} finished before)", done.len()))
        })?;
        let remote = match &upload {
            Some(u) => {
                say(&format!("uploading {}", e.path.display()));
                let r = u.send(&e.path, &e.sha256)?;
                let sidecar_sha = kld_seal::hash::sha256_file(&e.checksum_path)?;
                u.send(&e.checksum_path, &sidecar_sha)?;
                Some(r)
            }
            None => None,
        };
        done.push((e, remote));
    }
    let mut t = Table::new(
        "ExportList",
        &[
            ("FORMAT", "format"),
            ("PATH", "path"),
            ("SIZE", "size"),
            ("SHA256", "sha256"),
            ("UPLOADED", "uploaded"),
        ],
    );
    for (e, remote) in &done {
        t.push(vec![
            Cell::text(e.format.name()),
            Cell::text(e.path.display().to_string()),
            Cell::bytes(e.size),
            Cell::text(&e.sha256),
            remote.as_ref().map(Cell::text).unwrap_or_else(Cell::none),
        ]);
    }
    t.print(&cli.output);
    Ok(ExitCode::SUCCESS)
}

/// The sealing copy, in the run's working directory.
fn sealing_copy(work: &Path, name: &str) -> PathBuf {
    work.join(format!("{name}.sealing.raw"))
}

/// Where [`sealing_copy`] will be, for `--dry-run`.
fn planned_work(outdir: &Path) -> PathBuf {
    outdir.join(format!(".kld-{WORK}-{}", std::process::id()))
}

fn dry_run(
    cli: &Cli,
    name: &str,
    formats: &[Format],
    machine: Machine,
) -> Result<ExitCode, Failure> {
    let job = Export::new(&cli.source, &cli.outdir, machine)?;
    if !cli.no_seal {
        let copy = sealing_copy(&planned_work(&cli.outdir), name);
        println!(
            "qemu-img convert -f raw -O raw {} {}",
            cli.source.display(),
            copy.display()
        );
        let ops: Vec<&str> = Op::DEFAULT.iter().map(|o| o.name()).collect();
        println!("kseal {} (operations: {})", copy.display(), ops.join(","));
        println!("(the exports below then read the sealed copy)");
    }
    for f in formats {
        for line in job.plan(*f)? {
            println!("{line}");
        }
        if let Some(d) = &cli.upload {
            println!(
                "upload {} and its .sha256 to {d}",
                job.output_path(*f).display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
