//! Adopting segments written but not catalogued before a crash or power cut: the segment
//! being written when the daemon died is a playable MPEG-TS/Matroska file up to the cut, so
//! it is kept as part of the recordings that were capturing, rather than lost.
//!
//! Owns: the decision to adopt or only report a leftover file. Must not touch: files it does
//! not adopt (they stay on disk and in the reconcile report).
//!
//! With `storage.encrypt_segments` an adopted segment is encrypted like any sealed one. A
//! crash during an encryption leaves the plaintext, a complete `.enc`, or both: the plaintext
//! wins when present (it is re-encrypted); a lone `.enc` is decrypted to a private temp file
//! to be checked and hashed, and adopted as it is.

use std::path::Path;

use tracing::{info, warn};

use crate::catalog::{Catalog, CatalogError, OrphanFile, SegmentRecord};
use crate::crypt::{self, SegmentKey};
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
    encrypt: Option<&SegmentKey>,
    key: Option<&SegmentKey>,
) -> Result<Vec<u64>, CatalogError> {
    let first_new = catalog.next_segment_seq()?;
    let mut candidates: Vec<(u64, &OrphanFile)> = orphans
        .iter()
        .filter_map(|o| Some((seq_of(&o.path)?, o)))
        .filter(|(seq, _)| *seq >= first_new)
        .collect();
    // Plaintext before `.enc` for the same number, so the plaintext is the one adopted.
    candidates.sort_by_key(|(seq, o)| (*seq, crypt::is_encrypted(&o.path)));
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
        let record = match crypt::is_encrypted(&orphan.path) {
            false => playable(storage, seq, orphan).map(|r| encrypted(storage, r, encrypt)),
            true => key.and_then(|key| playable_encrypted(storage, seq, orphan, key)),
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

/// `record` with its file encrypted when `key` says so; on failure the plaintext is kept
/// and adopted (as when sealing: media first).
fn encrypted(storage: &Path, mut record: SegmentRecord, key: Option<&SegmentKey>) -> SegmentRecord {
    let Some(key) = key else { return record };
    match crypt::encrypt_file(key, record.seq, &storage.join(&record.path)) {
        Ok(_) => record.path.push_str(crypt::ENC_SUFFIX),
        Err(e) => {
            warn!(segment = record.seq, error = %e, "cannot encrypt an adopted segment; it stays in clear on disk")
        }
    }
    record
}

/// The record of a lone `.enc` leftover (plaintext already removed, catalog not written):
/// decrypted into a private folder to be probed and hashed, adopted with its `.enc` path.
fn playable_encrypted(
    storage: &Path,
    seq: u64,
    orphan: &OrphanFile,
    key: &SegmentKey,
) -> Option<SegmentRecord> {
    let dir = storage.join(format!(".adopt-{seq}"));
    let plain_name = orphan
        .path
        .file_name()?
        .to_str()?
        .strip_suffix(crypt::ENC_SUFFIX)?
        .to_owned();
    let result = crypt::private_dir(&dir)
        .and_then(|()| {
            let plain = dir.join(&plain_name);
            crypt::decrypt_to_file(key, seq, &storage.join(&orphan.path), &plain)
        })
        .map_err(|e| warn!(segment = seq, error = %e, "leftover encrypted segment does not decrypt; kept, not adopted"))
        .ok()
        .and_then(|_| {
            let probe = OrphanFile {
                path: Path::new(&format!(".adopt-{seq}")).join(&plain_name),
                bytes: 0,
            };
            playable(storage, seq, &probe)
        });
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        warn!(segment = seq, path = %dir.display(), error = %e, "cannot remove a decrypted copy");
    }
    let mut record = result?;
    record.path = orphan.path.to_string_lossy().into_owned();
    Some(record)
}

/// The segment's record if the file plays; otherwise it stays only reported.
fn playable(storage: &Path, seq: u64, orphan: &OrphanFile) -> Option<SegmentRecord> {
    let path = storage.join(&orphan.path);
    let info = match media::probe(&path) {
        Ok(info) if info.duration_ms > 0 && info.video.is_some() => info,
        Ok(_) => {
            warn!(segment = seq, path = %path.display(), "leftover segment holds no video; kept, not adopted");
            return None;
        }
        Err(e) => {
            warn!(segment = seq, path = %path.display(), error = %e, "leftover segment does not play; kept, not adopted");
            return None;
        }
    };
    let sealed = media::seal_file(&path)
        .map_err(|e| warn!(segment = seq, error = %e, "cannot seal a leftover segment"))
        .ok()?;
    Some(SegmentRecord {
        seq,
        path: orphan.path.to_string_lossy().into_owned(),
        bytes: sealed.bytes,
        duration_ms: info.duration_ms,
        sha256: sealed.sha256,
        sealed_at: Timestamp::now(),
    })
}

/// The number of `00000042.ts` and of its encrypted `00000042.ts.enc`.
pub fn seq_of(path: &Path) -> Option<u64> {
    crypt::seq_of(path)
}
