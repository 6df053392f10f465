//! `cargo xtask dist`: kld as a Debian package. Builds the release binaries,
//! generates the man pages and shell completions from their command-line
//! definitions, and lays out and builds `kld_<version>_amd64.deb` with
//! `dpkg-deb`, all under `target/dist/`.
//!
//! What goes in is found, not listed: every binary of kld-cli, every
//! systemd unit in `crates/*/systemd/`, every file in `crates/*/etc/`
//! (installed under `/etc/kld/` as a conffile). What the binaries need is
//! computed: shared libraries by `dpkg-shlibdeps`, the programs they run
//! from [`deps::TOOLS`].

mod debian;
mod deps;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kld_exec::Cmd;
use kld_tests::vm;

use crate::say;

/// The Debian revision of the package built from a workspace version.
const REVISION: &str = "1";
/// Unit file kinds the package installs from `crates/*/systemd/`.
const UNIT_KINDS: &[&str] = &["service", "timer", "socket", "path", "target"];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the package, man1/ and completions/ (default:
    /// target/dist).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| vm::target_dir().join("dist"));
    let deb = build(&out)?;
    let size = std::fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
    say(&format!(
        "built {} ({} KiB)",
        deb.display(),
        size.div_ceil(1024)
    ));
    println!("{}", deb.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds the package into `out` and returns its path.
fn build(out: &Path) -> Result<PathBuf> {
    // dpkg-deb, dpkg-shlibdeps, strip and the libzfs headers.
    vm::host::ensure_packages(&[], &mut |m| say(m)).context("installing build dependencies")?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    say("building the release binaries");
    let binaries = vm::build_binaries().context("building the release binaries")?;
    say("generating man pages and completions");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for dir in ["man1", "completions"] {
        let _ = std::fs::remove_dir_all(out.join(dir));
    }
    Cmd::new(cargo)
        .args(["run", "--quiet", "-p", "kld-cli", "--example", "man", "--"])
        .arg(out)
        .current_dir(vm::workspace_root())
        .run()
        .context("generating man pages and completions")?;

    let version = format!("{}-{REVISION}", env!("CARGO_PKG_VERSION"));
    let work = tempfile::Builder::new()
        .prefix("package-")
        .tempdir_in(out)
        .context("cannot create a staging directory")?;
    // dpkg-shlibdeps wants the tree where debhelper would put it.
    let root = work.path().join("debian/kld");
    let mut names = Vec::new();
    for bin in &binaries {
        let name = file_name(bin)?;
        let dest = root.join("usr/bin").join(&name);
        copy(bin, &dest, 0o755)?;
        Cmd::new("strip")
            .args(["--strip-unneeded", "--remove-section=.comment"])
            .arg(&dest)
            .run()?;
        names.push(name);
    }
    names.sort();
    install_docs(out, &root, &names)?;
    let units = install_units(&root)?;
    let conffiles = install_etc(&root)?;
    let copyright = root.join("usr/share/doc/kld/copyright");
    write(&copyright, debian::copyright().as_bytes(), 0o644)?;
    let changelog = root.join("usr/share/doc/kld/changelog.Debian");
    write(&changelog, debian::changelog(&version)?.as_bytes(), 0o644)?;
    gzip(&changelog)?;

    let shlibs = deps::shlibs(work.path(), &names)?;
    let relations = deps::relations(&shlibs, &names);
    let control = debian::Control {
        version: &version,
        installed_size_kib: installed_size(&root)?,
        relations: &relations,
        binaries: &names,
    };
    let meta = root.join("DEBIAN");
    write(&meta.join("control"), control.render().as_bytes(), 0o644)?;
    write(
        &meta.join("md5sums"),
        debian::md5sums(&root)?.as_bytes(),
        0o644,
    )?;
    if !conffiles.is_empty() {
        let list: String = conffiles.iter().map(|c| format!("{c}\n")).collect();
        write(&meta.join("conffiles"), list.as_bytes(), 0o644)?;
    }
    for (script, text) in debian::maintainer_scripts(&root, &units)? {
        write(&meta.join(script), text.as_bytes(), 0o755)?;
    }

    let deb = out.join(format!("kld_{version}_amd64.deb"));
    Cmd::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb)
        .run()
        .context("building the package")?;
    Ok(deb)
}

/// Man pages (gzipped) and completions, where man and each shell look.
fn install_docs(out: &Path, root: &Path, names: &[String]) -> Result<()> {
    let man1 = root.join("usr/share/man/man1");
    for entry in read_dir(&out.join("man1"))? {
        let dest = man1.join(file_name(&entry)?);
        copy(&entry, &dest, 0o644)?;
        gzip(&dest)?;
    }
    let completions = out.join("completions");
    for name in names {
        if !man1.join(format!("{name}.1.gz")).exists() {
            bail!("binary {name} has no man page: add it to kld_cli::args::all()");
        }
        for (from, to) in [
            (
                format!("{name}.bash"),
                format!("bash-completion/completions/{name}"),
            ),
            (
                format!("_{name}"),
                format!("zsh/vendor-completions/_{name}"),
            ),
            (
                format!("{name}.fish"),
                format!("fish/vendor_completions.d/{name}.fish"),
            ),
        ] {
            copy(
                &completions.join(from),
                &root.join("usr/share").join(to),
                0o644,
            )?;
        }
    }
    Ok(())
}

/// Every systemd unit of every crate into /lib/systemd/system; returns
/// their names.
fn install_units(root: &Path) -> Result<Vec<String>> {
    let mut units = Vec::new();
    for crate_dir in read_dir(&vm::workspace_root().join("crates"))? {
        let dir = crate_dir.join("systemd");
        if !dir.is_dir() {
            continue;
        }
        for unit in read_dir(&dir)? {
            let kind = unit.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !UNIT_KINDS.contains(&kind) {
                continue;
            }
            let name = file_name(&unit)?;
            if units.contains(&name) {
                bail!("two crates ship systemd unit {name}");
            }
            copy(&unit, &root.join("lib/systemd/system").join(&name), 0o644)?;
            units.push(name);
        }
    }
    units.sort();
    Ok(units)
}

/// Every file in `crates/*/etc/` into /etc/kld/; returns the conffiles.
fn install_etc(root: &Path) -> Result<Vec<String>> {
    let mut conffiles = Vec::new();
    for crate_dir in read_dir(&vm::workspace_root().join("crates"))? {
        let etc = crate_dir.join("etc");
        if !etc.is_dir() {
            continue;
        }
        for file in walk(&etc)? {
            let rel = file.strip_prefix(&etc).expect("below etc");
            let target = Path::new("/etc/kld").join(rel).display().to_string();
            if conffiles.contains(&target) {
                bail!("two crates ship {target}");
            }
            copy(&file, &root.join(target.trim_start_matches('/')), 0o644)?;
            conffiles.push(target);
        }
    }
    conffiles.sort();
    Ok(conffiles)
}

/// Installed-Size: the KiB each file takes, rounded up per file, as
/// dpkg-gencontrol counts.
fn installed_size(root: &Path) -> Result<u64> {
    let mut kib = 0;
    for file in walk(root)? {
        let len = std::fs::metadata(&file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        kib += len.div_ceil(1024);
    }
    Ok(kib)
}

/// The files below `dir`, recursively, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in read_dir(dir)? {
        if entry.is_dir() {
            files.extend(walk(&entry)?);
        } else {
            files.push(entry);
        }
    }
    Ok(files)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no UTF-8 file name", path.display()))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write(to, &bytes, mode)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, bytes)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Compresses a file in place the way Debian wants (best, no name or time).
fn gzip(path: &Path) -> Result<()> {
    Cmd::new("gzip").args(["-9nf"]).arg(path).run()?;
    Ok(())
}
