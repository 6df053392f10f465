//! qcow2 images written in one pass, in file order: the whole layout
//! follows from which clusters of the source hold data ([`crate::scan`]),
//! so the metadata comes first, final from the start, and the data
//! clusters follow in the disk's order. Nothing is ever written twice or
//! out of order, which lets the image be hashed as it is written.
//!
//! The image is qcow2 version 3 (qemu's `compat=1.1`) with 64 KiB
//! clusters, 16-bit refcounts, no backing file, no compression, no
//! extended L2 entries, and no header extensions:
//!
//! ```text
//! cluster 0            header
//! then                 refcount table, L1 table, refcount blocks,
//!                      L2 tables (only those mapping data)
//! then                 the data clusters, in the disk's order
//! ```
//!
//! Every cluster of the file is used exactly once, so every refcount is 1
//! and every L1 and L2 entry carries the "copied" flag, as qemu expects.
//! A cluster not mapped by an L2 table reads as zeros.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;

use crate::hash::CHUNK;
use crate::scan::{read_at_or_zero, Run};

/// The size of a cluster: 64 KiB, qemu's default.
pub(crate) const CLUSTER: u64 = 1 << CLUSTER_BITS;
const CLUSTER_BITS: u32 = 16;
// Pieces are whole clusters, at least one.
const _: () = assert!(CHUNK as u64 >= CLUSTER && (CHUNK as u64).is_multiple_of(CLUSTER));
/// Entries of an L2 table (and of an L1 table's cluster): 8 bytes each.
const TABLE_ENTRIES: u64 = CLUSTER / 8;
/// Refcounts in a refcount block: 16 bits each.
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER / 2;
/// The "copied" flag of L1 and L2 entries: the cluster's refcount is 1.
const COPIED: u64 = 1 << 63;
/// The length of a version 3 header without optional fields.
const HEADER_LEN: u32 = 104;

/// Where everything goes in an image, from the disk's size and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The disk's size in bytes, rounded up to 512 as qemu reads a raw disk.
    virtual_size: u64,
    /// The runs of disk clusters that hold data.
    runs: Vec<Run>,
    /// For each run, the index among the data clusters of its first.
    run_start: Vec<u64>,
    /// The L1 indices whose L2 table maps data, in order.
    tables: Vec<u64>,
    rt_clusters: u64,
    l1_clusters: u64,
    rb_clusters: u64,
    data_clusters: u64,
}

