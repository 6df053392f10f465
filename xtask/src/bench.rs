//! `cargo xtask bench`: kld against the usual way of doing the same job,
//! side by side in one run, repeated, reported as medians and the ratio
//! ours / baseline in `target/bench/report.md` and `report.json`.
//!
//! nftables and WireGuard rows run on the host, in network namespaces of
//! their own ([`nft`], [`wg`]). ZFS rows run inside the OpenZFS VM: one boot runs every row, alternating
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

mod nft;
mod seal;
mod wg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repetitions of each side of each row.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    reps: u32,
    /// Extra boots measured for the VM's boot-to-script time.
    #[arg(long, default_value_t = 2)]
    boots: u32,
    /// Run only the rows whose name contains this text (and their group's
    /// set-up).
    #[arg(long)]
    only: Option<String>,
}

/// Comparisons that share a pool and its set-up, run in the VM. `setup`
/// runs once, first.
struct VmGroup {
    disks: usize,
    setup: &'static str,
    rows: &'static [VmRow],
}

/// One comparison. Each repetition runs `prepare` (untimed), then times
/// `baseline`, then `prepare` again and times `ours`; `$r` is the
/// repetition number and `$side` is `baseline` or `ours` in every snippet.
/// Slow baselines cap the repetitions with `max_reps`.
struct VmRow {
    name: &'static str,
    what: &'static str,
    baseline_is: &'static str,
    ours_is: &'static str,
    prepare: &'static str,
    baseline: &'static str,
    ours: &'static str,
    max_reps: u32,
}

