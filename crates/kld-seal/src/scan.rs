//! Which clusters of a raw disk hold data: holes are found with
//! `SEEK_DATA`/`SEEK_HOLE` (files) without reading them, and every other
//! cluster is read far enough to tell whether it is all zeros. A block
//! device or zvol has no holes to report, so all of it is read.
//!
//! A cluster whose first bytes are not zero, the usual case, costs one small
//! read. The kernel is asked to read ahead the window being scanned, so a
//! disk that is not in the page cache is read in large sequential requests.
//! The export that follows finds the data in the page cache when it fits
//! there; a disk's data larger than the memory is read from the disk twice.

use std::fs::File;
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;

use rustix::fs::{fadvise, seek, Advice, SeekFrom};

/// The first bytes of a cluster read to tell data from zeros; only a
/// cluster that starts with zeros is read whole.
const PROBE: usize = 4096;

/// How far ahead of the scan the kernel is asked to read.
const WINDOW: u64 = 32 << 20;

/// A run of consecutive clusters that hold data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// The first cluster's index in the disk.
    pub(crate) first: u64,
    /// How many clusters.
    pub(crate) len: u64,
}

/// Whether every byte of `buf` is zero (word-wide, stopping at the first
/// block that is not).
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(256)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Reads `buf.len()` bytes at `offset`, the part past the end of the disk
/// as zeros.
pub(crate) fn read_at_or_zero(src: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[filled..].fill(0);
    Ok(())
}

/// Scans a disk of `size` bytes in clusters of `cluster` bytes; returns the
/// runs of clusters that hold data, in order.
pub(crate) fn data_runs(src: &File, size: u64, cluster: u64) -> std::io::Result<Vec<Run>> {
    let mut scan = Scan {
        src,
        size,
        cluster,
        runs: Vec::new(),
        next: 0,
        advised: 0,
        probe: vec![0; PROBE.min(cluster as usize)],
        whole: Vec::new(),
    };
    let mut pos = 0;
    while pos < size {
        let Some((data, hole)) = next_extent(src, pos, size)? else {
            break;
        };
        scan.extent(data, hole)?;
        pos = hole;
    }
    Ok(scan.runs)
}

/// The next extent at or after `pos` that the file system says holds data,
/// as `(start, end)`; `None` past the last one. A file system or device
/// that cannot tell has one extent, to the end.
fn next_extent(src: &File, pos: u64, size: u64) -> std::io::Result<Option<(u64, u64)>> {
    let data = match seek(src, SeekFrom::Data(pos)) {
        Ok(d) => d,
        Err(rustix::io::Errno::NXIO) => return Ok(None),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => {
            return Ok(Some((pos, size)))
        }
        Err(e) => return Err(e.into()),
    };
    if data >= size {
        return Ok(None);
    }
    let hole = match seek(src, SeekFrom::Hole(data)) {
        Ok(h) => h.min(size),
        Err(rustix::io::Errno::NXIO) => size,
        Err(e) => return Err(e.into()),
    };
    Ok(Some((data, hole.max(data + 1))))
}

struct Scan<'a> {
    src: &'a File,
    size: u64,
    cluster: u64,
    runs: Vec<Run>,
    /// The first cluster not looked at yet (extents need not be aligned to
    /// clusters, so two can share one).
    next: u64,
    /// How far the kernel was asked to read ahead.
    advised: u64,
    probe: Vec<u8>,
    whole: Vec<u8>,
}

impl Scan<'_> {
    fn extent(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        let first = (start / self.cluster).max(self.next);
        let last = end.div_ceil(self.cluster);
        for c in first..last {
            if self.holds_data(c)? {
                match self.runs.last_mut() {
                    Some(r) if r.first + r.len == c => r.len += 1,
                    _ => self.runs.push(Run { first: c, len: 1 }),
                }
            }
        }
        self.next = self.next.max(last);
        Ok(())
    }

    fn holds_data(&mut self, c: u64) -> std::io::Result<bool> {
        let offset = c * self.cluster;
        self.read_ahead(offset);
        read_at_or_zero(self.src, &mut self.probe, offset)?;
        if !is_zero(&self.probe) {
            return Ok(true);
        }
        let rest = self.cluster as usize - self.probe.len();
        self.whole.resize(rest, 0);
        read_at_or_zero(self.src, &mut self.whole, offset + self.probe.len() as u64)?;
        Ok(!is_zero(&self.whole))
    }

    /// Asks the kernel to read the next window once the scan is half-way
    /// through the last one (advice only: an error changes nothing).
    fn read_ahead(&mut self, offset: u64) {
        if offset + WINDOW / 2 < self.advised || self.advised >= self.size {
            return;
        }
        let from = self.advised.max(offset);
        let to = (from + WINDOW).min(self.size);
        if let Some(len) = NonZeroU64::new(to - from) {
            let _ = fadvise(self.src, from, Some(len), Advice::WillNeed);
        }
        self.advised = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const C: u64 = 64 << 10;

    fn disk(size: u64, writes: &[(u64, Vec<u8>)]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.raw");
        let f = File::create(&path).unwrap();
        f.set_len(size).unwrap();
        for (at, bytes) in writes {
            f.write_all_at(bytes, *at).unwrap();
        }
        (dir, File::open(&path).unwrap())
    }

    #[test]
    fn holes_zeros_and_data() {
        // Cluster 1: data at its very end; cluster 3: written, but zeros;
        // clusters 5-6: data across the boundary; cluster 9: the last, partial.
        let size = 9 * C + 1000;
        let (_d, f) = disk(
            size,
            &[
                (2 * C - 1, vec![7]),
                (3 * C, vec![0; C as usize]),
                (6 * C - 10, vec![1; 20]),
                (9 * C + 999, vec![9]),
            ],
        );
        assert_eq!(
            data_runs(&f, size, C).unwrap(),
            [
                Run { first: 1, len: 1 },
                Run { first: 5, len: 2 },
                Run { first: 9, len: 1 }
            ]
        );
    }

    #[test]
    fn all_holes_and_empty() {
        let (_d, f) = disk(10 * C, &[]);
        assert!(data_runs(&f, 10 * C, C).unwrap().is_empty());
        let (_d, f) = disk(0, &[]);
        assert!(data_runs(&f, 0, C).unwrap().is_empty());
    }

    proptest! {
        /// The runs are exactly the clusters with a non-zero byte, whatever
        /// was written where (zeros included, which make allocated zeros).
        #[test]
        fn runs_are_the_nonzero_clusters(
            clusters in 1u64..40,
            tail in 0u64..C,
            writes in proptest::collection::vec((0u64..40 * C, 1usize..3 * C as usize, any::<bool>()), 0..8),
        ) {
            let size = (clusters - 1) * C + tail.max(1);
            let writes: Vec<(u64, Vec<u8>)> = writes
                .into_iter()
                .filter(|(at, _, _)| *at < size)
                .map(|(at, len, zero)| {
                    let len = len.min((size - at) as usize);
                    (at, if zero { vec![0; len] } else { vec![0xa5; len] })
                })
                .collect();
            let (_d, f) = disk(size, &writes);
            let mut image = vec![0u8; size as usize];
            f.read_exact_at(&mut image, 0).unwrap();
            let want: Vec<u64> = (0..size.div_ceil(C))
                .filter(|c| !is_zero(&image[(c * C) as usize..((c + 1) * C).min(size) as usize]))
                .collect();
            let got: Vec<u64> = data_runs(&f, size, C)
                .unwrap()
                .iter()
                .flat_map(|r| r.first..r.first + r.len)
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