impl Layout {
    /// The layout of an image of a disk of `size` bytes whose clusters in
    /// `runs` hold data (sorted, not overlapping, within the disk).
    pub(crate) fn new(size: u64, runs: Vec<Run>) -> Layout {
        let virtual_size = size.div_ceil(512) * 512;
        let l1_entries = virtual_size.div_ceil(CLUSTER).div_ceil(TABLE_ENTRIES);
        let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER).max(1);
        let mut run_start = Vec::with_capacity(runs.len());
        let mut tables: Vec<u64> = Vec::new();
        let mut data_clusters = 0;
        for r in &runs {
            run_start.push(data_clusters);
            data_clusters += r.len;
            let (first, last) = (
                r.first / TABLE_ENTRIES,
                (r.first + r.len - 1) / TABLE_ENTRIES,
            );
            let from = match tables.last() {
                Some(&t) if t >= first => t + 1,
                _ => first,
            };
            tables.extend(from..=last);
        }
        // The refcount blocks count every cluster, themselves and the
        // refcount table included: grow both until they cover the total.
        let fixed = 1 + l1_clusters + tables.len() as u64 + data_clusters;
        let (mut rt_clusters, mut rb_clusters) = (1, 1);
        loop {
            let total = fixed + rt_clusters + rb_clusters;
            let rb = total.div_ceil(REFCOUNTS_PER_BLOCK);
            let rt = (rb * 8).div_ceil(CLUSTER);
            if rb <= rb_clusters && rt <= rt_clusters {
                break;
            }
            rb_clusters = rb_clusters.max(rb);
            rt_clusters = rt_clusters.max(rt);
        }
        Layout {
            virtual_size,
            runs,
            run_start,
            tables,
            rt_clusters,
            l1_clusters,
            rb_clusters,
            data_clusters,
        }
    }

    /// The L1 table's entries (one per 512 MiB of disk).
    fn l1_entries(&self) -> u64 {
        self.virtual_size.div_ceil(CLUSTER).div_ceil(TABLE_ENTRIES)
    }

    fn rt_at(&self) -> u64 {
        1
    }

    fn l1_at(&self) -> u64 {
        self.rt_at() + self.rt_clusters
    }

    fn rb_at(&self) -> u64 {
        self.l1_at() + self.l1_clusters
    }

    fn l2_at(&self) -> u64 {
        self.rb_at() + self.rb_clusters
    }

    /// The clusters before the data: header, tables and refcount blocks.
    pub(crate) fn metadata_clusters(&self) -> u64 {
        self.l2_at() + self.tables.len() as u64
    }

    /// The image file's size in bytes.
    pub(crate) fn file_size(&self) -> u64 {
        self.clusters() * CLUSTER
    }

    fn clusters(&self) -> u64 {
        self.metadata_clusters() + self.data_clusters
    }

    /// The runs of disk clusters the image holds, in the order their data
    /// follows the metadata.
    pub(crate) fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Fills `buf` (one cluster, zeroed) with metadata cluster `i`.
    pub(crate) fn metadata_cluster(&self, i: u64, buf: &mut [u8]) {
        debug_assert_eq!(buf.len() as u64, CLUSTER);
        if i == 0 {
            self.header(buf);
        } else if i < self.l1_at() {
            // Refcount table: the offsets of the refcount blocks.
            let first = (i - self.rt_at()) * TABLE_ENTRIES;
            let blocks = first..(first + TABLE_ENTRIES).min(self.rb_clusters);
            for (slot, b) in blocks.enumerate() {
                put_u64(buf, slot * 8, (self.rb_at() + b) * CLUSTER);
            }
        } else if i < self.rb_at() {
            // L1 table: the offsets of the L2 tables that map data.
            let first = (i - self.l1_at()) * TABLE_ENTRIES;
            let end = (first + TABLE_ENTRIES).min(self.l1_entries());
            let from = self.tables.partition_point(|&t| t < first);
            for (n, &t) in self.tables[from..].iter().enumerate() {
                if t >= end {
                    break;
                }
                let l2 = (self.l2_at() + (from + n) as u64) * CLUSTER;
                put_u64(buf, ((t - first) * 8) as usize, l2 | COPIED);
            }
        } else if i < self.l2_at() {
            // Refcount block: 1 for every cluster of the file.
            let first = (i - self.rb_at()) * REFCOUNTS_PER_BLOCK;
            let used = self
                .clusters()
                .saturating_sub(first)
                .min(REFCOUNTS_PER_BLOCK);
            for slot in 0..used as usize {
                buf[slot * 2..slot * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
            }
        } else {
            self.l2_table(self.tables[(i - self.l2_at()) as usize], buf);
        }
    }

    fn header(&self, buf: &mut [u8]) {
        let fields: [(usize, u64, usize); 14] = [
            (0, 0x5146_49fb, 4), // magic "QFI\xfb"
            (4, 3, 4),           // version
            (8, 0, 8),           // backing file offset
            (16, 0, 4),          // backing file name length
            (20, u64::from(CLUSTER_BITS), 4),
            (24, self.virtual_size, 8),
            (32, 0, 4), // encryption
            (36, self.l1_entries(), 4),
            (40, self.l1_at() * CLUSTER, 8),
            (48, self.rt_at() * CLUSTER, 8),
            (56, self.rt_clusters, 4),
            (60, 0, 4), // snapshots
            (96, 4, 4), // refcount order: 16-bit refcounts
            (100, u64::from(HEADER_LEN), 4),
        ];
        // Bytes 64-95 (snapshot table, feature bits) stay zero, and so do
        // the 8 bytes after the header: the end of header extensions.
        for (at, value, width) in fields {
            let bytes = value.to_be_bytes();
            buf[at..at + width].copy_from_slice(&bytes[8 - width..]);
        }
    }

    fn l2_table(&self, table: u64, buf: &mut [u8]) {
        let (first, end) = (table * TABLE_ENTRIES, (table + 1) * TABLE_ENTRIES);
        let from = self.runs.partition_point(|r| r.first + r.len <= first);
        for (r, &start) in self.runs[from..].iter().zip(&self.run_start[from..]) {
            if r.first >= end {
                break;
            }
            for c in r.first.max(first)..(r.first + r.len).min(end) {
                let data = (self.metadata_clusters() + start + (c - r.first)) * CLUSTER;
                put_u64(buf, ((c - first) * 8) as usize, data | COPIED);
            }
        }
    }
}

