//! Deleting segment files for good: every file removed, its folder fsynced, and only then its
//! row marked released, so a power cut can leave a row pointing at a deleted file (the next
//! pass finds it gone and releases it) but never a released row whose file comes back.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::seal::sync_dir;
use crate::catalog::{Catalog, CatalogError, SegmentRecord};
use crate::protocol::Timestamp;

/// What one [`release`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Segments whose file is durably gone (removed, or found already gone) and whose row is
    /// marked released.
    pub segments: usize,
    /// Their media bytes, as catalogued: what the byte ledger gives back.
    pub bytes: u64,
    /// Files that could not be removed or made durable, with why; they stay unreleased.
    pub failed: Vec<(u64, String)>,
}

/// Removes the files of `batch` (relative to `storage`), fsyncs their folders, then marks the
/// durably removed ones released at `now`.
pub fn release(
    catalog: &mut Catalog,
    storage: &Path,
    batch: Vec<SegmentRecord>,
    now: Timestamp,
) -> Result<Released, CatalogError> {
    let mut released = Released::default();
    for seg in remove_durably(storage, batch, &mut released.failed) {
        catalog.mark_segment_released(seg.seq, now)?;
        released.segments += 1;
        released.bytes = released.bytes.saturating_add(seg.bytes);
    }
    Ok(released)
}

/// Removes the batch's files and fsyncs their folders; returns the segments now durably gone.
fn remove_durably(
    storage: &Path,
    batch: Vec<SegmentRecord>,
    failed: &mut Vec<(u64, String)>,
) -> Vec<SegmentRecord> {
    let mut removed = Vec::with_capacity(batch.len());
    let mut folders = BTreeSet::new();
    for seg in batch {
        let path = storage.join(&seg.path);
        match remove(&path) {
            Ok(()) => {
                folders.insert(folder_of(&path));
                removed.push(seg);
            }
            Err(e) => fail(failed, seg.seq, &path, &e.to_string()),
        }
    }
    for folder in &folders {
        if let Err(e) = sync_dir(folder) {
            // Not durable: keep this folder's rows unreleased; the next pass retries.
            removed.retain(|seg| {
                let here = folder_of(&storage.join(&seg.path)) == *folder;
                if here {
                    fail(failed, seg.seq, folder, &e.to_string());
                }
                !here
            });
        }
    }
    removed
}

/// A file already gone counts as removed: the catalog expected it and nobody needs it.
fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn folder_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn fail(failed: &mut Vec<(u64, String)>, seq: u64, path: &Path, e: &str) {
    warn!(segment = seq, path = %path.display(), error = %e, "cannot remove a segment file");
    failed.push((seq, format!("{}: {e}", path.display())));
}
