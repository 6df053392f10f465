//! The package tier: `cargo xtask dist`'s Debian package checked by
//! Debian's own tools and installed for real, with `apt-get install
//! ./kld_*.deb`, into a fresh bookworm root whose dependencies come from
//! Debian's archive.

use std::sync::OnceLock;

use kld_exec::Cmd;
use kld_tests::dist::{package, Root};

/// One package build for every test of this binary.
fn deb() -> &'static std::path::Path {
    static DEB: OnceLock<std::path::PathBuf> = OnceLock::new();
    DEB.get_or_init(|| package().unwrap_or_else(|e| panic!("cargo xtask dist failed: {e}")))
}

/// lintian finds no error in the package (its warnings are listed and
/// justified in the README: any other warning fails too).
#[test]
fn lintian_finds_no_errors() {
    const JUSTIFIED: &[&str] = &[
        "initial-upload-closes-no-bugs",
        "uses-dpkg-database-directly",
    ];
    let out = Cmd::new("lintian")
        .args(["--fail-on", "error,warning", "--suppress-tags"])
        .arg(JUSTIFIED.join(","))
        .arg(deb())
        .run();
    match out {
        Ok(out) => eprintln!("lintian:\n{}", out.stdout_str()),
        Err(e) => panic!("lintian failed: {e}"),
    }
}

