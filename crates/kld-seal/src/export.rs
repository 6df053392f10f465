//! Exports: a source disk written to a temporary name (qcow2 by kld's own
//! writer, hashed as it is written; the other formats by `qemu-img
//! convert`), verified (`qemu-img check` where the format has one, `qemu-img
//! compare` against the source), checksummed (`NAME.FORMAT.sha256`), and
//! only then renamed to its final name, which is never overwritten.
//!
//! A source is always read as a raw disk, never probed: a guest can write
//! any header into its own disk, and a disk qemu took for a qcow2 image with
//! a backing file would have host files read into the export.

use std::fmt;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{mpsc, Arc};

use kld_exec::Cmd;

use crate::error::{Error, Result};
use crate::hash::{sha256_file, sha256_following, ChecksumLine};
use crate::inuse::ensure_unused;
use crate::ovf::{self, Machine, ManifestEntry};
use crate::progress::{Progress, QemuProgress};
use crate::qcow2::{self, Layout, WriteError};
use crate::scan;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// qcow2, for KVM/QEMU, Proxmox, OpenStack.
    Qcow2,
    /// Stream-optimized VMDK, as VMware imports it.
    Vmdk,
    /// Fixed VHD with a virtual size a whole number of MiB, as Hyper-V
    /// and Azure require.
    Vhd,
    /// An OVA: a tar of the `.ovf`, the `.vmdk` and the `.mf` manifest.
    Ova,
    /// A sparse raw image.
    Raw,
}

impl Format {
    /// Every format, in the order `all` exports them.
    pub const ALL: &'static [Format] = &[
        Format::Qcow2,
        Format::Vmdk,
        Format::Vhd,
        Format::Ova,
        Format::Raw,
    ];

    /// The name on the command line, which is also the file extension.
    pub fn name(self) -> &'static str {
        match self {
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Ova => "ova",
            Format::Raw => "raw",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Format> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::Parse {
                what: format!("format `{s}`"),
                why: "expected qcow2, vmdk, vhd, ova or raw".into(),
            })
    }
}

/// Checks an export name: letters, digits, `.`, `_`, `-`; not starting
/// with `.` or `-`; at most 200 bytes (it becomes file names and XML).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Name(name.to_owned()))
    }
}

/// What `qemu-img info` says about a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// qemu's format name (`raw`, `qcow2`, `vpc`, ...).
    pub format: String,
    /// The virtual size in bytes.
    pub virtual_size: u64,
}

/// Parses `qemu-img info --output=json`.
pub fn parse_info(json: &str) -> Result<DiskInfo> {
    let bad = |why: &str| Error::Parse {
        what: "qemu-img info output".into(),
        why: why.into(),
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    Ok(DiskInfo {
        format: v["format"]
            .as_str()
            .ok_or_else(|| bad("no format"))?
            .to_owned(),
        virtual_size: v["virtual-size"]
            .as_u64()
            .ok_or_else(|| bad("no virtual-size"))?,
    })
}

/// Runs `qemu-img info` on a source disk, read as raw (never probed). With
/// image locking, as always: a disk a running VM has open is refused.
pub fn info(path: &Path) -> Result<DiskInfo> {
    info_as(path, "raw")
}

/// `qemu-img info`, reading the file as `format` (never probing: a fixed
/// VHD, say, has no header to be recognised by, only a footer).
fn info_as(path: &Path, format: &str) -> Result<DiskInfo> {
    let out = Cmd::new("qemu-img")
        .args(["info", "--output=json", "-f", format])
        .arg(path)
        .run()?;
    parse_info(&out.stdout_str())
}

/// qemu's name for a format.
fn qemu_format(f: Format) -> &'static str {
    match f {
        Format::Qcow2 => "qcow2",
        Format::Vmdk | Format::Ova => "vmdk",
        Format::Vhd => "vpc",
        Format::Raw => "raw",
    }
}

/// The `-o` options of a format.
fn qemu_options(f: Format) -> Option<&'static str> {
    match f {
        Format::Vmdk | Format::Ova => Some("subformat=streamOptimized"),
        Format::Vhd => Some("subformat=fixed,force_size=on"),
        Format::Qcow2 | Format::Raw => None,
    }
}

