//! Exports: a source disk converted by `qemu-img` to a temporary name,
//! verified (`qemu-img check` where the format has one, `qemu-img compare`
//! against the source), checksummed (`NAME.FORMAT.sha256`), and only then
//! renamed to its final name, which is never overwritten.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kld_exec::Cmd;

use crate::error::{Error, Result};
use crate::hash::{sha256_file, ChecksumLine};
use crate::ovf::{self, Machine, ManifestEntry};

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

/// Runs `qemu-img info` (with image locking, as always), qemu guessing the
/// format.
pub fn info(path: &Path) -> Result<DiskInfo> {
    info_as(path, None)
}

/// `qemu-img info`, reading the file as `format` if given (a fixed VHD has
/// no header to be recognised by, only a footer).
fn info_as(path: &Path, format: Option<&str>) -> Result<DiskInfo> {
    let mut c = Cmd::new("qemu-img").args(["info", "--output=json"]);
    if let Some(f) = format {
        c = c.args(["-f", f]);
    }
    let out = c.arg(path).run()?;
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

/// An export of one source to an output directory.
#[derive(Debug, Clone)]
pub struct Export {
    source: PathBuf,
    outdir: PathBuf,
    machine: Machine,
    progress: bool,
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
    /// Exports `source` into `outdir`; `machine.name` names the files.
    pub fn new(source: &Path, outdir: &Path, machine: Machine) -> Result<Export> {
        check_name(&machine.name)?;
        Ok(Export {
            source: source.to_path_buf(),
            outdir: outdir.to_path_buf(),
            machine,
            progress: false,
        })
    }

    /// Shows qemu-img's progress (for a terminal).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
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
        self.outdir.join(format!(
            ".{}.{}.{what}-{}",
            self.machine.name,
            f.name(),
            std::process::id()
        ))
    }

    fn convert_cmd(&self, src_format: &str, src: &Path, f: Format, dst: &Path) -> Cmd {
        let mut c = Cmd::new("qemu-img").arg("convert");
        if self.progress {
            c = c.arg("-p");
        }
        c = c.args(["-f", src_format, "-O", qemu_format(f)]);
        if let Some(o) = qemu_options(f) {
            c = c.args(["-o", o]);
        }
        c.arg(src).arg(dst)
    }

    /// The commands an export of `f` runs, for `--dry-run` (the source's
    /// format is read with `qemu-img info`, which changes nothing).
    pub fn plan(&self, f: Format) -> Result<Vec<String>> {
        let src = info(&self.source)?;
        let tmp = self.temp_path(f, "partial");
        let mut lines = vec![self
            .convert_cmd(&src.format, &self.source, f, &tmp)
            .display()];
        if checkable(f) {
            lines.push(format!(
                "qemu-img check -f {} {}",
                qemu_format(f),
                tmp.display()
            ));
        }
        lines.push(format!(
            "qemu-img compare -f {} -F {} {} {}",
            src.format,
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

    fn run(&self, c: Cmd) -> Result<()> {
        if self.progress {
            c.run_streaming()?;
        } else {
            c.run()?;
        }
        Ok(())
    }

    /// Converts `src_path` to `dst` in format `f`.
    fn convert(&self, src: &DiskInfo, src_path: &Path, f: Format, dst: &Path) -> Result<()> {
        if f == Format::Vhd && !src.virtual_size.is_multiple_of(MIB) {
            // A fixed VHD's size must be a whole number of MiB: pad a raw
            // copy with zeros (which compare equal to "beyond the end").
            let padded = self.temp_path(f, "padded");
            let _scratch = Scratch(padded.clone());
            self.run(self.convert_cmd(&src.format, src_path, Format::Raw, &padded))?;
            let size = src.virtual_size.div_ceil(MIB) * MIB;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&padded)
                .and_then(|file| file.set_len(size))
                .map_err(Error::io("padding", &padded))?;
            self.run(self.convert_cmd("raw", &padded, f, dst))
        } else {
            self.run(self.convert_cmd(&src.format, src_path, f, dst))
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

    /// Reads `dst` (format `f`) as that format and compares it with
    /// `src_path`.
    fn compare(src: &DiskInfo, src_path: &Path, f: Format, dst: &Path) -> Result<()> {
        let verify = |why: String| Error::Verify {
            path: dst.to_path_buf(),
            why,
        };
        let out = info_as(dst, Some(qemu_format(f)))?;
        if f == Format::Vhd && !out.virtual_size.is_multiple_of(MIB) {
            return Err(verify(format!(
                "virtual size {} is not a whole number of MiB",
                out.virtual_size
            )));
        }
        Cmd::new("qemu-img")
            .args(["compare", "-q", "-f", &src.format, "-F", qemu_format(f)])
            .arg(src_path)
            .arg(dst)
            .run()
            .map_err(|e| verify(format!("differs from the source: {e}")))?;
        Ok(())
    }

    /// Checks, compares and hashes `dst` at once, each on a thread of its
    /// own (each a pass of its own over the output, which the conversion
    /// left in the page cache); with `durable`, also makes it durable
    /// (fsync) meanwhile. Every step must succeed.
    fn verify_and_hash(
        src: &DiskInfo,
        src_path: &Path,
        f: Format,
        dst: &Path,
        durable: bool,
    ) -> Result<String> {
        std::thread::scope(|s| {
            let synced = s.spawn(|| if durable { sync_file(dst) } else { Ok(()) });
            let hash = s.spawn(|| sha256_file(dst));
            let checked = s.spawn(|| Self::check(f, dst));
            let compared = Self::compare(src, src_path, f, dst);
            let checked = checked.join().expect("the checking thread panicked");
            let synced = synced.join().expect("the fsync thread panicked");
            let digest = hash.join().expect("the hashing thread panicked");
            checked.and(compared).and(synced).and(digest)
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
        let vmdk_sha = Self::verify_and_hash(src, &self.source, Format::Ova, &vmdk, false)?;
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

    /// Exports one format: convert, verify, checksum, rename. Nothing is left
    /// under a temporary name, whatever happens; an existing output is an
    /// error before anything runs.
    pub fn export(&self, f: Format) -> Result<Exported> {
        self.check_free(&[f])?;
        let (path, checksum_path) = (self.output_path(f), self.checksum_path(f));
        let src = info(&self.source)?;
        let tmp = self.temp_path(f, "partial");
        let scratch = Scratch(tmp.clone());
        // The output is durable (fsync) before it gets its final name, so
        // a crash never leaves a finished-looking file with lost blocks.
        let sha256 = if f == Format::Ova {
            self.ova(&src, &tmp)?;
            std::thread::scope(|s| {
                let synced = s.spawn(|| sync_file(&tmp));
                let digest = sha256_file(&tmp);
                let synced = synced.join().expect("the fsync thread panicked");
                synced.and(digest)
            })?
        } else {
            self.convert(&src, &self.source, f, &tmp)?;
            Self::verify_and_hash(&src, &self.source, f, &tmp, true)?
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

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_info(&s);
            let _ = check_name(&s);
            let _ = s.parse::<Format>();
        }
    }
}
