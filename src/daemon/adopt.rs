//! Adopting segments written but not catalogued before a crash or power cut: the segment
//! being written when the daemon died is a playable MPEG-TS/Matroska file up to the cut, so
//! it is kept as part of the recordings that were capturing, rather than lost.
//!
//! Owns: the decision to adopt or only report a leftover file. Must not touch: files it does
//! not adopt (they stay on disk and in the reconcile report).

use std::path::Path;

use tracing::{info, warn};

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
) -> Result<Vec<u64>, CatalogError> {
    let first_new = catalog.next_segment_seq()?;
    let mut candidates: Vec<(u64, &OrphanFile)> = orphans
        .iter()
        .filter_map(|o| Some((seq_of(&o.path)?, o)))
        .filter(|(seq, _)| *seq >= first_new)
        .collect();
    candidates.sort_by_key(|(seq, _)| *seq);
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
        let Some(record) = playable(storage, seq, orphan) else {
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

pub fn seq_of(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}
