//! Undoing an append. (Atomic replacement, secret files and locks are
//! [`kld_fs`]'s.)

use std::path::Path;

/// Cuts `path` back to its first `len` bytes, durably (undoes an append).
pub fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_data()?;
    kld_fs::fault::step(|| format!("truncate {} to {len}", path.display()));
    Ok(())
}
