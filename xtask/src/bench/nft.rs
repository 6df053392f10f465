//! The nftables rows, run on the host inside a network namespace of their
//! own (nf_tables needs no VM): `knft apply` of a zone file rendering to
//! 1,000 rules against one `nft add rule` per rule, and `knft diff` of those
//! 1,000 rules against the bare `nft -j list table` it is built on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kld_exec::Cmd;
use kld_nft::{render, Ruleset, ZoneFile};
use kld_tests::netns::Netns;

use super::{median, Row};

/// The rules a zone file of `allow` single-port rules renders to, besides
/// those rules: 7 in input, 3 in forward, 2 at the end of the zone's chain.
const FIXED_RULES: usize = 12;

/// One public zone with enough allow rules to render to `rules` rules.
fn zone_file(rules: usize) -> String {
    let mut t = String::from("[zones.public]\ninterfaces = [\"eth0\"]\n");
    for i in 0..rules - FIXED_RULES {
        t.push_str(&format!("[[zones.public.allow]]\ntcp = {}\n", 10000 + i));
    }
    t
}

/// The names of the nft rows, for `--only`.
pub const ROWS: [&str; 2] = ["nft-apply-1000-rules", "nft-diff-1000-rules"];

/// Runs the rows `wanted` keeps, `reps` times each side.
pub fn rows(reps: u32, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Row>> {
    let knft = kld_tests::vm::build_binaries()?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "knft"))
        .context("kld-cli builds no knft")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("zones.toml");
    std::fs::write(&file, zone_file(1000))?;
    let ruleset = render(&ZoneFile::read(&file)?);
    if ruleset.rule_count() != 1000 {
        bail!(
            "the benchmark zone file renders to {} rules, not 1000",
            ruleset.rule_count()
        );
    }
    let ns = Netns::new("bench")?;
    let bench = Bench {
        ns: &ns,
        knft: &knft,
        file: &file,
        state: dir.path().join("state"),
        ruleset: &ruleset,
    };
    let mut out = Vec::new();
    if wanted(ROWS[0]) {
        let (b, o) =
            bench.side_by_side(reps, Bench::reset, Bench::add_rule_loop, Bench::knft_apply)?;
        out.push(row(
            ROWS[0],
            "apply a zone set rendering to 1,000 rules",
            "one `nft add rule` per rule (1,000 processes, 1,000 transactions)",
            "`knft apply` (render, `nft -c`, one `nft -f`, read back and verify)",
            b,
            o,
        ));
    }
    if wanted(ROWS[1]) {
        bench.reset()?;
        bench.knft_apply()?;
        let (b, o) =
            bench.side_by_side(reps, Bench::nothing, Bench::list_json, Bench::knft_diff)?;
        out.push(row(
            ROWS[1],
            "diff of 1,000 rules against the live table",
            "`nft -j list table inet kld` and nothing else",
            "`knft diff` (parse, render, list, compare)",
            b,
            o,
        ));
    }
    Ok(out)
}

fn row(name: &str, what: &str, baseline: &str, ours: &str, b: Vec<f64>, o: Vec<f64>) -> Row {
    let (bm, om) = (median(&b), median(&o));
    Row {
        name: name.into(),
        what: what.into(),
        baseline: baseline.into(),
        ours: ours.into(),
        baseline_median_s: bm,
        ours_median_s: om,
        ratio: if bm > 0.0 { om / bm } else { f64::NAN },
        baseline_runs_s: b,
        ours_runs_s: o,
    }
}

struct Bench<'a> {
    ns: &'a Netns,
    knft: &'a Path,
    file: &'a Path,
    state: PathBuf,
    ruleset: &'a Ruleset,
}

type Step<'a> = fn(&Bench<'a>) -> Result<()>;

impl<'a> Bench<'a> {
    /// Alternates baseline and ours, each after `prepare` (untimed).
    fn side_by_side(
        &self,
        reps: u32,
        prepare: Step<'a>,
        baseline: Step<'a>,
        ours: Step<'a>,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut b, mut o) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            prepare(self)?;
            b.push(self.time(baseline)?.as_secs_f64());
            prepare(self)?;
            o.push(self.time(ours)?.as_secs_f64());
        }
        Ok((b, o))
    }

    fn time(&self, step: Step<'a>) -> Result<Duration> {
        let started = Instant::now();
        step(self)?;
        Ok(started.elapsed())
    }

    /// Runs a program from a thread inside the namespace.
    fn run(&self, cmd: Cmd) -> Result<String> {
        Ok(self.ns.run(|| cmd.run())?.stdout_str())
    }

    fn nothing(&self) -> Result<()> {
        Ok(())
    }

    /// No kld table, no state: both sides start from nothing.
    fn reset(&self) -> Result<()> {
        self.run(
            Cmd::new("nft")
                .args(["-f", "-"])
                .stdin_bytes("table inet kld {}\ndelete table inet kld\n"),
        )?;
        if self.state.exists() {
            std::fs::remove_dir_all(&self.state)?;
        }
        Ok(())
    }

    /// The baseline: the table and its chains, then each of the 1,000 rules
    /// with its own `nft add rule`.
    fn add_rule_loop(&self) -> Result<()> {
        let expected = self.ruleset.expected();
        let mut skeleton = String::from("table inet kld {\n");
        for set in &expected.sets {
            skeleton.push_str(&format!(
                "\tset {} {{ type {}; flags interval; }}\n",
                set.name, set.kind
            ));
        }
        for chain in &expected.chains {
            skeleton.push_str(&format!("\tchain {} {{\n", chain.name));
            if let Some((kind, hook, policy)) = &chain.base {
                let prio = if kind == "nat" { "0" } else { "filter" };
                skeleton.push_str(&format!(
                    "\t\ttype {kind} hook {hook} priority {prio}; policy {policy};\n"
                ));
            }
            skeleton.push_str("\t}\n");
        }
        skeleton.push_str("}\n");
        self.run(Cmd::new("nft").args(["-f", "-"]).stdin_bytes(skeleton))?;
        for chain in &expected.chains {
            for rule in &chain.rules {
                let words: Vec<&str> = rule.text.split_whitespace().collect();
                self.run(
                    Cmd::new("nft")
                        .args(["add", "rule", "inet", "kld", &chain.name])
                        .args(words),
                )?;
            }
        }
        Ok(())
    }

    fn knft(&self) -> Cmd {
        Cmd::new(self.knft).arg("--state-dir").arg(&self.state)
    }

    fn knft_apply(&self) -> Result<()> {
        self.run(self.knft().arg("apply").arg("-f").arg(self.file))?;
        Ok(())
    }

    fn list_json(&self) -> Result<()> {
        self.run(Cmd::new("nft").args(["-j", "list", "table", "inet", "kld"]))?;
        Ok(())
    }

    fn knft_diff(&self) -> Result<()> {
        let out = self.run(self.knft().arg("diff").arg("-f").arg(self.file))?;
        if !out.starts_with("no changes") {
            bail!("knft diff found changes where there are none:\n{out}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_file_renders_to_1000_rules() {
        let file = ZoneFile::parse(&zone_file(1000), "bench.toml").unwrap();
        assert_eq!(render(&file).rule_count(), 1000);
    }
}
