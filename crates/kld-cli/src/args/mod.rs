//! The command lines of kld's binaries, kept here (not in `src/bin/`) so
//! that `cargo xtask man` can render their man pages and shell completions
//! from the same definitions.

pub mod kbe;
pub mod kdarksite;
pub mod kdf;
pub mod kdir;
pub mod knft;
pub mod ksnap;
pub mod kst;
pub mod kwg;

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
        ("kst", kst::Cli::command()),
        ("kwg", kwg::Cli::command()),
    ]
}

#[cfg(test)]
mod tests {
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
