//! The upload queue: the `uploads` rows of the catalog, as the upload actor sees them.
//!
//! Owns: claiming the next due job, recording a job's success (object key, ETag) or failure
//! (attempts, next try, last error), recovering jobs a crash left `uploading`, and the queries
//! the actor needs (bytes uploaded per recording, the jobs of a recording, cloud recordings
//! waiting for completion, segments only a deleted recording needs).
//! Must not touch: the store, HTTP, the files themselves. Jobs are created by
//! [`Catalog::seal_segment`] in the same transaction as their segment, never here.
//!
//! Times (`next_try`) are wall-clock milliseconds because they must survive a restart; the
//! actor guards against clock steps (see [`Catalog::claim_upload`]).

use rusqlite::{params, OptionalExtension, Row};
use tracing::{debug, info};

use super::{parse_id, to_i64, to_u64, Catalog, CatalogError, RawSegment, SegmentRecord};
use crate::protocol::{Id, Timestamp};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    Pending,
    Uploading,
    /// Sent and verified against the store's checksum.
    Uploaded,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Pending => "pending",
            UploadState::Uploading => "uploading",
            UploadState::Uploaded => "uploaded",
        }
    }

    fn parse(s: &str) -> Option<UploadState> {
        match s {
            "pending" => Some(UploadState::Pending),
            "uploading" => Some(UploadState::Uploading),
            "uploaded" => Some(UploadState::Uploaded),
            _ => None,
        }
    }
}

/// One upload job with what is needed to send it: its segment and its recording's identity
/// (the object key is derived from creator / meeting / recording / sequence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadJob {
    pub recording_id: Id,
    pub meeting_id: Id,
    /// The recording's owner: for a cloud recording, the meeting's creator (C4).
    pub creator: Id,
    pub segment: SegmentRecord,
    pub state: UploadState,
    /// Attempts that failed or were interrupted; above 0 the actor first asks the store
    /// whether the object is already there.
    pub attempts: u32,
    pub object_key: Option<String>,
    pub last_error: Option<String>,
    pub etag: Option<String>,
}

const JOB_COLUMNS: &str = "s.seq, s.path, s.bytes, s.duration_ms, s.sha256, s.sealed_at,
    u.recording_id, r.meeting_id, r.owner, u.state, u.attempts, u.object_key, u.last_error,
    u.etag, s.silent_ms";

const JOB_FROM: &str = "FROM uploads u JOIN segments s ON s.seq = u.seq
    JOIN recordings r ON r.id = u.recording_id";

impl Catalog {
    /// Jobs left `uploading` by a crash or power cut go back to `pending`, due now, with the
    /// interrupted attempt counted (so the next try checks the store first). Call once when
    /// the upload actor starts. Returns how many were recovered.
    pub fn recover_uploads(&mut self, now: Timestamp) -> Result<usize, CatalogError> {
        let n = self.conn.execute(
            "UPDATE uploads SET state = 'pending', attempts = attempts + 1, next_try = ?1,
                 last_error = COALESCE(last_error, 'interrupted by a restart')
             WHERE state = 'uploading'",
            [now.0],
        )?;
        if n > 0 {
            info!(jobs = n, "interrupted uploads queued again");
        }
        Ok(n)
    }

