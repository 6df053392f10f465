//! Writes the man pages (section 1) and the bash, zsh and fish completions
//! of every kld binary into OUTDIR/man1 and OUTDIR/completions; run by
//! `cargo xtask man`.

use std::path::PathBuf;

use clap_complete::Shell;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: man OUTDIR")?);
    let man1 = out.join("man1");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man1)?;
    std::fs::create_dir_all(&completions)?;
    for (name, cmd) in kld_cli::args::all() {
        let cmd = cmd.name(name);
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        std::fs::write(man1.join(format!("{name}.1")), page)?;
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let full = format!("{name}-{}", sub.get_name());
            let mut page = Vec::new();
            clap_mangen::Man::new(sub.clone().name(full.clone())).render(&mut page)?;
            std::fs::write(man1.join(format!("{full}.1")), page)?;
        }
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd.clone(), name, &completions)?;
        }
    }
    println!("{}", out.display());
    Ok(())
}
