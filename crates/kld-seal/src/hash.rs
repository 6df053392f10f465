//! SHA-256 of files (large files: large reads on one thread, hashing on
//! another, so the disk and the CPU work at once; small files on the
//! calling thread; a file still being written, following the writer;
//! `sha2` uses the CPU's SHA extensions when it has them), and the
//! `sha256sum` file format.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The size of each read.
pub(crate) const CHUNK: usize = 4 << 20;

/// The SHA-256 of everything `reader` yields, as lowercase hex.
pub fn sha256_reader(mut reader: impl Read + Send) -> std::io::Result<String> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..3 {
        empty_tx.send(vec![0u8; CHUNK]).expect("receiver alive");
    }
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut h = Sha256::new();
            for buf in full_rx {
                h.update(&buf);
                // The reader may have finished and dropped its receiver.
                let _ = empty_tx.send(buf);
            }
            hex(&h.finalize())
        });
        let read = (|| {
            for mut buf in empty_rx.iter() {
                buf.resize(CHUNK, 0);
                let mut filled = 0;
                while filled < CHUNK {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                let done = filled < CHUNK;
                buf.truncate(filled);
                if full_tx.send(buf).is_err() || done {
                    break;
                }
            }
            Ok(())
        })();
        drop(full_tx);
        let digest = hasher.join().expect("the hashing thread panicked");
        read.map(|()| digest)
    })
}

/// The SHA-256 of a file, as lowercase hex. A file no larger than one read
/// is hashed on the calling thread (a second thread and its buffers would
/// cost more than they save).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(Error::io("reading", path))?;
    let len = f.metadata().map_err(Error::io("reading", path))?.len();
    if len < CHUNK as u64 {
        let mut buf = Vec::with_capacity(len as usize + 1);
        f.read_to_end(&mut buf)
            .map_err(Error::io("reading", path))?;
        return Ok(hex(&Sha256::digest(&buf)));
    }
    sha256_reader(f).map_err(Error::io("reading", path))
}

/// The SHA-256 of a file that another thread is writing from its start:
/// each value received from `complete` says the file is final up to that
/// offset, and is hashed that far (read back from the page cache the
/// writes just filled). Once `complete` is closed, the rest of the file is
/// hashed to its end. The digest is of what the file holds, as `sha256sum`
/// would read it.
pub(crate) fn sha256_following(
    file: &File,
    complete: mpsc::Receiver<u64>,
) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut hashed = 0u64;
    let mut hash_to = |end: u64| -> std::io::Result<()> {
        while hashed < end {
            let n = (end - hashed).min(CHUNK as u64) as usize;
            file.read_exact_at(&mut buf[..n], hashed)?;
            h.update(&buf[..n]);
            hashed += n as u64;
        }
        Ok(())
    };
    for end in complete {
        hash_to(end)?;
    }
    hash_to(file.metadata()?.len())?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of a `sha256sum` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumLine {
    /// The digest, 64 lowercase hex digits.
    pub sha256: String,
    /// The file name it is for.
    pub name: String,
}

impl ChecksumLine {
    /// The line as `sha256sum` writes it (text mode): `HEX  NAME\n`.
    pub fn render(&self) -> String {
        format!("{}  {}\n", self.sha256, self.name)
    }

    /// Parses one line as `sha256sum` writes it (text or binary mode).
    /// Names with a newline or a backslash (which `sha256sum` escapes) are
    /// not accepted.
    pub fn parse(line: &str) -> Result<ChecksumLine> {
        let bad = |why: &str| Error::Parse {
            what: "a sha256sum line".into(),
            why: why.into(),
        };
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (sha, rest) = line.split_at_checked(64).ok_or_else(|| bad("too short"))?;
        if !sha
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(bad("not 64 lowercase hex digits"));
        }
        let name = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(|| bad("no two-character separator"))?;
        if name.is_empty() || name.contains(['\n', '\\']) {
            return Err(bad("empty or escaped file name"));
        }
        Ok(ChecksumLine {
            sha256: sha.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_reader(&b""[..]).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_reader(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn agrees_with_sha256sum_small_and_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for len in [0, 1, 4096, CHUNK - 1, CHUNK, CHUNK * 2 + 12345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let ours = sha256_file(&path).unwrap();
            let out = std::process::Command::new("sha256sum")
                .arg(&path)
                .output()
                .unwrap();
            let theirs = String::from_utf8(out.stdout).unwrap();
            assert_eq!(ours, theirs.split(' ').next().unwrap(), "{len} bytes");
        }
    }

    #[test]
    fn following_a_file_as_it_grows_agrees_with_hashing_it_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let digest = std::thread::scope(|s| {
            let follower = s.spawn(|| sha256_following(&file, rx));
            let mut at = 0u64;
            for (i, len) in [1usize, CHUNK + 7, 0, 3 * CHUNK, 12345]
                .into_iter()
                .enumerate()
            {
                let piece = vec![i as u8 + 1; len];
                file.write_all_at(&piece, at).unwrap();
                at += len as u64;
                tx.send(at).unwrap();
            }
            // A tail the writer never announced is hashed at the end.
            file.set_len(at + 1000).unwrap();
            drop(tx);
            follower.join().unwrap().unwrap()
        });
        assert_eq!(digest, sha256_file(&path).unwrap());
    }

    #[test]
    fn parses_sha256sum_output() {
        let l = ChecksumLine::parse(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.qcow2\n",
        )
        .unwrap();
        assert_eq!(l.name, "a.qcow2");
        assert!(ChecksumLine::parse("xyz  a").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = ChecksumLine::parse(&s);
        }

        #[test]
        fn round_trip(sha in "[0-9a-f]{64}", name in "[^\n\\\\]{1,40}") {
            let l = ChecksumLine { sha256: sha, name };
            prop_assert_eq!(ChecksumLine::parse(&l.render()).unwrap(), l);
        }
    }
}