/// Whether `qemu-img check` can check the format.
fn checkable(f: Format) -> bool {
    matches!(f, Format::Qcow2 | Format::Vmdk | Format::Ova)
}

const MIB: u64 = 1 << 20;

/// One finished output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exported {
    /// The format.
    #[serde(serialize_with = "as_name")]
    pub format: Format,
    /// The output file.
    pub path: PathBuf,
    /// Its checksum file.
    pub checksum_path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

fn as_name<S: serde::Serializer>(f: &Format, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(f.name())
}

/// A progress callback (see [`Export::progress`]).
type OnProgress = Arc<dyn Fn(Progress) + Send + Sync>;

/// An export of one source to an output directory.
#[derive(Clone)]
pub struct Export {
    source: PathBuf,
    outdir: PathBuf,
    machine: Machine,
    progress: Option<OnProgress>,
    work: Option<PathBuf>,
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("source", &self.source)
            .field("outdir", &self.outdir)
            .field("machine", &self.machine)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Removes a temporary path (file or directory) when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Export {
    /// Exports `source` (a raw disk: block device, zvol or raw image) into
    /// `outdir`; `machine.name` names the files.
    pub fn new(source: &Path, outdir: &Path, machine: Machine) -> Result<Export> {
        check_name(&machine.name)?;
        Ok(Export {
            source: source.to_path_buf(),
            outdir: outdir.to_path_buf(),
            machine,
            progress: None,
            work: None,
        })
    }

    /// Calls `report` often while each output is written (a display should
    /// redraw only when what it shows changes). The library never prints.
    pub fn progress(mut self, report: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// Writes the temporary outputs in `dir` (a private directory on the
    /// output's file system, which a later run sweeps if this one is
    /// killed) instead of beside the final names.
    pub fn work_dir(mut self, dir: &Path) -> Self {
        self.work = Some(dir.to_path_buf());
        self
    }

    /// The final path of a format's output.
    pub fn output_path(&self, f: Format) -> PathBuf {
        self.outdir
            .join(format!("{}.{}", self.machine.name, f.name()))
    }

    /// Fails with [`Error::Exists`] if an output or checksum file of any of
    /// `formats` exists already: a caller checks before work that comes
    /// first (kexport copies and seals the source before exporting).
    pub fn check_free(&self, formats: &[Format]) -> Result<()> {
        for &f in formats {
            for p in [self.output_path(f), self.checksum_path(f)] {
                if std::fs::symlink_metadata(&p).is_ok() {
                    return Err(Error::Exists(p));
                }
            }
        }
        Ok(())
    }

    fn checksum_path(&self, f: Format) -> PathBuf {
        self.outdir
            .join(format!("{}.{}.sha256", self.machine.name, f.name()))
    }

    fn temp_path(&self, f: Format, what: &str) -> PathBuf {
        self.work.as_ref().unwrap_or(&self.outdir).join(format!(
            ".{}.{}.{what}-{}",
            self.machine.name,
            f.name(),
            std::process::id()
        ))
    }

    /// `qemu-img convert` of the raw disk `src` to `dst` in format `f`.
    fn convert_cmd(&self, src: &Path, f: Format, dst: &Path) -> Cmd {
        let mut c = Cmd::new("qemu-img").arg("convert");
        if self.progress.is_some() {
            c = c.arg("-p");
        }
        c = c.args(["-f", "raw", "-O", qemu_format(f)]);
        if let Some(o) = qemu_options(f) {
            c = c.args(["-o", o]);
        }
        c.arg(src).arg(dst)
    }

    /// Fails unless the source is free: nothing on this machine holds it
    /// ([`ensure_unused`]) and qemu's image lock on it can be taken
    /// (`qemu-img info`, which also reads its size). The two run at once;
    /// nothing reads the source's data before both have said yes.
    fn free_source(&self) -> Result<DiskInfo> {
        std::thread::scope(|s| {
            let locked = s.spawn(|| info(&self.source));
            let unused = ensure_unused(&self.source);
            let locked = locked.join().expect("the qemu-img info thread panicked");
            unused.and(locked)
        })
    }

    /// The steps an export of `f` takes, for `--dry-run` (the source is
    /// checked as an export checks it, which changes nothing).
    pub fn plan(&self, f: Format) -> Result<Vec<String>> {
        self.free_source()?;
        let tmp = self.temp_path(f, "partial");
        let mut lines = if f == Format::Qcow2 {
            vec![
                format!(
                    "scan {} for the clusters that hold data",
                    self.source.display()
                ),
                format!(
                    "write {} (qcow2 v3, 64 KiB clusters, in file order, SHA-256 as written)",
                    tmp.display()
                ),
            ]
        } else {
            vec![self.convert_cmd(&self.source, f, &tmp).display()]
        };
        if checkable(f) {
            lines.push(format!(
                "qemu-img check -f {} {}",
                qemu_format(f),
                tmp.display()
            ));
        }
        lines.push(format!(
            "qemu-img compare -f raw -F {} {} {}",
            qemu_format(f),
            self.source.display(),
            tmp.display()
        ));
        lines.push(format!("write {}", self.checksum_path(f).display()));
        lines.push(format!(
            "rename {} -> {}",
            tmp.display(),
            self.output_path(f).display()
        ));
        Ok(lines)
    }

    fn report(&self, format: Format, fraction: f64) {
        if let Some(p) = &self.progress {
            p(Progress { format, fraction });
        }
    }

    /// Runs a `qemu-img convert`, its progress reported as that of `f`.
    fn run_convert(&self, f: Format, c: Cmd) -> Result<()> {
        convert_reporting(c, |fraction| self.report(f, fraction))
    }

    /// Converts the raw disk `src_path` to `dst` in format `f`.
    fn convert(&self, src: &DiskInfo, src_path: &Path, f: Format, dst: &Path) -> Result<()> {
        if f == Format::Vhd && !src.virtual_size.is_multiple_of(MIB) {
            // A fixed VHD's size must be a whole number of MiB: pad a raw
            // copy with zeros (which compare equal to "beyond the end").
            let padded = self.temp_path(f, "padded");
            let _scratch = Scratch(padded.clone());
            self.run_convert(f, self.convert_cmd(src_path, Format::Raw, &padded))?;
            let size = src.virtual_size.div_ceil(MIB) * MIB;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&padded)
                .and_then(|file| file.set_len(size))
                .map_err(Error::io("padding", &padded))?;
            self.run_convert(f, self.convert_cmd(&padded, f, dst))
        } else {
            self.run_convert(f, self.convert_cmd(src_path, f, dst))
        }
    }

    /// Checks `dst` (format `f`) with `qemu-img check`, where the format has
    /// one.
    fn check(f: Format, dst: &Path) -> Result<()> {
        if !checkable(f) {
            return Ok(());
        }
        Cmd::new("qemu-img")
            .args(["check", "-q", "-f", qemu_format(f)])
            .arg(dst)
            .run()
            .map_err(|e| Error::Verify {
                path: dst.to_path_buf(),
                why: e.to_string(),
            })?;
        Ok(())
    }

    /// Reads `dst` (format `f`) as that format and compares it with the raw
    /// disk `src_path`.
    fn compare(src_path: &Path, f: Format, dst: &Path) -> Result<()> {
        let verify = |why: String| Error::Verify {
            path: dst.to_path_buf(),
            why,
        };
        if f == Format::Vhd {
            let out = info_as(dst, qemu_format(f))?;
            if !out.virtual_size.is_multiple_of(MIB) {
                return Err(verify(format!(
                    "virtual size {} is not a whole number of MiB",
                    out.virtual_size
                )));
            }
        }
        Cmd::new("qemu-img")
            .args(["compare", "-q", "-f", "raw", "-F", qemu_format(f)])
            .arg(src_path)
            .arg(dst)
            .run()
            .map_err(|e| verify(format!("differs from the source: {e}")))?;
        Ok(())
    }

    /// Checks and compares `dst` at once, each on a thread of its own, and
    /// with `durable` also makes it durable (fsync) meanwhile. Every step
    /// must succeed.
    fn verify(src_path: &Path, f: Format, dst: &Path, durable: bool) -> Result<()> {
        std::thread::scope(|s| {
            let synced = s.spawn(|| if durable { sync_file(dst) } else { Ok(()) });
            let checked = s.spawn(|| Self::check(f, dst));
            let compared = Self::compare(src_path, f, dst);
            let checked = checked.join().expect("the checking thread panicked");
            let synced = synced.join().expect("the fsync thread panicked");
            checked.and(compared).and(synced)
        })
    }

    /// [`verify`](Self::verify) and hash `dst` at once (a pass of its own
    /// over the output, which the conversion left in the page cache).
    fn verify_and_hash(src_path: &Path, f: Format, dst: &Path, durable: bool) -> Result<String> {
        std::thread::scope(|s| {
            let hash = s.spawn(|| sha256_file(dst));
            let verified = Self::verify(src_path, f, dst, durable);
            let digest = hash.join().expect("the hashing thread panicked");
            verified.and(digest)
        })
    }

    /// Writes the qcow2 image of the source to `dst` with kld's writer and
    /// verifies it; returns its SHA-256. Steps that need not wait overlap:
    /// the hash with the writing, which it follows; the check, compare and
    /// fsync with the end of the hash.
    fn qcow2(&self, dst: &Path) -> Result<String> {
        let mut src = File::open(&self.source).map_err(Error::io("opening", &self.source))?;
        let size = src
            .seek(SeekFrom::End(0))
            .map_err(Error::io("reading", &self.source))?;
        self.free_source()?;
        let runs = scan::data_runs(&src, size, qcow2::CLUSTER);
        let layout = Layout::new(size, runs.map_err(Error::io("reading", &self.source))?);
        let out = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dst)
            .map_err(Error::io("creating", dst))?;
        let total = layout.file_size() as f64;
        let (complete, completed) = mpsc::channel();
        std::thread::scope(|s| {
            let hash = s.spawn(|| sha256_following(&out, completed));
            let written = qcow2::write(&layout, &src, &out, &mut |at| {
                self.report(Format::Qcow2, at as f64 / total);
                // The hash stops taking pieces only when it has failed.
                match complete.send(at) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            })
            .map_err(|e| match e {
                WriteError::Source(e) => Error::io("reading", &self.source)(e),
                WriteError::Image(e) => Error::io("writing", dst)(e),
                WriteError::Copy(e) => Error::io("copying from", &self.source)(e),
            });
            drop(complete);
            let stopped = matches!(written, Ok(ControlFlow::Break(())));
            let verified = match written {
                Ok(ControlFlow::Continue(())) => {
                    Self::verify(&self.source, Format::Qcow2, dst, true)
                }
                Ok(ControlFlow::Break(())) => Ok(()),
                Err(e) => Err(e),
            };
            let digest = hash
                .join()
                .expect("the hashing thread panicked")
                .map_err(Error::io("reading", dst));
            if stopped {
                // The hash's failure stopped the writing: it says why.
                return digest.and_then(|_| {
                    Err(Error::Verify {
                        path: dst.to_path_buf(),
                        why: "the hash stopped before the image was written".into(),
                    })
                });
            }
            verified.and(digest)
        })
    }

