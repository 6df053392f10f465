//! `cargo xtask test`: the lints and every test tier, ending with one
//! summary line over all test binaries.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only this part: lint (fmt, clippy, doc), unit (unit, host and
    /// doc tests of every crate), integration (the `tests/` targets: network
    /// namespaces on the host, and the VM tier) or all.
    #[arg(long, value_enum, default_value_t = Part::All)]
    only: Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    All,
    Lint,
    Unit,
    Integration,
}

/// Counts from libtest's `test result:` lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let started = Instant::now();
    crate::vm::prepare()?;
    crate::vm::prepare_darksite_mirror(&[kld_tests::darksite::TEST_SET])?;
    let mut failures: Vec<String> = Vec::new();
    let mut counts = Counts::default();
    let part = args.only;
    if matches!(part, Part::All | Part::Lint) {
        for (name, cmd) in lint_commands() {
            if !step(name, cmd)? {
                failures.push(name.to_owned());
            }
        }
    }
    let mut suites: Vec<(&str, Vec<&str>)> = Vec::new();
    if matches!(part, Part::All | Part::Unit) {
        suites.push((
            "unit and host tests",
            vec!["test", "--workspace", "--lib", "--bins"],
        ));
        suites.push(("doc tests", vec!["test", "--workspace", "--doc"]));
    }
    if matches!(part, Part::All | Part::Integration) {
        suites.push((
            "integration tests (host namespaces and VM tier)",
            vec!["test", "--workspace", "--test", "*"],
        ));
    }
    for (name, args) in suites {
        say(&format!("running the {name}"));
        let (ok, c) = cargo_test(&args)?;
        counts.passed += c.passed;
        counts.failed += c.failed;
        counts.ignored += c.ignored;
        if !ok {
            failures.push(name.to_owned());
        }
    }
    say(&format!(
        "finished in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    if !failures.is_empty() {
        eprintln!("xtask: error: failed: {}", failures.join(", "));
    }
    println!(
        "summary: {} passed, {} failed, {} skipped",
        counts.passed, counts.failed, counts.ignored
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn lint_commands() -> Vec<(&'static str, Command)> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    let mut man = cargo();
    man.args(["run", "--quiet", "-p", "kld-cli", "--example", "man", "--"])
        .arg(kld_tests::vm::target_dir().join("man"));
    vec![
        ("cargo fmt --check", fmt),
        ("cargo clippy", clippy),
        ("cargo doc", doc),
        ("man pages and completions", man),
    ]
}

fn step(name: &str, mut cmd: Command) -> Result<bool> {
    say(&format!("running {name}"));
    let status = cmd.status().with_context(|| format!("cannot run {name}"))?;
    Ok(status.success())
}

/// Runs `cargo <args>`, passing its output through while counting results.
fn cargo_test(args: &[&str]) -> Result<(bool, Counts)> {
    let mut child = cargo()
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let mut counts = Counts::default();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test's output")?;
        println!("{line}");
        if let Some(c) = parse_result_line(&line) {
            counts.passed += c.passed;
            counts.failed += c.failed;
            counts.ignored += c.ignored;
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    Ok((status.success(), counts))
}

/// Reads libtest's `test result: ok. 3 passed; 0 failed; 1 ignored; ...`.
fn parse_result_line(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, fields) = rest.split_once(". ")?;
    let mut counts = None;
    for field in fields.split(';') {
        let mut words = field.split_whitespace();
        let Some(Ok(n)) = words.next().map(str::parse::<u64>) else {
            continue; // "finished in 0.52s"
        };
        match words.next()? {
            "passed" => counts.get_or_insert_with(Counts::default).passed = n,
            "failed" => counts.get_or_insert_with(Counts::default).failed = n,
            "ignored" => counts.get_or_insert_with(Counts::default).ignored = n,
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_summaries() {
        let line = "test result: FAILED. 12 passed; 2 failed; 1 ignored; 0 measured; 3 filtered out; finished in 0.52s";
        assert_eq!(
            parse_result_line(line),
            Some(Counts {
                passed: 12,
                failed: 2,
                ignored: 1
            })
        );
        assert_eq!(parse_result_line("test foo ... ok"), None);
        assert_eq!(parse_result_line("test result: garbage"), None);
    }
}
