//! kst: the host's health in one command, in the formats monitoring reads.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kld_cli::args::kst::Cli;
use kld_cli::health::{self, render, CheckName, Config, Status};
use kld_cli::output::{json_bytes, JsonStyle};

/// Exit status for a bad command line or configuration: UNKNOWN, as a
/// monitoring plugin reports it (2 would read as CRITICAL).
const BAD_USAGE: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(BAD_USAGE);
        }
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            return fail(
                &e.to_string(),
                "see the CONFIGURATION section of kld-cli's README",
            )
        }
    };
    let checks: Vec<CheckName> = cli
        .checks
        .iter()
        .filter_map(|name| CheckName::parse(name))
        .collect();
    let report = health::run(&config, &checks);
    if !cli.quiet {
        let text = if cli.json {
            // A report written to a file is read by programs: compact.
            let style = match cli.output {
                Some(_) => JsonStyle::Compact,
                None => JsonStyle::for_stdout(),
            };
            String::from_utf8(json_bytes(&render::json(&report), style))
                .expect("serde_json writes UTF-8")
        } else if cli.prometheus {
            render::prometheus(&report)
        } else {
            render::human(&report)
        };
        let written = match &cli.output {
            // 0644: node_exporter reads it as another user.
            Some(path) => kld_fs::replace(path, text.as_bytes(), 0o644)
                .map_err(|e| format!("cannot write {}: {e}", path.display())),
            None => std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| format!("cannot write the report: {e}")),
        };
        if let Err(e) = written {
            return fail(&e, "check that the directory exists and is writable");
        }
    }
    ExitCode::from(report.status.code())
}

fn fail(message: &str, hint: &str) -> ExitCode {
    eprintln!("kst: error: {message}");
    eprintln!("kst: hint: {hint}");
    ExitCode::from(Status::Unknown.code())
}