    /// Builds the OVA at `dst`: a stream-optimized VMDK, the OVF and the
    /// manifest, tarred in that order (.ovf, .vmdk, .mf) and checked.
    fn ova(&self, src: &DiskInfo, dst: &Path) -> Result<()> {
        let dir = self.temp_path(Format::Ova, "parts");
        let _scratch = Scratch(dir.clone());
        std::fs::create_dir(&dir).map_err(Error::io("creating", &dir))?;
        let name = &self.machine.name;
        let (ovf_name, vmdk_name, mf_name) = (
            format!("{name}.ovf"),
            format!("{name}.vmdk"),
            format!("{name}.mf"),
        );
        let vmdk = dir.join(&vmdk_name);
        self.convert(src, &self.source, Format::Ova, &vmdk)?;
        let vmdk_sha = Self::verify_and_hash(&self.source, Format::Ova, &vmdk, false)?;
        let vmdk_size = std::fs::metadata(&vmdk)
            .map_err(Error::io("reading", &vmdk))?
            .len();
        let ovf_text = ovf::render_ovf(&self.machine, &vmdk_name, vmdk_size, src.virtual_size);
        let ovf_path = dir.join(&ovf_name);
        std::fs::write(&ovf_path, &ovf_text).map_err(Error::io("writing", &ovf_path))?;
        let entries = vec![
            ManifestEntry {
                file: ovf_name.clone(),
                sha256: sha256_file(&ovf_path)?,
            },
            ManifestEntry {
                file: vmdk_name.clone(),
                sha256: vmdk_sha,
            },
        ];
        let mf_path = dir.join(&mf_name);
        std::fs::write(&mf_path, ovf::render_manifest(&entries))
            .map_err(Error::io("writing", &mf_path))?;
        Cmd::new("tar")
            .args([
                "--format=ustar",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-cf",
            ])
            .arg(dst)
            .arg("-C")
            .arg(&dir)
            .args([&ovf_name, &vmdk_name, &mf_name])
            .run()?;
        verify_ova(dst).map_err(|why| Error::Verify {
            path: dst.to_path_buf(),
            why,
        })
    }