/// Creates the datasets `$pool/d0` ... `$pool/d<N-1>`, 25 at a time.
const MAKE_DATASETS: &str = "make_datasets() {
    i=0
    while [ $i -lt $2 ]; do
        j=0
        while [ $j -lt 25 ] && [ $((i + j)) -lt $2 ]; do zfs create $1/d$((i + j)) & j=$((j + 1)); done
        wait
        i=$((i + 25))
    done
    [ \"$(zfs list -H -o name -d 1 $1 | wc -l)\" -eq $(($2 + 1)) ]
}
# snapshot_all POOL PER LABEL: PER snapshots LABEL-20260101-0000NN on every
# child of POOL, by channel programs (one snapshot per dataset per program:
# a transaction group takes only one snapshot of a dataset).
snapshot_all() {
    cat > /tmp/snapall.lua <<'LUA'
local argv = (...)[\"argv\"]
local pool, name = argv[1], argv[2]
for child in zfs.list.children(pool) do
    local err = zfs.sync.snapshot(child .. \"@\" .. name)
    if err ~= 0 then error(\"snapshot of \" .. child .. \" failed: \" .. err) end
end
LUA
    k=1
    while [ $k -le $2 ]; do
        zfs program -t 100000000 -m 100000000 $1 /tmp/snapall.lua $1 $(printf '%s-20260101-%06d' $3 $k) >/dev/null
        k=$((k + 1))
    done
}
# snapshot_names LABEL PER: the short names snapshot_all made, comma-separated.
snapshot_names() {
    names=
    k=1
    while [ $k -le $2 ]; do names=\"$names,$(printf '%s-20260101-%06d' $1 $k)\"; k=$((k + 1)); done
    echo \"${names#,}\"
}";

const VM_GROUPS: &[VmGroup] = &[
    VmGroup {
        disks: 1,
        setup: "zpool create -O mountpoint=none b200 $DISK && make_datasets b200 200",
        rows: &[VmRow {
            name: "snapshot-200-datasets",
            what: "snapshot 200 datasets",
            baseline_is: "one `zfs snapshot` per dataset (kldload's ksnap, most cron scripts)",
            ours_is: "one `zfs snapshot` naming all 200 (one transaction group)",
            prepare: "",
            baseline: "for i in $(seq 0 199); do zfs snapshot b200/d$i@loop$r; done",
            ours: "zfs snapshot $(for i in $(seq 0 199); do printf 'b200/d%s@one%s ' $i $r; done)",
            max_reps: 100,
        }],
    },
    VmGroup {
        disks: 1,
        setup: "zpool create -O mountpoint=/b500 b500 $DISK && make_datasets b500 500 && snapshot_all b500 10 space",
        rows: &[
            VmRow {
                name: "space-500-datasets-5000-snapshots",
                what: "space report, 500 datasets + 5,000 snapshots",
                baseline_is: "bare `zfs list -Hp -t all` of the same fields",
                ours_is: "`kdf -H -p -r` (snapshot counts included)",
                prepare: "",
                baseline: "zfs list -H -p -t all -r -o name,type,used,avail,refer,usedbysnapshots,usedbychildren,\
                           usedbyrefreservation,compressratio,origin b500 >/dev/null",
                ours: "kdf -H -p -r b500 >/dev/null",
                max_reps: 100,
            },
            VmRow {
                name: "recursive-snapshot-500-vs-snapshot-r",
                what: "recursive snapshot of 500 datasets",
                baseline_is: "`zfs snapshot -r`",
                ours_is: "`ksnap create -r`",
                prepare: "",
                baseline: "zfs snapshot -r b500@zr$r",
                ours: "ksnap create -r -l k$r b500 >/dev/null",
                max_reps: 100,
            },
            VmRow {
                name: "recursive-snapshot-500-vs-loop",
                what: "recursive snapshot of 500 datasets",
                baseline_is: "one `zfs snapshot` per dataset",
                ours_is: "`ksnap create -r`",
                prepare: "",
                baseline: "for ds in $(zfs list -H -o name -r b500); do zfs snapshot $ds@loop$r; done",
                ours: "ksnap create -r -l kl$r b500 >/dev/null",
                max_reps: 2,
            },
        ],
    },
    VmGroup {
        disks: 1,
        setup: "zpool create -O mountpoint=/bp bp $DISK && make_datasets bp 50",
        rows: &[
            VmRow {
                name: "prune-2000-snapshots-vs-floor",
                what: "prune 2,000 snapshots over 50 datasets",
                baseline_is: "the floor: one `zfs destroy ds@a,b,...` per dataset, names known",
                ours_is: "`ksnap prune --keep 0` (its own listing included)",
                prepare: "snapshot_all bp 40 p$side$r",
                baseline: "names=$(snapshot_names pbaseline$r 40); for i in $(seq 0 49); do zfs destroy bp/d$i@$names; done",
                ours: "ksnap prune -r --label pours$r --keep 0 bp >/dev/null",
                max_reps: 100,
            },
            VmRow {
                name: "prune-2000-snapshots-vs-loop",
                what: "prune 2,000 snapshots over 50 datasets",
                baseline_is: "one `zfs destroy` per snapshot (as sanoid does)",
                ours_is: "`ksnap prune --keep 0` (its own listing included)",
                prepare: "snapshot_all bp 40 l$side$r",
                baseline: "for s in $(zfs list -H -o name -t snapshot -r bp | grep @lbaseline$r-); do zfs destroy $s; done",
                ours: "ksnap prune -r --label lours$r --keep 0 bp >/dev/null",
                max_reps: 1,
            },
        ],
    },
    VmGroup {
        disks: 1,
        setup: "zpool create -O mountpoint=/bc bc $DISK && zfs create bc/src && zfs snapshot bc/src@s",
        rows: &[VmRow {
            name: "clone-100",
            what: "100 clones of one snapshot",
            baseline_is: "a `zfs clone -o canmount=noauto` loop (unmounted, like ours)",
            ours_is: "kld-zfs library API (`lzc_clone`, no process per clone)",
            prepare: "",
            baseline: "for i in $(seq 0 99); do zfs clone -o canmount=noauto bc/src@s bc/z$r-$i; done",
            ours: "clone_many bc/src@s bc/k$r- 100",
            max_reps: 100,
        }],
    },
    VmGroup {
        disks: 1,
        setup: "zpool create -O mountpoint=none -O canmount=off kbb $DISK \
                && zfs create -o canmount=off -o mountpoint=none kbb/ROOT \
                && i=0 && while [ $i -lt 100 ]; do j=0; \
                   while [ $j -lt 25 ]; do zfs create -o canmount=noauto -o mountpoint=/ kbb/ROOT/be$((i + j)) & j=$((j + 1)); done; \
                   wait; i=$((i + 25)); done \
                && zpool set bootfs=kbb/ROOT/be0 kbb \
                && zfs create -o canmount=off -o mountpoint=none kbb/R2 \
                && zfs create -o canmount=noauto -o mountpoint=/ kbb/R2/src \
                && for i in $(seq 1 20); do zfs create -o canmount=noauto kbb/R2/src/c$i & done; wait \
                && [ \"$(zfs list -H -o name -r kbb/R2/src | wc -l)\" -eq 21 ]",
        rows: &[
            VmRow {
                name: "kbe-list-100",
                what: "list 100 boot environments",
                baseline_is: "bare `zfs list -Hp` of the same fields",
                ours_is: "`kbe list -p` (bootfs and the mount table included)",
                prepare: "",
                baseline: "zfs list -H -p -r -t filesystem -o name,mountpoint,canmount,creation,used,\
                           referenced,origin,kld:previous-be kbb/ROOT >/dev/null",
                ours: "kbe --root kbb/ROOT list -p >/dev/null",
                max_reps: 100,
            },
            VmRow {
                name: "kbe-create-activate-20-children",
                what: "create + activate a boot environment with 20 child datasets",
                baseline_is: "one process per step as beadm does: `zfs snapshot -r`, a `zfs clone` per dataset, `zpool set bootfs`",
                ours_is: "`kbe create` + `kbe activate` (checks, lock, journal, property copy, rollback record included)",
                prepare: "",
                baseline: "zfs snapshot -r kbb/R2/src@b$r \
                           && zfs clone -o canmount=noauto -o mountpoint=/ kbb/R2/src@b$r kbb/R2/b$r \
                           && for i in $(seq 1 20); do zfs clone -o canmount=noauto kbb/R2/src/c$i@b$r kbb/R2/b$r/c$i; done \
                           && zpool set bootfs=kbb/R2/b$r kbb",
                ours: "kbe --root kbb/R2 create o$r src 2>/dev/null && kbe --root kbb/R2 activate o$r 2>/dev/null",
                max_reps: 100,
            },
        ],
    },
    VmGroup {
        disks: 1,
        setup: "zpool create -O mountpoint=none kst $DISK && make_datasets kst 500 \
                && snapshot_all kst 10 s && zpool scrub -w kst \
                && [ \"$(zfs list -H -t snapshot -o name -r kst | wc -l)\" -eq 5000 ] \
                && printf '[[snapshots]]\\ndataset = \"kst\"\\nrecursive = true\\nwarning_age = \"1d\"\\n' \
                   > /tmp/kst-bench.toml",
        rows: &[
            VmRow {
                name: "kst-500-datasets-5000-snapshots",
                what: "health check of 500 datasets with 5,000 snapshots",
                baseline_is: "the queries kst needs, one after another (`zpool status`, `zpool list`, two `zfs list`s)",
                ours_is: "`kst --json` (pools, scrub and a snapshot policy over all 500 datasets)",
                prepare: "",
                baseline: "zpool status -p >/dev/null && zpool list -H -p -o name,size,alloc,cap >/dev/null \
                           && zfs list -H -p -t filesystem,volume -o name >/dev/null \
                           && zfs list -H -p -t snapshot -o name,creation,guid >/dev/null",
                ours: "kst --json --config /tmp/kst-bench.toml >/dev/null || [ $? -le 3 ]",
                max_reps: 100,
            },
            VmRow {
                name: "kst-vs-slowest-query",
                what: "the same health check against its slowest query alone",
                baseline_is: "`zfs list -Hp -t snapshot` of every snapshot (the slowest single query)",
                ours_is: "`kst --json` (all its queries, concurrently)",
                prepare: "",
                baseline: "zfs list -H -p -t snapshot -o name,creation,guid >/dev/null",
                ours: "kst --json --config /tmp/kst-bench.toml >/dev/null || [ $? -le 3 ]",
                max_reps: 100,
            },
        ],
    },
];

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
pub(crate) struct Row {
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

impl Row {
    /// A row from the timings of both sides.
    pub(crate) fn new(
        name: &str,
        what: &str,
        baseline_is: &str,
        ours_is: &str,
        baseline: Vec<f64>,
        ours: Vec<f64>,
    ) -> Row {
        let (b, o) = (median(&baseline), median(&ours));
        Row {
            name: name.into(),
            what: what.into(),
            baseline: baseline_is.into(),
            ours: ours_is.into(),
            baseline_median_s: b,
            ours_median_s: o,
            ratio: if b > 0.0 { o / b } else { f64::NAN },
            baseline_runs_s: baseline,
            ours_runs_s: ours,
        }
    }
}

#[derive(Debug, Serialize)]
struct Measurement {
    name: String,
    median_s: f64,
    runs_s: Vec<f64>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let wanted_name = |name: &str| args.only.as_deref().is_none_or(|only| name.contains(only));
    let wanted = |row: &VmRow| wanted_name(row.name);
    let vm_count = VM_GROUPS
        .iter()
        .flat_map(|g| g.rows)
        .filter(|r| wanted(r))
        .count();
    let nft_count = nft::ROWS.iter().filter(|r| wanted_name(r)).count();
    let seal_count = seal::ROWS.iter().filter(|r| wanted_name(r)).count();
    let wg_count = wg::ROWS.iter().filter(|r| wanted_name(r)).count();
    let darksite_count = crate::bench_darksite::ROWS
        .iter()
        .filter(|r| wanted_name(r))
        .count();
    if vm_count + nft_count + wg_count + darksite_count + seal_count == 0 {
        bail!(
            "no benchmark row matches {:?}",
            args.only.as_deref().unwrap_or_default()
        );
    }
    let mut rows = Vec::new();
    if nft_count + wg_count + darksite_count + seal_count > 0 {
        crate::vm::ensure_host_packages()?;
    }
    if seal_count > 0 {
        say(&format!(
            "running {seal_count} host rows (export, SHA-256), {} repetitions each",
            args.reps
        ));
        rows.extend(seal::rows(args.reps, &wanted_name)?);
    }
    if nft_count > 0 {
        say(&format!(
            "running {nft_count} host rows (nftables), {} repetitions each",
            args.reps
        ));
        rows.extend(nft::rows(args.reps, &wanted_name)?);
    }
    if wg_count > 0 {
        say(&format!(
            "running {wg_count} host rows (WireGuard), {} repetitions each",
            args.reps
        ));
        rows.extend(wg::rows(args.reps, &wanted_name)?);
    }
    if darksite_count > 0 {
        say(&format!(
            "running {darksite_count} host rows (darksite), {} repetitions each",
            args.reps
        ));
        rows.extend(crate::bench_darksite::rows(args.reps, &wanted_name)?);
    }
    let mut measurements = Vec::new();
    if vm_count > 0 {
        crate::vm::prepare()?;
        say(&format!(
            "running {vm_count} VM rows, up to {} repetitions each",
            args.reps
        ));
        let (vm_rows, boot) = vm_rows(args.reps, &wanted)?;
        rows.extend(vm_rows);
        let mut boots = vec![boot];
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
        measurements.push(Measurement {
            name: "vm-boot-to-script".into(),
            median_s: median(&boot_runs),
            runs_s: boot_runs,
        });
    }
    let report = Report {
        api_version: "kld/v1",
        kind: "BenchReport",
        repetitions: args.reps,
        rows,
        measurements,
    };
    write_report(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs every VM row in one boot and collects the timings.
fn vm_rows(reps: u32, wanted: &dyn Fn(&VmRow) -> bool) -> Result<(Vec<Row>, Duration)> {
    let mut script = format!(
        "set -e\nstamp() {{ read -r up _ < /proc/uptime; echo \"KLD-BENCH $1 $2 $up\"; }}\n{MAKE_DATASETS}\n"
    );
    let mut next_disk = 0;
    for group in VM_GROUPS.iter().filter(|g| g.rows.iter().any(wanted)) {
        let disks: Vec<String> = (next_disk..next_disk + group.disks)
            .map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char))
            .collect();
        next_disk += group.disks;
        script.push_str(&format!("DISK='{}'\n{}\n", disks.join(" "), group.setup));
        for row in group.rows.iter().filter(|r| wanted(r)) {
            let n = reps.min(row.max_reps);
            script.push_str(&format!(
                "r=0\nwhile [ $r -lt {n} ]; do\n r=$((r + 1))\n\
                 side=baseline\n{prepare}\nstamp {name} baseline-start\n{baseline}\nstamp {name} baseline-end\n\
                 side=ours\n{prepare}\nstamp {name} ours-start\n{ours}\nstamp {name} ours-end\ndone\n",
                name = row.name,
                prepare = if row.prepare.is_empty() { ":" } else { row.prepare },
                baseline = row.baseline,
                ours = row.ours,
            ));
        }
    }
    let clone_many = vm::build_example("kld-zfs", "clone_many")?;
    let run = Vm::new()
        .with_program(clone_many)
        .disks(next_disk)
        .disk_size(4 << 30)
        .timeout(Duration::from_secs(5400))
        .run(&script, &mut Progress::default())?;
    if run.exit_code != 0 {
        bail!(
            "the benchmark script failed (exit {}):\n{}",
            run.exit_code,
            run.output_str()
        );
    }
    let times = parse_stamps(&run.output_str())?;
    let mut rows = Vec::new();
    for row in VM_GROUPS.iter().flat_map(|g| g.rows).filter(|r| wanted(r)) {
        let n = reps.min(row.max_reps) as usize;
        let side = |s: &str| {
            times
                .get(&(row.name.to_owned(), s.to_owned()))
                .cloned()
                .unwrap_or_default()
        };
        let (baseline, ours) = (side("baseline"), side("ours"));
        if baseline.len() != n || ours.len() != n {
            bail!(
                "row {}: expected {n} timings per side, got {} and {}",
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
/// Says on standard error when each timed run in the VM ends, so that a
/// long benchmark shows where it is.
#[derive(Default)]
struct Progress {
    line: Vec<u8>,
}

impl std::io::Write for Progress {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8_lossy(&self.line);
            if let Some(rest) = line.strip_prefix("KLD-BENCH ") {
                if let [row, mark, _] = rest.split_whitespace().collect::<Vec<_>>()[..] {
                    if let Some(side) = mark.strip_suffix("-end") {
                        eprintln!("xtask: {row}: one {side} run done");
                    }
                }
            }
            self.line.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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

pub(crate) fn median(values: &[f64]) -> f64 {
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
