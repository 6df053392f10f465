//! `cargo xtask bench`: kld against the usual way of doing the same job,
//! side by side in one run, repeated, reported as medians and the ratio
//! ours / baseline in `target/bench/report.md` and `report.json`.
//!
//! ZFS rows run inside the OpenZFS VM: one boot runs every row, alternating
//! baseline and ours on each repetition so that drift hits both alike. Time
//! inside the VM is read from `/proc/uptime` (busybox `date` has no `%N`),
//! which is exact to 10 ms: rows are sized to take well over that.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kld_tests::vm::{self, Vm};
use serde::Serialize;

use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repetitions of each side of each row.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    reps: u32,
    /// Extra boots measured for the VM's boot-to-script time.
    #[arg(long, default_value_t = 2)]
    boots: u32,
}

/// One comparison run in the VM. `setup` runs once; `baseline` and `ours`
/// run once per repetition with `$r` set to the repetition number.
struct VmRow {
    name: &'static str,
    what: &'static str,
    baseline_is: &'static str,
    ours_is: &'static str,
    disks: usize,
    setup: &'static str,
    baseline: &'static str,
    ours: &'static str,
}

const VM_ROWS: &[VmRow] = &[VmRow {
    name: "snapshot-200-datasets",
    what: "snapshot 200 datasets",
    baseline_is: "one `zfs snapshot` per dataset (kldload's ksnap, most cron scripts)",
    ours_is: "one `zfs snapshot` naming all 200 (one transaction group)",
    disks: 1,
    setup: "zpool create -O mountpoint=none bench $KLD_VM_DISKS
            i=0
            while [ $i -lt 200 ]; do
                j=0
                while [ $j -lt 25 ]; do zfs create bench/d$((i + j)) & j=$((j + 1)); done
                wait
                i=$((i + 25))
            done
            [ \"$(zfs list -H -o name -r bench | wc -l)\" -eq 201 ]",
    baseline: "for i in $(seq 0 199); do zfs snapshot bench/d$i@loop$r; done",
    ours: "zfs snapshot $(for i in $(seq 0 199); do printf 'bench/d%s@one%s ' $i $r; done)",
}];

#[derive(Debug, Serialize)]
struct Report {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    repetitions: u32,
    rows: Vec<Row>,
    measurements: Vec<Measurement>,
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    what: String,
    baseline: String,
    ours: String,
    baseline_median_s: f64,
    ours_median_s: f64,
    /// ours / baseline: below 1 means kld is faster.
    ratio: f64,
    baseline_runs_s: Vec<f64>,
    ours_runs_s: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Measurement {
    name: String,
    median_s: f64,
    runs_s: Vec<f64>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    crate::vm::prepare()?;
    let mut boots = Vec::new();
    say(&format!(
        "running {} VM rows, {} repetitions each",
        VM_ROWS.len(),
        args.reps
    ));
    let (rows, boot) = vm_rows(args.reps)?;
    boots.push(boot);
    for i in 0..args.boots {
        say(&format!(
            "measuring boot to script, extra boot {} of {}",
            i + 1,
            args.boots
        ));
        let run = Vm::new()
            .without_binaries()
            .run("true", &mut std::io::sink())?;
        boots.push(run.boot_to_script);
    }
    let boot_runs: Vec<f64> = boots.iter().map(Duration::as_secs_f64).collect();
    let report = Report {
        api_version: "kld/v1",
        kind: "BenchReport",
        repetitions: args.reps,
        rows,
        measurements: vec![Measurement {
            name: "vm-boot-to-script".into(),
            median_s: median(&boot_runs),
            runs_s: boot_runs,
        }],
    };
    write_report(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs every VM row in one boot and collects the timings.
fn vm_rows(reps: u32) -> Result<(Vec<Row>, Duration)> {
    let mut script = String::from(
        "set -e\nstamp() { read -r up _ < /proc/uptime; echo \"KLD-BENCH $1 $2 $up\"; }\n",
    );
    let mut next_disk = 0;
    for row in VM_ROWS {
        let disks: Vec<String> = (next_disk..next_disk + row.disks)
            .map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char))
            .collect();
        next_disk += row.disks;
        script.push_str(&format!(
            "KLD_VM_DISKS='{}'\n{}\nr=0\nwhile [ $r -lt {reps} ]; do\n r=$((r + 1))\n\
             stamp {name} baseline-start\n{}\nstamp {name} baseline-end\n\
             stamp {name} ours-start\n{}\nstamp {name} ours-end\ndone\n",
            disks.join(" "),
            row.setup,
            row.baseline,
            row.ours,
            name = row.name,
        ));
    }
    let run = Vm::new()
        .without_binaries()
        .disks(next_disk)
        .timeout(Duration::from_secs(3600))
        .run(&script, &mut std::io::sink())?;
    if run.exit_code != 0 {
        bail!(
            "the benchmark script failed (exit {}):\n{}",
            run.exit_code,
            run.output_str()
        );
    }
    let times = parse_stamps(&run.output_str())?;
    let mut rows = Vec::new();
    for row in VM_ROWS {
        let side = |s: &str| {
            times
                .get(&(row.name.to_owned(), s.to_owned()))
                .cloned()
                .unwrap_or_default()
        };
        let (baseline, ours) = (side("baseline"), side("ours"));
        if baseline.len() != reps as usize || ours.len() != reps as usize {
            bail!(
                "row {}: expected {reps} timings per side, got {} and {}",
                row.name,
                baseline.len(),
                ours.len()
            );
        }
        let (b, o) = (median(&baseline), median(&ours));
        rows.push(Row {
            name: row.name.into(),
            what: row.what.into(),
            baseline: row.baseline_is.into(),
            ours: row.ours_is.into(),
            baseline_median_s: b,
            ours_median_s: o,
            ratio: if b > 0.0 { o / b } else { f64::NAN },
            baseline_runs_s: baseline,
            ours_runs_s: ours,
        });
    }
    Ok((rows, run.boot_to_script))
}

/// Reads `KLD-BENCH <row> <side>-start|end <uptime>` lines into durations
/// per (row, side).
fn parse_stamps(output: &str) -> Result<BTreeMap<(String, String), Vec<f64>>> {
    let mut open: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut done: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("KLD-BENCH ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let [row, mark, uptime] = fields[..] else {
            bail!("bad benchmark line {line:?}");
        };
        let t: f64 = uptime
            .parse()
            .with_context(|| format!("bad time in {line:?}"))?;
        let (side, edge) = mark
            .rsplit_once('-')
            .with_context(|| format!("bad mark in {line:?}"))?;
        let key = (row.to_owned(), side.to_owned());
        match edge {
            "start" => {
                open.insert(key, t);
            }
            "end" => {
                let start = open
                    .remove(&key)
                    .with_context(|| format!("end without start: {line:?}"))?;
                done.entry(key).or_default().push(t - start);
            }
            _ => bail!("bad mark in {line:?}"),
        }
    }
    Ok(done)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn write_report(report: &Report) -> Result<()> {
    let dir = vm::target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut md = String::from("# kld benchmarks\n\n");
    md.push_str(&format!(
        "Medians of {} repetitions, side by side in one run. Ratio = ours / baseline (below 1: kld is faster).\n\n",
        report.repetitions
    ));
    md.push_str("| job | baseline | ours | baseline median | ours median | ratio |\n|---|---|---|---|---|---|\n");
    for r in &report.rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.3} s | {:.3} s | {:.3} |\n",
            r.what, r.baseline, r.ours, r.baseline_median_s, r.ours_median_s, r.ratio
        ));
    }
    md.push_str("\n| measurement | median | runs |\n|---|---|---|\n");
    for m in &report.measurements {
        let runs: Vec<String> = m.runs_s.iter().map(|s| format!("{s:.2}")).collect();
        md.push_str(&format!(
            "| {} | {:.2} s | {} |\n",
            m.name,
            m.median_s,
            runs.join(", ")
        ));
    }
    std::fs::write(dir.join("report.md"), &md).context("writing report.md")?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )
    .context("writing report.json")?;
    print!("{md}");
    say(&format!(
        "wrote {}/report.md and report.json",
        dir.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_pair_up_per_row_and_side() {
        let out = "noise\nKLD-BENCH a baseline-start 10.00\nKLD-BENCH a baseline-end 12.50\n\
                   KLD-BENCH a ours-start 12.50\nKLD-BENCH a ours-end 12.75\n";
        let t = parse_stamps(out).unwrap();
        assert_eq!(t[&("a".into(), "baseline".into())], vec![2.5]);
        assert_eq!(t[&("a".into(), "ours".into())], vec![0.25]);
        assert!(parse_stamps("KLD-BENCH a ours-end 1.0\n").is_err());
        assert!(parse_stamps("KLD-BENCH a ours-start x\n").is_err());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
