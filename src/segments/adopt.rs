//! Adopting segments written but not catalogued before a crash or power cut: the segment
//! being written when the daemon died is a playable MPEG-TS file up to the cut, so it is kept
//! as part of the recordings that were capturing, rather than lost. Also what an interrupted
//! run leaves that must not outlive it (encryption temp files, decrypted copies), and the
//! first number a new segment may take.
//!
//! Files that are not adopted stay on disk and in the reconcile report.
//!
//! With `storage.encrypt_segments` an adopted segment is encrypted like any sealed one. A
//! crash during an encryption leaves the plaintext, a complete `.enc`, or both: the plaintext
//! wins when present (it is re-encrypted); a lone `.enc` is decrypted to a private temp folder
//! to be checked and hashed, and adopted as it is.

use std::path::Path;

use tracing::{info, warn};

use super::at_rest::{keep_sealed, DecryptKey, Keys, PlainCopies};
use super::{name, seal};
use crate::catalog::{Catalog, CatalogError, OrphanFile, SegmentRecord};
use crate::media;
use crate::protocol::{Id, RecordingInfo, RecordingKind, RecordingState, Timestamp};

/// The recordings that were capturing when the daemon stopped: read before reconciliation
/// changes their states.
pub fn capturing(live: &[RecordingInfo]) -> Vec<RecordingInfo> {
    live.iter()
        .filter(|r| r.state == RecordingState::Recording)
        .cloned()
        .collect()
}

/// Adopts, in sequence order, every orphan numbered past the catalog's last segment that
/// plays, tagged with `capturing`. Returns the adopted sequence numbers.
pub fn adopt(
    catalog: &mut Catalog,
    storage: &Path,
    orphans: &[OrphanFile],
    capturing: &[RecordingInfo],
    keys: &Keys,
) -> Result<Vec<u64>, CatalogError> {
    let first_new = catalog.next_segment_seq()?;
    let mut candidates: Vec<(u64, &OrphanFile)> = orphans
        .iter()
        .filter_map(|o| Some((name::seq_of(&o.path)?, o)))
        .filter(|(seq, _)| *seq >= first_new)
        .collect();
    // Plaintext before `.enc` for the same number, so the plaintext is the one adopted.
    candidates.sort_by_key(|(seq, o)| (*seq, name::is_encrypted(&o.path)));
    candidates.dedup_by_key(|(seq, _)| *seq);
    let tags: Vec<Id> = capturing.iter().map(|r| r.recording_id.clone()).collect();
    let cloud = capturing
        .iter()
        .find(|r| r.kind == RecordingKind::Cloud)
        .map(|r| r.recording_id.clone());
    let mut adopted = Vec::new();
    if tags.is_empty() {
        return Ok(adopted);
    }
    for (seq, orphan) in candidates {
        let record = match name::is_encrypted(&orphan.path) {
            false => playable(storage, seq, &orphan.path).map(|mut r| {
                r.path = keep_sealed(keys, storage, &r.path);
                r
            }),
            true => keys
                .decrypt()
                .and_then(|key| playable_encrypted(storage, seq, orphan, key)),
        };
        let Some(record) = record else {
            continue;
        };
        catalog.seal_segment(&record, &tags, cloud.as_ref())?;
        info!(segment = seq, bytes = record.bytes, duration_ms = record.duration_ms,
            recordings = ?tags.iter().map(Id::as_str).collect::<Vec<_>>(),
            "adopted a segment written before the daemon stopped");
        adopted.push(seq);
    }
    Ok(adopted)
}

/// The first number a new segment may take: past the catalog's and past every file left on
/// disk, so a file written but not catalogued (and not adopted) is never overwritten.
pub fn first_free_seq(catalog_next: u64, orphans: &[OrphanFile]) -> u64 {
    orphans
        .iter()
        .filter_map(|o| name::seq_of(&o.path))
        .map(|seq| seq + 1)
        .fold(catalog_next, u64::max)
}

/// Removes what an interrupted run left that must not outlive it: temp files of encryptions
/// (never the only copy: the plaintext is removed only after the rename) and the private
/// folders of decrypted copies (plaintext). Run before reconciling, so none is reported as an
/// unknown file.
pub fn remove_leftovers(storage: &Path) {
    let segments = storage.join(name::SEGMENTS_DIR);
    for entry in std::fs::read_dir(&segments).into_iter().flatten().flatten() {
        let path = entry.path();
        let temp = entry.file_name().to_str().is_some_and(name::is_temp);
        if temp && std::fs::remove_file(&path).is_ok() {
            info!(path = %path.display(), "removed an interrupted encryption's temp file");
        }
    }
    for entry in std::fs::read_dir(storage).into_iter().flatten().flatten() {
        let copies = entry
            .file_name()
            .to_str()
            .is_some_and(name::is_decrypted_copies);
        if !copies {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                info!(path = %entry.path().display(), "removed decrypted copies left by an interrupted run")
            }
            Err(e) => {
                warn!(path = %entry.path().display(), error = %e, "cannot remove decrypted copies left by an interrupted run")
            }
        }
    }
}