    /// Exports one format: write, verify, checksum, rename. A source in use
    /// ([`ensure_unused`], qemu's lock) is refused before anything is
    /// written; nothing is left under a temporary name, whatever happens; an
    /// existing output is an error before anything runs.
    pub fn export(&self, f: Format) -> Result<Exported> {
        self.check_free(&[f])?;
        let (path, checksum_path) = (self.output_path(f), self.checksum_path(f));
        let tmp = self.temp_path(f, "partial");
        // A leftover under this run's temporary name is not this run's to
        // remove (the guard below removes whatever is there).
        if std::fs::symlink_metadata(&tmp).is_ok() {
            return Err(Error::Exists(tmp));
        }
        let scratch = Scratch(tmp.clone());
        // The output is durable (fsync) before it gets its final name, so
        // a crash never leaves a finished-looking file with lost blocks.
        let sha256 = match f {
            Format::Qcow2 => self.qcow2(&tmp)?,
            Format::Ova => {
                self.ova(&self.free_source()?, &tmp)?;
                std::thread::scope(|s| {
                    let synced = s.spawn(|| sync_file(&tmp));
                    let digest = sha256_file(&tmp);
                    let synced = synced.join().expect("the fsync thread panicked");
                    synced.and(digest)
                })?
            }
            Format::Vmdk | Format::Vhd | Format::Raw => {
                self.convert(&self.free_source()?, &self.source, f, &tmp)?;
                Self::verify_and_hash(&self.source, f, &tmp, true)?
            }
        };
        let size = std::fs::metadata(&tmp)
            .map_err(Error::io("reading", &tmp))?
            .len();
        let line = ChecksumLine {
            sha256: sha256.clone(),
            name: format!("{}.{}", self.machine.name, f.name()),
        };
        crate::plan::write_atomic(&checksum_path, line.render().as_bytes(), 0o644)?;
        if let Err(e) = rename_noreplace(&tmp, &path) {
            let _ = std::fs::remove_file(&checksum_path);
            return Err(e);
        }
        kld_fs::fault::step(|| format!("rename {} {}", tmp.display(), path.display()));
        std::mem::forget(scratch);
        if let Ok(d) = std::fs::File::open(&self.outdir) {
            let _ = d.sync_all();
        }
        Ok(Exported {
            format: f,
            path,
            checksum_path,
            sha256,
            size,
        })
    }
}

