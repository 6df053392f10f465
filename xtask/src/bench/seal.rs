//! The export rows, run on the host: `kexport --no-seal` of a 4 GiB sparse
//! raw image to qcow2 (conversion, `qemu-img check`, `qemu-img compare`, fsync,
//! SHA-256 and the rename included) against a bare `qemu-img convert`; and
//! kld's SHA-256 of a 1 GiB file against `sha256sum`.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use kld_exec::Cmd;

use super::Row;

/// The names of the export rows, for `--only`.
pub const ROWS: [&str; 2] = ["export-4g-sparse-raw-to-qcow2", "sha256-1g-file"];

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
    if wanted(ROWS[0]) {
        let src = dir.path().join("source.raw");
        sparse_image(&src)?;
        let (mut b, mut o) = (Vec::new(), Vec::new());
        for r in 0..reps {
            let bare = dir.path().join(format!("bare{r}.qcow2"));
            b.push(timed(|| {
                Cmd::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "qcow2"])
                    .arg(&src)
                    .arg(&bare)
                    .run()?;
                Ok(())
            })?);
            std::fs::remove_file(&bare)?;
            let outdir = dir.path().join(format!("out{r}"));
            o.push(timed(|| {
                Cmd::new(&kexport)
                    .args(["--no-seal", "--name", "bench"])
                    .arg(&src)
                    .arg("qcow2")
                    .arg(&outdir)
                    .run()?;
                Ok(())
            })?);
            std::fs::remove_dir_all(&outdir)?;
        }
        out.push(Row::new(
            ROWS[0],
            "export a 4 GiB sparse raw image (256 MiB of data) to qcow2",
            "bare `qemu-img convert -O qcow2` (which fdatasyncs; no check, no checksum)",
            "`kexport --no-seal` (convert; check, compare, SHA-256 and fsync at once; rename)",
            b,
            o,
        ));
        std::fs::remove_file(&src)?;
    }
    if wanted(ROWS[1]) {
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
            ROWS[1],
            "SHA-256 of a 1 GiB file (in the page cache)",
            "`sha256sum`",
            "kld_seal::hash::sha256_file (4 MiB reads, hashing on a second thread)",
            b,
            o,
        ));
    }
    Ok(out)
}