/// The record of a lone `.enc` leftover (plaintext already removed, catalog not written):
/// decrypted into a private folder to be probed and hashed, adopted with its `.enc` path.
fn playable_encrypted(
    storage: &Path,
    seq: u64,
    orphan: &OrphanFile,
    key: &DecryptKey,
) -> Option<SegmentRecord> {
    let copies = PlainCopies::for_adoption(storage, seq, key.clone());
    let copy = copies
        .inputs(&[storage.join(&orphan.path)])
        .map_err(|e| warn!(segment = seq, error = %e, "leftover encrypted segment does not decrypt; kept, not adopted"))
        .ok()?
        .pop()?;
    let mut record = playable(storage, seq, &copy)?;
    record.path = orphan.path.to_string_lossy().into_owned();
    Some(record)
}

/// The segment's record if the file at `path` (relative to `storage`, or absolute) plays;
/// otherwise it stays only reported.
fn playable(storage: &Path, seq: u64, path: &Path) -> Option<SegmentRecord> {
    let file = storage.join(path);
    let info = match media::probe(&file) {
        Ok(info) if info.duration_ms > 0 && info.video.is_some() => info,
        Ok(_) => {
            warn!(segment = seq, path = %file.display(), "leftover segment holds no video; kept, not adopted");
            return None;
        }
        Err(e) => {
            warn!(segment = seq, path = %file.display(), error = %e, "leftover segment does not play; kept, not adopted");
            return None;
        }
    };
    let sealed = seal::seal(&file)
        .map_err(|e| warn!(segment = seq, error = %e, "cannot seal a leftover segment"))
        .ok()?;
    Some(SegmentRecord {
        seq,
        path: path.to_string_lossy().into_owned(),
        bytes: sealed.bytes,
        duration_ms: info.duration_ms,
        sha256: sealed.sha256,
        sealed_at: last_write(&file),
        // Its levels were never summed: the run that heard them died with it.
        silent_ms: 0,
    })
}

/// When the file was last written: the end of what it holds, which the completeness report
/// lays on the clock (the time of its adoption would hide the gap the crash left).
fn last_write(file: &Path) -> Timestamp {
    let modified = std::fs::metadata(file).and_then(|m| m.modified());
    match modified.map(|t| t.duration_since(std::time::UNIX_EPOCH)) {
        Ok(Ok(d)) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        _ => Timestamp::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn orphan(p: &str) -> OrphanFile {
        OrphanFile {
            path: PathBuf::from(p),
            bytes: 1,
        }
    }

    #[test]
    fn new_segments_are_numbered_past_uncatalogued_files() {
        assert_eq!(first_free_seq(5, &[]), 5);
        assert_eq!(first_free_seq(5, &[orphan("segments/00000009.ts")]), 10);
        assert_eq!(first_free_seq(5, &[orphan("segments/00000009.ts.enc")]), 10);
        assert_eq!(first_free_seq(12, &[orphan("segments/00000009.ts")]), 12);
        assert_eq!(first_free_seq(3, &[orphan("segments/notes.txt")]), 3);
    }

    #[test]
    fn leftovers_of_an_interrupted_run_go_and_nothing_else() {
        let storage = tempfile::tempdir().expect("tempdir");
        let s = storage.path();
        std::fs::create_dir_all(s.join("segments")).expect("segments");
        for dir in [".plain-r-1", ".adopt-7", "local"] {
            std::fs::create_dir(s.join(dir)).expect("dir");
            std::fs::write(s.join(dir).join("00000007.ts"), b"x").expect("file");
        }
        for file in ["00000007.ts", "00000007.ts.enc", "00000008.ts.enc.tmp"] {
            std::fs::write(s.join("segments").join(file), b"x").expect("file");
        }
        remove_leftovers(s);
        assert!(!s.join(".plain-r-1").exists() && !s.join(".adopt-7").exists());
        assert!(s.join("local/00000007.ts").exists());
        assert!(!s.join("segments/00000008.ts.enc.tmp").exists());
        assert!(s.join("segments/00000007.ts").exists());
        assert!(s.join("segments/00000007.ts.enc").exists());
    }
}
