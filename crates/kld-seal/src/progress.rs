//! How far an export has come, for a caller's display: kld's own writer
//! counts what it wrote; a conversion by `qemu-img` is read from its `-p`
//! output.

use crate::export::Format;

/// How far the export of one format has come. Reported on the thread that
/// called [`Export::export`](crate::Export::export): for kld's qcow2 writer
/// after every 4 MiB written, for a conversion by `qemu-img` at each record
/// it prints (about every 1%). `fraction` starts again from 0 for each
/// format, and for each conversion of a format that takes two (a VHD whose
/// source is not a whole number of MiB is padded on a raw copy first).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// The format being exported.
    pub format: Format,
    /// The fraction written, from 0 to 1 (verification follows 1).
    pub fraction: f64,
}

/// A reader of `qemu-img -p` output: records such as `    (12.34/100%)`
/// ended by a carriage return, arriving in pieces cut anywhere.
#[derive(Debug, Default)]
pub(crate) struct QemuProgress {
    pending: Vec<u8>,
}

/// The longest record kept while waiting for its end; anything longer is
/// not a progress record.
const MAX_RECORD: usize = 64;

impl QemuProgress {
    /// Takes the next piece of output; returns the fraction of the last
    /// record it completed, if any.
    pub(crate) fn feed(&mut self, piece: &[u8]) -> Option<f64> {
        let mut last = None;
        for &b in piece {
            if b == b'\r' || b == b'\n' {
                last = parse_record(&self.pending).or(last);
                self.pending.clear();
            } else if self.pending.len() < MAX_RECORD {
                self.pending.push(b);
            }
        }
        last
    }
}

/// `(P/100%)`, blanks around it allowed, as a fraction from 0 to 1.
fn parse_record(record: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(record).ok()?.trim();
    let percent = text.strip_prefix('(')?.strip_suffix("/100%)")?;
    if percent.is_empty() || !percent.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let p: f64 = percent.parse().ok()?;
    Some((p / 100.0).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn qemu_img_output() {
        let mut q = QemuProgress::default();
        assert_eq!(q.feed(b"    (0.00/100%)\r    (50.0"), Some(0.0));
        assert_eq!(q.feed(b"0/100%)\r"), Some(0.5));
        assert_eq!(q.feed(b"    (100.00/100%)\r\n"), Some(1.0));
        assert_eq!(
            q.feed(b"Image resized.\n(x/100%)\r(/100%)\r(1e3/100%)\r"),
            None
        );
    }

    proptest! {
        #[test]
        fn any_output_gives_fractions_within_0_and_1(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..10)) {
            let mut q = QemuProgress::default();
            for p in pieces {
                if let Some(f) = q.feed(&p) {
                    prop_assert!((0.0..=1.0).contains(&f));
                }
            }
        }

        #[test]
        fn records_cut_anywhere_read_back(percents in proptest::collection::vec(0u32..=10_000, 1..20), cut in 0usize..400) {
            let text: String = percents
                .iter()
                .map(|p| format!("    ({}.{:02}/100%)\r", p / 100, p % 100))
                .collect();
            let cut = cut.min(text.len());
            let mut q = QemuProgress::default();
            let first = q.feed(&text.as_bytes()[..cut]);
            let last = q.feed(&text.as_bytes()[cut..]).or(first);
            let want = f64::from(*percents.last().unwrap()) / 10_000.0;
            prop_assert!((last.unwrap() - want).abs() < 1e-9);
        }
    }
}