/// Copies the raw disk `source` to a new sparse raw image `dst` with
/// `qemu-img convert` (read as raw, never probed), calling `report` with
/// the fraction done; kexport seals such a copy, never the source.
pub fn copy_raw(source: &Path, dst: &Path, report: impl FnMut(f64)) -> Result<()> {
    let c = Cmd::new("qemu-img")
        .args(["convert", "-p", "-f", "raw", "-O", "raw"])
        .arg(source)
        .arg(dst);
    convert_reporting(c, report)
}

/// Runs a `qemu-img convert -p`, its progress records read from its
/// standard output (never the caller's) and handed to `report`.
fn convert_reporting(c: Cmd, mut report: impl FnMut(f64)) -> Result<()> {
    let mut qemu = QemuProgress::default();
    c.run_reading(|piece| {
        if let Some(fraction) = qemu.feed(piece) {
            report(fraction);
        }
    })?;
    Ok(())
}

/// Makes a written file durable (fsync).
fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("syncing", path))
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE)
        .map_err(|e| Error::io("renaming to", to)(e.into()))
}

/// Checks an OVA: the `.ovf` first, then the disks, the `.mf` manifest
/// listing the SHA-256 of every other member, and each member's contents
/// hashing to what the manifest says. Returns what is wrong.
pub fn verify_ova(ova: &Path) -> std::result::Result<(), String> {
    let list = Cmd::new("tar")
        .arg("-tf")
        .arg(ova)
        .run()
        .map_err(|e| e.to_string())?
        .stdout_str();
    let members: Vec<&str> = list.lines().collect();
    if !members.first().is_some_and(|m| m.ends_with(".ovf")) {
        return Err(format!("the first member is not the .ovf: {members:?}"));
    }
    let Some(mf) = members.iter().find(|m| m.ends_with(".mf")) else {
        return Err("no .mf manifest".into());
    };
    let member = |name: &str| -> std::result::Result<std::process::Child, String> {
        std::process::Command::new("tar")
            .arg("-xOf")
            .arg(ova)
            .arg(name)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("tar: {e}"))
    };
    let mut child = member(mf)?;
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("piped"), &mut text)
        .map_err(|e| e.to_string())?;
    child.wait().map_err(|e| e.to_string())?;
    let entries = ovf::parse_manifest(&text).map_err(|e| e.to_string())?;
    for m in members.iter().filter(|m| *m != mf) {
        let Some(entry) = entries.iter().find(|e| e.file == *m) else {
            return Err(format!("{m} is not in the manifest"));
        };
        let mut child = member(m)?;
        let digest = crate::hash::sha256_reader(child.stdout.take().expect("piped"))
            .map_err(|e| e.to_string())?;
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("tar could not read {m}"));
        }
        if digest != entry.sha256 {
            return Err(format!(
                "{m}: SHA-256 {digest}, the manifest says {}",
                entry.sha256
            ));
        }
    }
    if entries.len() + 1 != members.len() {
        return Err("the manifest lists files that are not in the OVA".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(check_name("golden-v43.1_x").is_ok());
        for bad in ["", "-x", ".x", "a/b", "a b", "..", "a<b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!("vhd".parse::<Format>().unwrap(), Format::Vhd);
        assert!("vpc".parse::<Format>().is_err());
    }

    #[test]
    fn info_json() {
        let i = parse_info(r#"{"virtual-size": 4294967296, "filename": "x", "format": "raw", "actual-size": 0, "dirty-flag": false}"#).unwrap();
        assert_eq!(
            i,
            DiskInfo {
                format: "raw".into(),
                virtual_size: 4 << 30
            }
        );
        assert!(parse_info("{}").is_err());
    }

    /// A sparse raw disk of `size` bytes with `writes` (offset, length,
    /// byte) in a directory of its own under `base`.
    fn sparse_disk(
        base: &Path,
        size: u64,
        writes: &[(u64, u64, u8)],
    ) -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir_in(base).unwrap();
        let path = dir.path().join("disk.raw");
        let f = File::create(&path).unwrap();
        f.set_len(size).unwrap();
        for &(at, len, byte) in writes {
            let len = len.min(size - at);
            // Bytes vary within a write so that misplaced data shows.
            let data: Vec<u8> = (0..len)
                .map(|i| byte.wrapping_add((i / 512) as u8))
                .collect();
            f.write_all_at(&data, at).unwrap();
        }
        (dir, path)
    }

    fn machine() -> Machine {
        Machine {
            name: "t".into(),
            cpus: 1,
            memory_mib: 512,
        }
    }

    fn qemu_img(args: &[&str], a: &Path, b: Option<&Path>) {
        let mut c = Cmd::new("qemu-img").args(args).arg(a);
        if let Some(b) = b {
            c = c.arg(b);
        }
        c.run().unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// kld's qcow2 writer, against qemu itself: whatever the disk (odd
        /// sizes, several L2 tables, data, holes, written zeros; on the
        /// output's file system, where the kernel copies, or on tmpfs,
        /// where it cannot), qemu-img finds no error in the image, reads
        /// it as the source, and sha256sum agrees with the checksum file.
        #[test]
        fn qcow2_exports_read_back_in_qemu_as_their_source(
            size in 1u64..(1300 << 20),
            writes in proptest::collection::vec((0u64..(1300 << 20), 1u64..(3 << 20), any::<u8>()), 0..10),
            on_tmpfs in any::<bool>(),
        ) {
            let writes: Vec<_> = writes.into_iter().filter(|w| w.0 < size).collect();
            let shm = Path::new("/dev/shm");
            let base = if on_tmpfs && shm.is_dir() { shm } else { Path::new("/var/tmp") };
            let (_src_dir, src) = sparse_disk(base, size, &writes);
            let out = tempfile::tempdir_in("/var/tmp").unwrap();
            let e = Export::new(&src, out.path(), machine()).unwrap().export(Format::Qcow2).unwrap();
            qemu_img(&["check", "-q", "-f", "qcow2"], &e.path, None);
            qemu_img(&["compare", "-q", "-f", "raw", "-F", "qcow2"], &src, Some(&e.path));
            let info = info_as(&e.path, "qcow2").unwrap();
            prop_assert_eq!(info.virtual_size, size.div_ceil(512) * 512);
            prop_assert_eq!(e.size, std::fs::metadata(&e.path).unwrap().len());
            Cmd::new("sha256sum").args(["-c", "t.qcow2.sha256"]).current_dir(out.path()).run().unwrap();
            let names: Vec<_> = std::fs::read_dir(out.path()).unwrap().flatten().map(|d| d.file_name()).collect();
            prop_assert_eq!(names.len(), 2, "only the image and its checksum: {:?}", names);
        }
    }

    #[test]
    fn a_disk_ending_inside_a_cluster_of_data() {
        // The last cluster is copied up to the source's end and completed
        // with zeros, on the output's file system (copied by the kernel)
        // and from tmpfs (read and written).
        for base in ["/var/tmp", "/dev/shm"] {
            let size = 5 * qcow2::CLUSTER + 1000;
            let (_d, src) = sparse_disk(Path::new(base), size, &[(size - 700, 700, 9)]);
            let out = tempfile::tempdir_in("/var/tmp").unwrap();
            let e = Export::new(&src, out.path(), machine())
                .unwrap()
                .export(Format::Qcow2)
                .unwrap();
            assert_eq!(e.size % qcow2::CLUSTER, 0, "{base}");
            qemu_img(
                &["compare", "-q", "-f", "raw", "-F", "qcow2"],
                &src,
                Some(&e.path),
            );
        }
    }

    #[test]
    fn a_failed_qcow2_export_leaves_nothing() {
        // A source that is a directory cannot be read: the error names it,
        // and no temporary or final file is left.
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = Export::new(src.path(), out.path(), machine())
            .unwrap()
            .export(Format::Qcow2)
            .unwrap_err();
        assert!(
            err.to_string().contains(&src.path().display().to_string()),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_under_the_temporary_name_is_not_this_runs_to_remove() {
        let (_d, src) = sparse_disk(Path::new("/var/tmp"), 1 << 20, &[(0, 512, 1)]);
        let out = tempfile::tempdir().unwrap();
        let job = Export::new(&src, out.path(), machine()).unwrap();
        let theirs = job.temp_path(Format::Qcow2, "partial");
        std::fs::write(&theirs, b"not ours").unwrap();
        let err = job.export(Format::Qcow2).unwrap_err();
        assert!(matches!(err, Error::Exists(ref p) if *p == theirs), "{err}");
        assert_eq!(std::fs::read(&theirs).unwrap(), b"not ours");
    }

    #[test]
    fn the_plan_lists_the_writer_and_both_checks() {
        let (_d, src) = sparse_disk(Path::new("/var/tmp"), 1 << 20, &[(0, 512, 1)]);
        let out = tempfile::tempdir().unwrap();
        let plan = Export::new(&src, out.path(), machine())
            .unwrap()
            .plan(Format::Qcow2)
            .unwrap();
        assert!(plan[0].starts_with("scan "), "{plan:?}");
        assert!(plan[1].contains("qcow2 v3"), "{plan:?}");
        assert!(
            plan.iter()
                .any(|l| l.starts_with("qemu-img check -f qcow2")),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|l| l.starts_with("qemu-img compare -f raw -F qcow2")),
            "{plan:?}"
        );
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "a plan writes nothing"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_info(&s);
            let _ = check_name(&s);
            let _ = s.parse::<Format>();
        }
    }
}
