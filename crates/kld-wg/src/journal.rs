//! An append-only journal of records, one line each:
//! `CHECK JSON\n`, where `CHECK` is the first 8 bytes of the SHA-256 of
//! `JSON`, in hex. Appending costs one small write and one `fdatasync`,
//! however long the journal is. A crash during an append leaves at most a
//! torn last line (cut short, or not matching its check): reading ignores
//! it and the next append writes over it. A bad line followed by good ones
//! is not a torn append but damage, and is an error.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::token::hex;

/// What a journal holds: the records that read whole, and where the next
/// one goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents<T> {
    /// The records, in the order they were appended.
    pub records: Vec<T>,
    /// The length of the whole records: a torn tail starts here.
    pub valid_len: u64,
}

/// A journal file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

fn check(json: &[u8]) -> String {
    hex(&Sha256::digest(json)[..8])
}

fn damaged(path: &Path, at: u64, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: the record at byte {at} {what}", path.display()),
    )
}

impl Journal {
    /// The journal at `path` (it need not exist yet: it is empty).
    pub fn new(path: impl Into<PathBuf>) -> Journal {
        Journal { path: path.into() }
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every whole record; a torn last line is left out.
    pub fn read<T: serde::de::DeserializeOwned>(&self) -> std::io::Result<Contents<T>> {
        self.read_from(0)
    }

    /// Reads the whole records from byte `offset` on (the `valid_len` of
    /// an earlier read: only what was appended since is read); a torn last
    /// line is left out. `valid_len` counts from the start of the file.
    pub fn read_from<T: serde::de::DeserializeOwned>(
        &self,
        offset: u64,
    ) -> std::io::Result<Contents<T>> {
        let mut bytes = Vec::new();
        match std::fs::File::open(&self.path) {
            Ok(mut f) => {
                f.seek(std::io::SeekFrom::Start(offset))?;
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut records = Vec::new();
        let mut valid_len = offset;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                break; // cut short: the torn tail of an interrupted append
            };
            let (line, after) = (&rest[..end], &rest[end + 1..]);
            let whole = line
                .split_first_chunk::<16>()
                .filter(|(c, json)| {
                    json.first() == Some(&b' ') && c[..] == *check(&json[1..]).as_bytes()
                })
                .map(|(_, json)| &json[1..]);
            let Some(json) = whole else {
                if after.is_empty() {
                    break; // torn: written out of order and cut by a crash
                }
                return Err(damaged(
                    &self.path,
                    valid_len,
                    "is damaged (records follow it)",
                ));
            };
            let record = serde_json::from_slice(json).map_err(|e| {
                damaged(
                    &self.path,
                    valid_len,
                    &format!("is not a known record: {e}"),
                )
            })?;
            records.push(record);
            valid_len += (end + 1) as u64;
            rest = after;
        }
        Ok(Contents { records, valid_len })
    }

    /// Appends `record` after the first `valid_len` bytes (cutting off a
    /// torn tail, if any), durably: when this returns, the record survives
    /// a crash. The file is created `0600`.
    pub fn append<T: serde::Serialize>(&self, valid_len: u64, record: &T) -> std::io::Result<u64> {
        let json = serde_json::to_vec(record).expect("records serialise");
        let mut line = Vec::with_capacity(json.len() + 18);
        line.extend_from_slice(check(&json).as_bytes());
        line.push(b' ');
        line.extend_from_slice(&json);
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&self.path)?;
        if f.metadata()?.len() != valid_len {
            f.set_len(valid_len)?;
        }
        f.seek(std::io::SeekFrom::Start(valid_len))?;
        f.write_all(&line)?;
        f.sync_data()?;
        kld_fs::fault::step(|| format!("append a record to {}", self.path.display()));
        Ok(valid_len + line.len() as u64)
    }

    /// Empties the journal durably (after its records were folded into a
    /// snapshot).
    pub fn clear(&self) -> std::io::Result<()> {
        match std::fs::OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => {
                f.set_len(0)?;
                f.sync_all()?;
                kld_fs::fault::step(|| format!("empty {}", self.path.display()));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The raw bytes (for tests that damage them).
    #[cfg(test)]
    fn raw(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("the journal is readable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("journal"));
        (dir, j)
    }

    #[test]
    fn appends_and_reads_back() {
        let (_d, j) = journal();
        let empty: Contents<Vec<u32>> = j.read().unwrap();
        assert_eq!(empty.records, Vec::<Vec<u32>>::new());
        let mut len = 0;
        for i in 0..5u32 {
            len = j.append(len, &vec![i; i as usize]).unwrap();
        }
        let c: Contents<Vec<u32>> = j.read().unwrap();
        assert_eq!(c.records.len(), 5);
        assert_eq!(c.records[3], vec![3, 3, 3]);
        assert_eq!(c.valid_len, len);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(j.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = j.append(0, &vec![9]).unwrap();
        let more = j.append(first, &vec![8]).unwrap();
        let tail: Contents<Vec<u32>> = j.read_from(first).unwrap();
        assert_eq!(tail.records, vec![vec![8]]);
        assert_eq!(tail.valid_len, more);
        j.clear().unwrap();
        assert!(j.read::<Vec<u32>>().unwrap().records.is_empty());
    }

    #[test]
    fn a_torn_tail_is_ignored_and_overwritten() {
        let (_d, j) = journal();
        let len = j.append(0, &"first").unwrap();
        let whole = j.append(len, &"second").unwrap();
        let raw = j.raw();
        // Every cut inside the second record: only the first one reads.
        for cut in len as usize..raw.len() {
            std::fs::write(j.path(), &raw[..cut]).unwrap();
            let c: Contents<String> = j.read().unwrap();
            assert_eq!(c.records, vec!["first".to_owned()], "cut at {cut}");
            assert_eq!(c.valid_len, len);
        }
        // Whole, but a byte changed (blocks written out of order).
        let mut bad = raw.clone();
        bad[whole as usize - 3] ^= 1;
        std::fs::write(j.path(), &bad).unwrap();
        let c: Contents<String> = j.read().unwrap();
        assert_eq!(c.records, vec!["first".to_owned()]);
        // The next append replaces the torn tail.
        let next = j.append(c.valid_len, &"third").unwrap();
        let c: Contents<String> = j.read().unwrap();
        assert_eq!(c.records, vec!["first".to_owned(), "third".to_owned()]);
        assert_eq!(c.valid_len, next);
    }

    #[test]
    fn damage_before_good_records_is_an_error() {
        let (_d, j) = journal();
        let mut len = 0;
        for r in ["a", "b", "c"] {
            len = j.append(len, &r).unwrap();
        }
        let mut raw = j.raw();
        raw[3] ^= 1;
        std::fs::write(j.path(), &raw).unwrap();
        let e = j.read::<String>().unwrap_err();
        assert!(
            e.to_string().contains("the record at byte 0 is damaged"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn reading_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (_d, j) = journal();
            std::fs::write(j.path(), &bytes).unwrap();
            let _ = j.read::<serde_json::Value>();
        }

        #[test]
        fn records_round_trip(items in proptest::collection::vec("[ -~\n]{0,20}", 0..6)) {
            let (_d, j) = journal();
            let mut len = 0;
            for i in &items {
                len = j.append(len, i).unwrap();
            }
            let c: Contents<String> = j.read().unwrap();
            prop_assert_eq!(c.records, items);
            prop_assert_eq!(c.valid_len, len);
        }
    }
}
