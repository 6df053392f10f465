//! The export rows, run on the host, all on one 4 GiB sparse raw image
//! (256 MiB of data), every side once per repetition, interleaved:
//! `kexport --no-seal` to qcow2 (scan, write, SHA-256, `qemu-img check`,
//! `qemu-img compare`, fsync, rename) against a bare `qemu-img convert`
//! (which does not sync its output: qemu-img's default cache mode for the
//! target is `unsafe`), against `qemu-img convert -t writeback` (which
//! does), and against the usual script for what kexport gives (convert,
//! check, compare, `sha256sum`); and the floor of any exporter that
//! checksums its output: the SHA-256 alone of the qcow2 the bare convert
//! wrote. Then kld's SHA-256 of a 1 GiB file against `sha256sum`.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use kld_exec::Cmd;

use super::Row;

/// The names of the export rows, for `--only`.
pub const ROWS: [&str; 5] = [
    "export-4g-sparse-raw-to-qcow2",
    "export-4g-sparse-raw-to-qcow2-durable",
    "export-4g-sparse-raw-to-qcow2-verified",
    "export-4g-floor-sha256-of-qcow2",
    "sha256-1g-file",
];

/// A 4 GiB sparse raw image with 256 MiB of data in 64 extents.
fn sparse_image(path: &Path) -> Result<()> {
    let f = std::fs::File::create(path)?;
    f.set_len(4 << 30)?;
    let chunk: Vec<u8> = (0..(4u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for i in 0..64u64 {
        f.write_all_at(&chunk, i * (64 << 20))?;
    }
    f.sync_all()?;
    Ok(())
}

fn random_file(path: &Path, bytes: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..(bytes >> 20) {
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.flush()?;
    Ok(())
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64())
}

/// Runs the rows `wanted` keeps, `reps` times each side, alternating.
pub fn rows(reps: u32, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Row>> {
    let kexport = kld_tests::vm::build_binaries()?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "kexport"))
        .context("kld-cli builds no kexport")?;
    let dir = tempfile::tempdir_in(kld_tests::vm::target_dir())?;
    let mut out = Vec::new();
    if ROWS[..4].iter().any(|r| wanted(r)) {
        out.extend(export_rows(&kexport, dir.path(), reps, wanted)?);
    }
    if wanted(ROWS[4]) {
        let file = dir.path().join("one-gib");
        random_file(&file, 1 << 30)?;
        // Both sides read from the page cache: one warming pass first.
        kld_seal::hash::sha256_file(&file)?;
        let (mut b, mut o) = (Vec::new(), Vec::new());
        let mut digests = Vec::new();
        for _ in 0..reps {
            b.push(timed(|| {
                let out = Cmd::new("sha256sum").arg(&file).run()?.stdout_str();
                digests.push(out.split(' ').next().unwrap_or("").to_owned());
                Ok(())
            })?);
            o.push(timed(|| {
                digests.push(kld_seal::hash::sha256_file(&file)?);
                Ok(())
            })?);
        }
        digests.dedup();
        anyhow::ensure!(
            digests.len() == 1,
            "sha256sum and kld disagree: {digests:?}"
        );
        out.push(Row::new(
            ROWS[4],
            "SHA-256 of a 1 GiB file (in the page cache)",
            "`sha256sum`",
            "kld_seal::hash::sha256_file (4 MiB reads, hashing on a second thread)",
            b,
            o,
        ));
    }
    Ok(out)
}

fn qemu_img(args: &[&str], paths: &[&Path]) -> Result<()> {
    Cmd::new("qemu-img").args(args).args(paths).run()?;
    Ok(())
}

/// The four export rows: every side of the wanted rows once per
/// repetition, in turn.
fn export_rows(
    kexport: &Path,
    dir: &Path,
    reps: u32,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<Row>> {
    let src = dir.join("source.raw");
    sparse_image(&src)?;
    let (bare, durable, usual, floor) = (
        wanted(ROWS[0]) || wanted(ROWS[3]),
        wanted(ROWS[1]),
        wanted(ROWS[2]),
        wanted(ROWS[3]),
    );
    let ours = wanted(ROWS[0]) || durable || usual;
    let mut t: [Vec<f64>; 5] = Default::default();
    let mut digests = Vec::new();
    for r in 0..reps {
        let out = dir.join(format!("out{r}"));
        std::fs::create_dir(&out)?;
        let file = |name: &str| out.join(name);
        if bare {
            t[0].push(timed(|| {
                qemu_img(
                    &["convert", "-f", "raw", "-O", "qcow2"],
                    &[&src, &file("bare.qcow2")],
                )
            })?);
        }
        if floor {
            t[3].push(timed(|| {
                kld_seal::hash::sha256_file(&file("bare.qcow2"))?;
                Ok(())
            })?);
        }
        if durable {
            t[1].push(timed(|| {
                qemu_img(
                    &["convert", "-t", "writeback", "-f", "raw", "-O", "qcow2"],
                    &[&src, &file("durable.qcow2")],
                )
            })?);
        }
        if usual {
            let img = file("usual.qcow2");
            t[2].push(timed(|| {
                qemu_img(
                    &["convert", "-t", "writeback", "-f", "raw", "-O", "qcow2"],
                    &[&src, &img],
                )?;
                qemu_img(&["check", "-q", "-f", "qcow2"], &[&img])?;
                qemu_img(
                    &["compare", "-q", "-f", "raw", "-F", "qcow2"],
                    &[&src, &img],
                )?;
                let sum = Cmd::new("sha256sum").arg(&img).run()?.stdout;
                std::fs::write(file("usual.qcow2.sha256"), sum)?;
                Ok(())
            })?);
        }
        if ours {
            let kld = out.join("kld");
            t[4].push(timed(|| {
                Cmd::new(kexport)
                    .args(["--no-seal", "--name", "bench"])
                    .arg(&src)
                    .arg("qcow2")
                    .arg(&kld)
                    .run()?;
                Ok(())
            })?);
            let line = std::fs::read_to_string(kld.join("bench.qcow2.sha256"))?;
            digests.push(line.split(' ').next().unwrap_or("").to_owned());
        }
        std::fs::remove_dir_all(&out)?;
    }
    digests.dedup();
    anyhow::ensure!(
        digests.len() <= 1,
        "kexport wrote different images: {digests:?}"
    );
    std::fs::remove_file(&src)?;
    let what = "export a 4 GiB sparse raw image (256 MiB of data) to qcow2";
    let kexport_is =
        "`kexport --no-seal` (scan, write, SHA-256 as written; check, compare, fsync; rename)";
    let [bare_t, durable_t, usual_t, floor_t, ours_t] = t;
    let mut rows = Vec::new();
    if wanted(ROWS[0]) {
        rows.push(Row::new(
            ROWS[0],
            what,
            "bare `qemu-img convert -O qcow2` (output not synced: qemu-img's default target cache is unsafe; no check, no checksum)",
            kexport_is,
            bare_t.clone(),
            ours_t.clone(),
        ));
    }
    if durable {
        rows.push(Row::new(
            ROWS[1],
            what,
            "`qemu-img convert -t writeback -O qcow2` (output synced, as kexport's; no check, no checksum)",
            kexport_is,
            durable_t,
            ours_t.clone(),
        ));
    }
    if usual {
        rows.push(Row::new(
            ROWS[2],
            what,
            "the usual script for the same result: `qemu-img convert -t writeback`, `qemu-img check`, `qemu-img compare`, `sha256sum`",
            kexport_is,
            usual_t,
            ours_t,
        ));
    }
    if floor {
        rows.push(Row::new(
            ROWS[3],
            "the floor for any exporter that checksums its output: hashing the qcow2 alone",
            "bare `qemu-img convert -O qcow2` (as in the first row)",
            "kld_seal::hash::sha256_file of that convert's output, nothing else",
            bare_t,
            floor_t,
        ));
    }
    Ok(rows)
}