    /// Takes the oldest due `pending` job and marks it `uploading`. A job is due when its
    /// `next_try` is at or before `now`, or more than `max_backoff_ms` after it: the wall clock
    /// was stepped back, and waiting for it to catch up could take hours.
    pub fn claim_upload(
        &mut self,
        now: Timestamp,
        max_backoff_ms: i64,
    ) -> Result<Option<UploadJob>, CatalogError> {
        let tx = self.write()?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} {JOB_FROM}
             WHERE u.state = 'pending' AND (u.next_try <= ?1 OR u.next_try > ?1 + ?2)
             ORDER BY u.seq, u.recording_id LIMIT 1"
        );
        let raw = tx
            .query_row(&sql, params![now.0, max_backoff_ms], RawJob::read)
            .optional()?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE uploads SET state = 'uploading' WHERE seq = ?1 AND recording_id = ?2",
            params![raw.segment.seq, raw.recording_id],
        )?;
        tx.commit()?;
        let mut job = raw.into_job()?;
        job.state = UploadState::Uploading;
        debug!(segment = job.segment.seq, recording = %job.recording_id, "upload claimed");
        Ok(Some(job))
    }

    /// The job's object is in the store under `key` and verified. Returns false if the job is
    /// gone (its recording was deleted meanwhile).
    pub fn mark_uploaded(
        &mut self,
        seq: u64,
        recording_id: &Id,
        key: &str,
        etag: &str,
    ) -> Result<bool, CatalogError> {
        let n = self.conn.execute(
            "UPDATE uploads SET state = 'uploaded', object_key = ?3, etag = ?4, last_error = NULL
             WHERE seq = ?1 AND recording_id = ?2",
            params![
                to_i64("segment seq", seq)?,
                recording_id.as_str(),
                key,
                etag
            ],
        )?;
        Ok(n > 0)
    }

    /// An attempt failed: back to `pending`, one more attempt, due again at `next_try`.
    pub fn upload_failed(
        &mut self,
        seq: u64,
        recording_id: &Id,
        error: &str,
        next_try: Timestamp,
    ) -> Result<bool, CatalogError> {
        let n = self.conn.execute(
            "UPDATE uploads SET state = 'pending', attempts = attempts + 1, next_try = ?3,
                 last_error = ?4
             WHERE seq = ?1 AND recording_id = ?2",
            params![
                to_i64("segment seq", seq)?,
                recording_id.as_str(),
                next_try.0,
                error
            ],
        )?;
        Ok(n > 0)
    }

    /// Makes every pending job due at `now` (the store is reachable again). Returns how many.
    pub fn retry_uploads_now(&mut self, now: Timestamp) -> Result<usize, CatalogError> {
        Ok(self.conn.execute(
            "UPDATE uploads SET next_try = ?1 WHERE state = 'pending' AND next_try > ?1",
            [now.0],
        )?)
    }

    /// Bytes of the recording's segments that are in the store, verified (C8's usage).
    pub fn uploaded_bytes(&self, recording_id: &Id) -> Result<u64, CatalogError> {
        let bytes: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(s.bytes), 0) FROM uploads u JOIN segments s ON s.seq = u.seq
             WHERE u.recording_id = ?1 AND u.state = 'uploaded'",
            [recording_id.as_str()],
            |r| r.get(0),
        )?;
        to_u64("uploaded bytes", bytes)
    }

    /// Every job of the recording, by sequence number.
    pub fn upload_jobs_of(&self, recording_id: &Id) -> Result<Vec<UploadJob>, CatalogError> {
        let sql =
            format!("SELECT {JOB_COLUMNS} {JOB_FROM} WHERE u.recording_id = ?1 ORDER BY u.seq");
        let mut stmt = self.conn.prepare(&sql)?;
        let raws = stmt
            .query_map([recording_id.as_str()], RawJob::read)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawJob::into_job).collect()
    }

    /// Cloud recordings that are `stopped` (completion pending, E1) and have no job left to
    /// send: ready for their manifest.
    pub fn cloud_recordings_to_complete(&self) -> Result<Vec<Id>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.id FROM recordings r
             WHERE r.kind = 'cloud' AND r.state = 'stopped' AND NOT EXISTS (
                 SELECT 1 FROM uploads u WHERE u.recording_id = r.id AND u.state != 'uploaded')
             ORDER BY r.created_at, r.id",
        )?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.into_iter()
            .map(|id| parse_id("recording id", id))
            .collect()
    }

    /// Whether a segment numbered after `seq` exists that recording `recording_id` is not
    /// tagged on: then the recording's segments are all sealed (media seals in order).
    pub fn segment_after_without(&self, seq: u64, recording_id: &Id) -> Result<bool, CatalogError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM segments s WHERE s.seq > ?1 AND NOT EXISTS (
                 SELECT 1 FROM segment_recordings t WHERE t.seq = s.seq AND t.recording_id = ?2))",
            params![to_i64("segment seq", seq)?, recording_id.as_str()],
            |r| r.get(0),
        )?)
    }

    /// Segments of `recording_id` whose file no other live or kept recording needs (every
    /// other tag is `deleted` or `discarded`) and that are not released yet: the local copies
    /// E2's delete may remove.
    pub fn segments_only_of(&self, recording_id: &Id) -> Result<Vec<SegmentRecord>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.seq, s.path, s.bytes, s.duration_ms, s.sha256, s.sealed_at, s.silent_ms
             FROM segments s JOIN segment_recordings t ON t.seq = s.seq
             WHERE t.recording_id = ?1 AND s.released_at IS NULL AND NOT EXISTS (
                 SELECT 1 FROM segment_recordings o JOIN recordings r ON r.id = o.recording_id
                 WHERE o.seq = s.seq AND o.recording_id != ?1
                   AND r.state NOT IN ('deleted', 'discarded'))
             ORDER BY s.seq",
        )?;
        let raws = stmt
            .query_map([recording_id.as_str()], RawSegment::read)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawSegment::into_record).collect()
    }
}

/// A job row as SQLite returns it, before validation.
struct RawJob {
    segment: RawSegment,
    recording_id: String,
    meeting_id: String,
    creator: String,
    state: String,
    attempts: i64,
    object_key: Option<String>,
    last_error: Option<String>,
    etag: Option<String>,
}

impl RawJob {
    fn read(r: &Row<'_>) -> rusqlite::Result<RawJob> {
        Ok(RawJob {
            segment: RawSegment::read(r)?,
            recording_id: r.get(6)?,
            meeting_id: r.get(7)?,
            creator: r.get(8)?,
            state: r.get(9)?,
            attempts: r.get(10)?,
            object_key: r.get(11)?,
            last_error: r.get(12)?,
            etag: r.get(13)?,
        })
    }

    fn into_job(self) -> Result<UploadJob, CatalogError> {
        let state = UploadState::parse(&self.state)
            .ok_or_else(|| super::bad_row("upload state", self.state.clone(), "unknown state"))?;
        let attempts = to_u64("upload attempts", self.attempts)?;
        Ok(UploadJob {
            recording_id: parse_id("upload recording_id", self.recording_id)?,
            meeting_id: parse_id("recording meeting_id", self.meeting_id)?,
            creator: parse_id("recording owner", self.creator)?,
            segment: self.segment.into_record()?,
            state,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            object_key: self.object_key,
            last_error: self.last_error,
            etag: self.etag,
        })
    }
}