/// The package installs with apt into a fresh bookworm, pulling its
/// dependencies; every binary runs and names its commit; every man page
/// renders; bash completes subcommands and options; every unit passes
/// `systemd-analyze verify` and is enabled; the default configuration is
/// conffiles; removal takes the rest away and purge the configuration.
#[test]
fn installs_into_a_fresh_bookworm_root() {
    let root = Root::fresh(&mut |m| eprintln!("package tier: {m}")).expect("a bookworm root");
    let log = root.install(deb()).expect("apt-get install ./kld_*.deb");
    eprintln!("{log}");
    assert!(
        root.path().join("sbin/zfs").exists() || root.path().join("usr/sbin/zfs").exists(),
        "zfsutils-linux was not pulled in"
    );
    assert!(
        root.path().join("usr/sbin/nft").exists(),
        "nftables (Recommends) was not pulled in"
    );

    let files = root.run("dpkg-query -L kld").expect("dpkg-query -L kld");
    let listed = |dir: &str| -> Vec<String> {
        files
            .lines()
            .filter(|f| f.starts_with(dir) && f.len() > dir.len())
            .map(str::to_owned)
            .collect()
    };
    let binaries = listed("/usr/bin/");
    let pages = listed("/usr/share/man/man1/");
    let units = listed("/lib/systemd/system/");
    assert!(
        binaries.len() >= 6 && pages.len() > binaries.len(),
        "{files}"
    );
    assert!(
        units.iter().any(|u| u.ends_with("/kld-nft.service")),
        "{files}"
    );

    let commit = Cmd::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(kld_tests::vm::workspace_root())
        .run()
        .expect("git rev-parse")
        .stdout_str();
    for bin in &binaries {
        let name = bin.trim_start_matches("/usr/bin/");
        let version = root.run(&format!("{bin} --version")).expect("--version");
        assert_eq!(
            version.trim(),
            format!(
                "{name} {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                commit.trim()
            )
        );
        assert!(
            pages.iter().any(|p| p.ends_with(&format!("/{name}.1.gz"))),
            "{name} has no man page"
        );
        // What bash-completion's loader finds when the admin presses Tab.
        let options = complete(&root, &format!("{name} --hel"));
        assert!(
            options.lines().any(|l| l == "--help"),
            "{name} --hel<Tab>: {options:?}"
        );
    }
    for (line, word) in [
        ("ksnap cr", "create"),
        ("kbe roll", "rollback"),
        ("knft ap", "apply"),
    ] {
        let got = complete(&root, line);
        assert_eq!(got.trim(), word, "{line}<Tab>");
    }

    for page in &pages {
        let text = root
            .run(&format!(
                "out=$(MANWIDTH=80 man -l {page} 2>/tmp/man.err); cat /tmp/man.err >&2; \
                 [ ! -s /tmp/man.err ]; printf '%s' \"$out\""
            ))
            .unwrap_or_else(|e| panic!("man -l {page}: {e}"));
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page}:\n{text}"
        );
    }
    let ksnap = root
        .run("MANWIDTH=80 man -l /usr/share/man/man1/ksnap.1.gz")
        .expect("man");
    assert!(
        ksnap.contains("EXAMPLES") && ksnap.contains("pre-deploy"),
        "{ksnap}"
    );

    // A template (`kwg@.service`) is verified as an instance of itself,
    // the way systemd loads it.
    let mut verified = Vec::new();
    for unit in &units {
        match unit.split_once("@.") {
            Some((prefix, suffix)) => {
                let name = prefix.trim_start_matches("/lib/systemd/system/");
                let instance = format!("/tmp/verify/{name}@kld.{suffix}");
                root.run(&format!("mkdir -p /tmp/verify && cp {unit} {instance}"))
                    .expect("copying a template unit");
                verified.push(instance);
            }
            None => verified.push(unit.clone()),
        }
    }
    let verify = root
        .run(&format!(
            "systemd-analyze verify {} 2>&1",
            verified.join(" ")
        ))
        .unwrap_or_else(|e| panic!("systemd-analyze verify: {e}"));
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );
    for unit in &units {
        let text = std::fs::read_to_string(root.path().join(unit.trim_start_matches('/')))
            .expect("the unit file");
        // Templates are enabled per instance, by the admin.
        if !unit.contains("@.") && text.lines().any(|l| l.trim() == "[Install]") {
            let name = unit.trim_start_matches("/lib/systemd/system/");
            let state = root
                .run(&format!("systemctl is-enabled {name}"))
                .expect("is-enabled");
            assert_eq!(state.trim(), "enabled", "{name}");
        }
    }

    // Default configuration: conffiles under /etc/kld, every one of them
    // in the package's list, kept on removal and gone on purge.
    let conffiles = root
        .run("dpkg-query -W -f '${Conffiles}' kld")
        .expect("dpkg-query Conffiles");
    let etc = listed("/etc/kld/");
    let etc_files: Vec<&String> = etc
        .iter()
        .filter(|f| root.path().join(f.trim_start_matches('/')).is_file())
        .collect();
    assert!(!etc_files.is_empty(), "no /etc/kld files: {files}");
    for file in &etc_files {
        assert!(
            conffiles.contains(file.as_str()),
            "{file} is no conffile: {conffiles}"
        );
    }

    root.run("apt-get remove -y -q kld")
        .expect("apt-get remove kld");
    for bin in &binaries {
        assert!(
            !root.path().join(bin.trim_start_matches('/')).exists(),
            "{bin} is left"
        );
    }
    assert!(
        root.run("systemctl is-enabled kld-nft.service").is_err(),
        "kld-nft.service is still enabled after removal"
    );
    for file in &etc_files {
        assert!(
            root.path().join(file.trim_start_matches('/')).exists(),
            "{file} went on remove"
        );
    }
    root.run("apt-get purge -y -q kld")
        .expect("apt-get purge kld");
    for file in &etc_files {
        assert!(
            !root.path().join(file.trim_start_matches('/')).exists(),
            "{file} is left after purge"
        );
    }
}

/// The words bash completes `line` to, one a line, with the completion
/// loaded as an interactive shell loads it (bash-completion's loader).
fn complete(root: &Root, line: &str) -> String {
    let cmd = line.split_whitespace().next().expect("a command");
    let script = format!(
        "bash -c '. /usr/share/bash-completion/bash_completion\n\
         _completion_loader {cmd}\n\
         f=$(complete -p {cmd} | sed -n \"s/.*-F \\([^ ]*\\).*/\\1/p\")\n\
         COMP_LINE=\"{line}\"; COMP_POINT=${{#COMP_LINE}}\n\
         read -ra COMP_WORDS <<< \"$COMP_LINE\"; COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
         \"$f\" {cmd} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf \"%s\\n\" \"${{COMPREPLY[@]}}\"'"
    );
    root.run(&script)
        .unwrap_or_else(|e| panic!("completing {line:?}: {e}"))
}
