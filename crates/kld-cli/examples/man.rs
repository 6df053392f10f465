//! Writes the man pages (section 1) and the bash, zsh and fish completions
//! of every kld binary into OUTDIR/man1 and OUTDIR/completions; run by
//! `cargo xtask man` and `cargo xtask dist`.
//!
//! A page is clap_mangen's sections, except that a binary's examples (its
//! `after_long_help`, see `kld_cli::args::examples`) become an EXAMPLES
//! section rather than clap_mangen's untitled EXTRA one.

use std::io::Write;
use std::path::PathBuf;

use clap_complete::Shell;
use kld_cli::args::EXAMPLES_HEADING;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: man OUTDIR")?);
    let man1 = out.join("man1");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man1)?;
    std::fs::create_dir_all(&completions)?;
    for (name, cmd) in kld_cli::args::all() {
        // Built, so that subcommands carry the global options and their
        // usage reads `kbe create`, not `kbe-create`.
        let mut cmd = cmd.name(name).disable_help_subcommand(true);
        cmd.build();
        std::fs::write(man1.join(format!("{name}.1")), page(&cmd)?)?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let full = format!("{name}-{}", sub.get_name());
            let sub = sub.clone().name(full.clone());
            std::fs::write(man1.join(format!("{full}.1")), page(&sub)?)?;
        }
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd.clone(), name, &completions)?;
        }
    }
    println!("{}", out.display());
    Ok(())
}

/// One man page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS,
/// EXAMPLES, VERSION.
fn page(cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut cmd = cmd.clone();
    cmd.build();
    let examples = cmd.get_after_long_help().map(ToString::to_string);
    let man = clap_mangen::Man::new(cmd.clone().after_long_help(None::<&str>))
        .source(format!("kld {}", env!("CARGO_PKG_VERSION")));
    let mut w = Vec::new();
    man.render_title(&mut w)?;
    man.render_name_section(&mut w)?;
    man.render_synopsis_section(&mut w)?;
    man.render_description_section(&mut w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut w)?;
    }
    if let Some(text) = examples {
        let body = text.strip_prefix(EXAMPLES_HEADING).unwrap_or(&text);
        writeln!(w, ".SH EXAMPLES")?;
        let mut in_text = false;
        for line in body.trim_start_matches('\n').lines() {
            match line.strip_prefix("    ") {
                // A command: literal, unfilled, indented.
                Some(command) => {
                    writeln!(w, ".nf\n.RS 4\n{}\n.RE\n.fi", roff(command))?;
                    in_text = false;
                }
                // What the commands below do (one paragraph, however many
                // lines it takes in --help).
                None => {
                    if !in_text {
                        writeln!(w, ".PP")?;
                    }
                    writeln!(w, "{}", roff(line.trim()))?;
                    in_text = true;
                }
            }
        }
    }
    if cmd.get_version().is_some() {
        man.render_version_section(&mut w)?;
    }
    Ok(w)
}

/// Escapes text for roff: backslashes and dashes, and a leading `.` or `'`
/// that would otherwise be read as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
