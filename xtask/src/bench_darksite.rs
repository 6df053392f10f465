//! The darksite rows of `cargo xtask bench`, run on the host: `kdarksite
//! resolve` against `apt-get install -s`, and `kdarksite build` against
//! `apt-get download`, over the local mirror of real Debian packages (the
//! same indices, the same files, served on 127.0.0.1).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use kld_exec::Cmd;
use kld_tests::darksite::{self, ScratchApt, FETCH_SET, RESOLVE_SET};

use crate::bench::Row;
use crate::say;

/// The names of the rows, for `--only`.
pub const ROWS: &[&str] = &["darksite-resolve", "darksite-fetch"];

fn time(cmd: &Cmd) -> Result<f64> {
    let t = Instant::now();
    cmd.run()
        .with_context(|| format!("running {}", cmd.display()))?;
    Ok(t.elapsed().as_secs_f64())
}

/// The roots apt is asked for: the set's base packages and its packages,
/// as `kdarksite resolve -H` lists them with the reason `base: ...` or
/// `requested`.
fn roots_and_closure(
    kdarksite: &Path,
    set: &Path,
    mirror: &str,
    cache: &Path,
) -> Result<(Vec<String>, Vec<String>)> {
    let out = Cmd::new(kdarksite)
        .arg("resolve")
        .arg(set)
        .args(["--mirror", mirror, "--cache"])
        .arg(cache)
        .arg("-H")
        .run()?;
    let mut roots = Vec::new();
    let mut closure = Vec::new();
    for line in out.stdout_str().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 6 {
            continue;
        }
        closure.push(format!("{}={}", f[0], f[1]));
        if f[5] == "requested" || f[5].starts_with("base:") {
            roots.push(f[0].to_owned());
        }
    }
    Ok((roots, closure))
}

pub fn rows(reps: u32, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Row>> {
    let mirror = crate::vm::prepare_darksite_mirror(&[FETCH_SET])?;
    let kdarksite = kld_tests::vm::build_binaries()?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "kdarksite"))
        .context("kld-cli did not build kdarksite")?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let file_url = format!("file://{}", mirror.display());
    let cache = tmp.path().join("cache");
    let mut rows = Vec::new();

    if wanted("darksite-resolve") {
        let set = darksite::write_set(tmp.path(), "resolve", RESOLVE_SET);
        let apt = ScratchApt::new(&file_url);
        let (roots, closure) = roots_and_closure(&kdarksite, &set, &file_url, &cache)?;
        say(&format!(
            "darksite-resolve: {} packages from {} roots over bookworm main",
            closure.len(),
            roots.len()
        ));
        let ours = Cmd::new(&kdarksite)
            .arg("resolve")
            .arg(&set)
            .args(["--mirror", &file_url, "--cache"])
            .arg(&cache)
            .arg("-H");
        let baseline = apt
            .cmd("apt-get")
            .args(["install", "-s", "-q", "--no-install-recommends"])
            .args(&roots);
        // Warm both (apt builds its binary cache on first use).
        time(&baseline)?;
        time(&ours)?;
        let (mut b, mut o) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            b.push(time(&baseline)?);
            o.push(time(&ours)?);
        }
        rows.push(Row::new(
            "darksite-resolve",
            &format!("resolve openssh-server, nginx, postgresql + minbase over bookworm main ({} packages)", closure.len()),
            "`apt-get install -s` on the same indices (its cache built)",
            "`kdarksite resolve` (Release checked with gpgv, index read and parsed)",
            b,
            o,
        ));
    }

    if wanted("darksite-fetch") {
        let url = darksite::serve(&mirror)?;
        let set = darksite::write_set(tmp.path(), "fetch", FETCH_SET);
        let (_, closure) = roots_and_closure(&kdarksite, &set, &file_url, &cache)?;
        let apt = ScratchApt::new(&url);
        // A key made once, so that no repetition pays for key generation.
        let warm = tmp.path().join("warm");
        Cmd::new(&kdarksite)
            .arg("build")
            .arg(&set)
            .args(["--mirror", &url, "-q", "--out"])
            .arg(&warm)
            .run()?;
        let key = warm.join(".kdarksite/signing-key.asc");
        let (mut b, mut o) = (Vec::new(), Vec::new());
        for r in 0..reps {
            let dl = tmp.path().join(format!("apt-{r}"));
            std::fs::create_dir_all(&dl)?;
            b.push(time(
                &apt.cmd("apt-get")
                    .args(["download", "-q"])
                    .args(&closure)
                    .current_dir(&dl),
            )?);
            std::fs::remove_dir_all(&dl)?;
            let out = tmp.path().join(format!("ds-{r}"));
            o.push(time(
                &Cmd::new(&kdarksite)
                    .arg("build")
                    .arg(&set)
                    .args(["--mirror", &url, "-q", "-j", "4", "--key"])
                    .arg(&key)
                    .arg("--out")
                    .arg(&out),
            )?);
            std::fs::remove_dir_all(&out)?;
        }
        rows.push(Row::new(
            "darksite-fetch",
            &format!("fetch {} packages from the local mirror (127.0.0.1)", closure.len()),
            "`apt-get download` of the same list (hashes checked)",
            "`kdarksite build -j 4`: fetch + verify, then publish signed and verify the publication",
            b,
            o,
        ));
    }
    Ok(rows)
}
