//! The command lines of kld's binaries, kept here (not in `src/bin/`) so
//! that `cargo xtask man` can render their man pages and shell completions
//! from the same definitions.

pub mod kbe;
pub mod kdarksite;
pub mod kdf;
pub mod kdir;
pub mod kexport;
pub mod knft;
pub mod kseal;
pub mod ksnap;
pub mod kst;
pub mod kwg;

/// What every binary's `--version` prints after its name: the package
/// version and the git commit it was built from (`KLD_GIT_COMMIT`, which
/// `build.rs` reads from git unless it is set).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KLD_GIT_COMMIT"),
    ")"
);

/// The first line of the examples that [`examples`] renders; the man page
/// generator turns the text below it into the page's EXAMPLES section.
pub const EXAMPLES_HEADING: &str = "Examples:";

/// Renders a binary's worked examples, each a sentence saying what it does
/// and the commands that do it, for the end of its `--help` (clap's
/// `after_long_help`) and so for its man page.
pub fn examples(list: &[(&str, &[&str])]) -> String {
    let mut text = String::from(EXAMPLES_HEADING);
    for (what, commands) in list {
        text.push_str("\n  ");
        text.push_str(what);
        for command in *commands {
            text.push_str("\n    ");
            text.push_str(command);
        }
    }
    text
}

/// Every binary's name and its command-line definition.
pub fn all() -> Vec<(&'static str, clap::Command)> {
    use clap::CommandFactory;
    vec![
        ("ksnap", ksnap::Cli::command()),
        ("kdir", kdir::Cli::command()),
        ("kdf", kdf::Cli::command()),
        ("kbe", kbe::Cli::command()),
        ("kdarksite", kdarksite::Cli::command()),
        ("knft", knft::Cli::command()),
        ("kseal", kseal::Cli::command()),
        ("kexport", kexport::Cli::command()),
        ("kst", kst::Cli::command()),
        ("kwg", kwg::Cli::command()),
    ]
}

#[cfg(test)]
mod tests {
    /// Every binary's --version names the binary, the version and the
    /// commit.
    #[test]
    fn version_names_the_commit() {
        let commit = env!("KLD_GIT_COMMIT");
        assert!(!commit.is_empty());
        for (name, cmd) in super::all() {
            let version = cmd.render_version();
            assert!(
                version.trim() == format!("{name} {} (commit {commit})", env!("CARGO_PKG_VERSION")),
                "{name}: {version}"
            );
        }
    }

    /// Every binary has examples, under the heading the man pages look for.
    #[test]
    fn every_binary_has_examples() {
        for (name, cmd) in super::all() {
            let text = cmd.get_after_long_help().map(ToString::to_string);
            let text = text.unwrap_or_default();
            assert!(
                text.starts_with(super::EXAMPLES_HEADING) && text.contains(&format!("    {name}")),
                "{name} has no examples: {text:?}"
            );
        }
    }

    /// Every help text, of every binary and subcommand, fits 80 columns.
    #[test]
    fn help_fits_80_columns() {
        fn check(name: &str, cmd: &mut clap::Command) {
            for line in cmd.render_long_help().to_string().lines() {
                assert!(line.chars().count() <= 80, "{name}: {line:?}");
            }
            let subs: Vec<String> = cmd
                .get_subcommands()
                .map(|s| s.get_name().to_owned())
                .collect();
            for sub in subs {
                let sub_cmd = cmd.find_subcommand_mut(&sub).expect("listed");
                check(&format!("{name} {sub}"), sub_cmd);
            }
        }
        for (name, mut cmd) in super::all() {
            cmd.build();
            check(name, &mut cmd);
        }
    }
}
