//! kseal: seal a system tree or a ZFS disk for cloning; audit a tree.

use std::process::ExitCode;

use clap::Parser;
use kld_cli::args::kseal::*;
use kld_cli::failure::{run, Failure};
use kld_cli::output::{Cell, Table};
use kld_seal::{DiskSeal, Op, Plan};

fn main() -> ExitCode {
    let cli = Cli::parse();
    run("kseal", || match &cli.command {
        Some(Command::Audit(a)) => audit(a),
        Some(Command::Ops(a)) => ops(a),
        None => seal(&cli.seal),
    })
}

fn parse_ops(names: &[String]) -> Result<Vec<Op>, Failure> {
    names
        .iter()
        .map(|n| {
            n.parse::<Op>()
                .map_err(|e| Failure::usage(e).hint("`kseal ops` lists them"))
        })
        .collect()
}

fn print_plan(plan: &Plan, dry_run: bool) {
    if dry_run {
        print!("{plan}");
        for op in &plan.ops {
            if plan.count(*op) == 0 {
                println!("{op}\tnothing to do");
            }
        }
    } else {
        let changed: Vec<String> = plan
            .ops
            .iter()
            .map(|op| format!("{op} {}", plan.count(*op)))
            .collect();
        println!(
            "sealed: {} changes ({})",
            plan.steps.len(),
            changed.join(", ")
        );
    }
}

fn seal(a: &Seal) -> Result<ExitCode, Failure> {
    let root = a
        .root
        .as_ref()
        .ok_or_else(|| Failure::usage("ROOT is required"))?;
    let ops = kld_seal::select(
        &parse_ops(&a.only)?,
        &parse_ops(&a.skip)?,
        &parse_ops(&a.with)?,
    );
    let meta =
        std::fs::metadata(root).map_err(|e| Failure::new(format!("{}: {e}", root.display())))?;
    if meta.is_dir() {
        let plan = kld_seal::plan(root, &ops)?;
        if !a.dry_run {
            plan.apply().map_err(|e| {
                Failure::from(e).context("sealing stopped part-way (run it again to finish)")
            })?;
        }
        print_plan(&plan, a.dry_run);
    } else {
        let report = kld_seal::seal_disk(
            root,
            &DiskSeal {
                ops,
                force_import: a.force_import,
                dry_run: a.dry_run,
            },
        )?;
        for r in &report.released {
            eprintln!("kseal: {r}");
        }
        println!("pool {} (boot environment {}):", report.pool, report.bootfs);
        for (ds, mp) in &report.datasets {
            println!("  {ds} at {mp}");
        }
        print_plan(&report.plan, a.dry_run);
    }
    Ok(ExitCode::SUCCESS)
}

fn audit(a: &Audit) -> Result<ExitCode, Failure> {
    let findings = kld_seal::audit(&a.root)?;
    let mut t = Table::new(
        "SealAuditFindingList",
        &[("KIND", "kind"), ("PATH", "path"), ("DETAIL", "detail")],
    );
    for f in &findings {
        t.push(vec![
            Cell::text(f.kind.name()),
            Cell::text(f.path.display().to_string()),
            if f.detail.is_empty() {
                Cell::none()
            } else {
                Cell::text(&f.detail)
            },
        ]);
    }
    if findings.is_empty() && !a.output.json {
        eprintln!("kseal: {}: clean", a.root.display());
    } else {
        t.print(&a.output);
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn ops(a: &OpsList) -> Result<ExitCode, Failure> {
    let mut t = Table::new(
        "SealOperationList",
        &[
            ("OPERATION", "name"),
            ("DEFAULT", "default"),
            ("WHAT", "description"),
        ],
    );
    for op in Op::ALL {
        t.push(vec![
            Cell::text(op.name()),
            Cell::text(if Op::DEFAULT.contains(op) {
                "yes"
            } else {
                "no"
            }),
            Cell::text(op.describe()),
        ]);
    }
    t.print(&a.output);
    Ok(ExitCode::SUCCESS)
}