fn put_u64(buf: &mut [u8], at: usize, value: u64) {
    buf[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// A failed write of an image, by the side that failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Reading the source.
    Source(std::io::Error),
    /// Writing the image.
    Image(std::io::Error),
    /// The kernel's copy from the source to the image.
    Copy(std::io::Error),
}

/// Writes the image of `src` laid out by `layout` to `out` (empty), in
/// file order, calling `complete` with the offset up to which the file is
/// final after each piece (at most [`CHUNK`] bytes); a `Break` from it
/// stops the writing there, and is returned. Data is copied by the
/// kernel (`copy_file_range`: no copy through this process, and none at all
/// on a file system that shares extents) where the file systems allow it,
/// else read and written. Past the end of `src` the image holds zeros,
/// written like the rest: every byte is in the file before `complete`
/// says so.
pub(crate) fn write(
    layout: &Layout,
    src: &File,
    out: &File,
    complete: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, WriteError> {
    let per_chunk = CHUNK as u64 / CLUSTER;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut i = 0;
    while i < layout.metadata_clusters() {
        let n = per_chunk.min(layout.metadata_clusters() - i);
        buf.clear();
        buf.resize((n * CLUSTER) as usize, 0);
        for (k, cluster) in buf.chunks_mut(CLUSTER as usize).enumerate() {
            layout.metadata_cluster(i + k as u64, cluster);
        }
        out.write_all_at(&buf, i * CLUSTER)
            .map_err(WriteError::Image)?;
        i += n;
        if complete(i * CLUSTER).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    let mut copy = Copy {
        src,
        out,
        kernel: true,
        buf,
    };
    let mut at = layout.metadata_clusters();
    for r in layout.runs() {
        let mut c = r.first;
        while c < r.first + r.len {
            let n = per_chunk.min(r.first + r.len - c);
            copy.range(c * CLUSTER, at * CLUSTER, n * CLUSTER)?;
            (c, at) = (c + n, at + n);
            if complete(at * CLUSTER).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Copies ranges of one file to another, by the kernel while it can.
struct Copy<'a> {
    src: &'a File,
    out: &'a File,
    /// Whether `copy_file_range` still works between the two.
    kernel: bool,
    buf: Vec<u8>,
}

impl Copy<'_> {
    /// Copies `len` bytes at `from` in the source to `to` in the output,
    /// as zeros where they lie past the end of the source.
    fn range(&mut self, mut from: u64, mut to: u64, len: u64) -> Result<(), WriteError> {
        use rustix::io::Errno;
        let end = from + len;
        while from < end && self.kernel {
            let want = (end - from) as usize;
            match rustix::fs::copy_file_range(
                self.src,
                Some(&mut from),
                self.out,
                Some(&mut to),
                want,
            ) {
                // The end of the source: the rest is zeros, written below.
                Ok(0) => break,
                Ok(_) => {}
                // Not between these files (another file system, a block
                // device): copy through this process from here on.
                Err(Errno::XDEV | Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS | Errno::BADF) => {
                    self.kernel = false;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(WriteError::Copy(e.into())),
            }
        }
        if from < end {
            self.buf.resize((end - from) as usize, 0);
            read_at_or_zero(self.src, &mut self.buf, from).map_err(WriteError::Source)?;
            self.out
                .write_all_at(&self.buf, to)
                .map_err(WriteError::Image)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn be(buf: &[u8], at: usize, width: usize) -> u64 {
        buf[at..at + width]
            .iter()
            .fold(0, |acc, &b| acc << 8 | u64::from(b))
    }

    fn cluster(l: &Layout, i: u64) -> Vec<u8> {
        let mut buf = vec![0; CLUSTER as usize];
        l.metadata_cluster(i, &mut buf);
        buf
    }

    /// Reads a layout's metadata back the way qemu does: header, L1, L2,
    /// refcount table and blocks; returns (disk cluster -> file cluster,
    /// refcount of each file cluster).
    fn read_back(l: &Layout) -> (Vec<(u64, u64)>, Vec<u64>) {
        let h = cluster(l, 0);
        assert_eq!(&h[..4], b"QFI\xfb");
        assert_eq!(be(&h, 4, 4), 3);
        assert_eq!(be(&h, 20, 4), 16);
        assert_eq!(be(&h, 24, 8) % 512, 0);
        let meta = |off: u64| cluster(l, off / CLUSTER);
        let (l1_size, l1_off) = (be(&h, 36, 4), be(&h, 40, 8));
        let mut map = Vec::new();
        for e in 0..l1_size {
            let l1 = meta(l1_off + e * 8 / CLUSTER * CLUSTER);
            let entry = be(&l1, ((e * 8) % CLUSTER) as usize, 8);
            if entry == 0 {
                continue;
            }
            assert_eq!(entry & COPIED, COPIED);
            let l2 = meta(entry & !COPIED);
            for s in 0..TABLE_ENTRIES {
                let d = be(&l2, (s * 8) as usize, 8);
                if d != 0 {
                    assert_eq!(d & COPIED, COPIED);
                    map.push((e * TABLE_ENTRIES + s, (d & !COPIED) / CLUSTER));
                }
            }
        }
        let (rt_off, rt_clusters) = (be(&h, 48, 8), be(&h, 56, 4));
        let mut refcounts = Vec::new();
        for e in 0..rt_clusters * TABLE_ENTRIES {
            let rt = meta(rt_off + e * 8 / CLUSTER * CLUSTER);
            let block = be(&rt, ((e * 8) % CLUSTER) as usize, 8);
            if block == 0 {
                break;
            }
            let rb = meta(block);
            refcounts.extend((0..REFCOUNTS_PER_BLOCK as usize).map(|s| be(&rb, s * 2, 2)));
        }
        (map, refcounts)
    }

    fn runs_strategy() -> impl Strategy<Value = (u64, Vec<Run>)> {
        (
            1u64..5 * TABLE_ENTRIES,
            proptest::collection::vec((0u64..6, 1u64..3000), 0..20),
        )
            .prop_map(|(clusters, gaps)| {
                let mut runs = Vec::new();
                let mut at = 0;
                for (gap, len) in gaps {
                    let first = at + gap * 977;
                    if first >= clusters {
                        break;
                    }
                    let len = len.min(clusters - first);
                    runs.push(Run { first, len });
                    at = first + len + 1;
                }
                (clusters * CLUSTER - 100, runs)
            })
    }

    proptest! {
        /// Every data cluster is mapped once, in order, after the metadata;
        /// every cluster of the file has refcount 1 and no other has one.
        #[test]
        fn metadata_maps_the_runs_and_counts_every_cluster((size, runs) in runs_strategy()) {
            let l = Layout::new(size, runs.clone());
            let (map, refcounts) = read_back(&l);
            let want: Vec<(u64, u64)> = runs
                .iter()
                .flat_map(|r| r.first..r.first + r.len)
                .enumerate()
                .map(|(k, c)| (c, l.metadata_clusters() + k as u64))
                .collect();
            prop_assert_eq!(map, want);
            let total = l.file_size() / CLUSTER;
            prop_assert!(refcounts.len() as u64 >= total);
            prop_assert!(refcounts[..total as usize].iter().all(|&r| r == 1));
            prop_assert!(refcounts[total as usize..].iter().all(|&r| r == 0));
        }
    }

    #[test]
    fn tables_of_more_than_one_cluster() {
        // Past 4 TiB the L1 table takes a second cluster: data at the very
        // end of a 5 TiB disk is mapped through its second half.
        let clusters = 5u64 << 24;
        let l = Layout::new(
            clusters * CLUSTER,
            vec![Run {
                first: clusters - 2,
                len: 2,
            }],
        );
        assert_eq!(l.l1_clusters, 2);
        let (map, _) = read_back(&l);
        let meta = l.metadata_clusters();
        assert_eq!(map, [(clusters - 2, meta), (clusters - 1, meta + 1)]);
        // Past 16 TiB of file the refcount table takes a second cluster;
        // its first entry points at refcount block 8192.
        let clusters = (16u64 << 24) + 10;
        let l = Layout::new(
            clusters * CLUSTER,
            vec![Run {
                first: 0,
                len: clusters,
            }],
        );
        assert_eq!(l.rt_clusters, 2);
        assert_eq!(be(&cluster(&l, 0), 56, 4), 2);
        assert_eq!(
            be(&cluster(&l, 2), 0, 8),
            (l.rb_at() + TABLE_ENTRIES) * CLUSTER
        );
        assert_eq!(l.rb_clusters, l.clusters().div_ceil(REFCOUNTS_PER_BLOCK));
    }

    #[test]
    fn sizes_of_an_empty_and_a_large_disk() {
        let empty = Layout::new(0, Vec::new());
        assert_eq!(empty.metadata_clusters(), 4);
        assert_eq!(be(&cluster(&empty, 0), 36, 4), 0);
        // 1 TiB all data: 2048 L2 tables, 512 refcount blocks, 1 table.
        let big = Layout::new(
            1 << 40,
            vec![Run {
                first: 0,
                len: 1 << 24,
            }],
        );
        assert_eq!(big.tables.len(), 2048);
        assert_eq!(
            big.rb_clusters,
            big.clusters().div_ceil(REFCOUNTS_PER_BLOCK)
        );
        assert_eq!(big.rt_clusters, 1);
        assert_eq!(be(&cluster(&big, 0), 24, 8), 1 << 40);
    }
}
