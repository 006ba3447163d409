//! The disk budget's view of the catalog (issue item 7): how many bytes of media are on disk,
//! and which segment files may be evicted.
//!
//! Owns: the two queries below. What may go is decided here, in one SQL statement, so that
//! the rule "never evict media that is not yet uploaded or not yet converted" has one home.
//! Must not touch: the files (the daemon's housekeeping deletes them and then calls
//! [`Catalog::mark_segment_released`]), recording states, upload jobs.
//!
//! Retention is measured from `sealed_at`: the schema keeps no upload time, and a segment is
//! normally uploaded within seconds of sealing. A segment uploaded late therefore becomes
//! evictable as soon as it is uploaded, if it was sealed before the cutoff.

use rusqlite::params;

use super::{to_u64, Catalog, CatalogError, RawSegment, SegmentRecord};
use crate::protocol::Timestamp;

/// A tag that still needs the file: a recording that is neither gone (discarded, deleted),
/// nor a local one converted and checked (`ready`), nor a cloud one whose upload job for this
/// segment is verified in the store. Local `failed` and every live or unconverted state
/// (`recording`, `paused`, `stopped`, `converting`, `needs_finalize`) keep the file.
const NEEDED: &str = "EXISTS (
    SELECT 1 FROM segment_recordings t JOIN recordings r ON r.id = t.recording_id
    WHERE t.seq = s.seq AND r.state NOT IN ('discarded', 'deleted') AND NOT (
        (r.kind = 'local' AND r.state = 'ready')
        OR (r.kind = 'cloud' AND EXISTS (
            SELECT 1 FROM uploads u
            WHERE u.seq = s.seq AND u.recording_id = r.id AND u.state = 'uploaded'))))";

/// Tagged, and only with recordings that are discarded or deleted: nobody will ever want the
/// file, so it goes without waiting for the retention.
const ABANDONED: &str = "(EXISTS (SELECT 1 FROM segment_recordings t WHERE t.seq = s.seq)
    AND NOT EXISTS (
        SELECT 1 FROM segment_recordings t JOIN recordings r ON r.id = t.recording_id
        WHERE t.seq = s.seq AND r.state NOT IN ('discarded', 'deleted')))";

impl Catalog {
    /// Bytes of the segment files that should be on disk (not released).
    pub fn used_bytes(&self) -> Result<u64, CatalogError> {
        let bytes: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(bytes), 0) FROM segments WHERE released_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        to_u64("used bytes", bytes)
    }

    /// Up to `limit` segments whose files may be deleted, oldest first: not released, needed
    /// by no recording (see [`NEEDED`]), and sealed before `uploaded_before` unless every
    /// recording they belong to is discarded or deleted.
    pub fn evictable_segments(
        &self,
        uploaded_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<SegmentRecord>, CatalogError> {
        let sql = format!(
            "SELECT s.seq, s.path, s.bytes, s.duration_ms, s.sha256, s.sealed_at, s.silent_ms
             FROM segments s
             WHERE s.released_at IS NULL AND NOT {NEEDED}
               AND (s.sealed_at < ?1 OR {ABANDONED})
             ORDER BY s.sealed_at, s.seq LIMIT ?2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX); // SQLite's LIMIT is an i64
        let mut stmt = self.conn.prepare(&sql)?;
        let raws = stmt
            .query_map(params![uploaded_before.0, limit], RawSegment::read)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawSegment::into_record).collect()
    }
}
