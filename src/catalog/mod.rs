//! The catalog: roomrecd's SQLite file, the one record of what exists and what happened.
//!
//! Owns: the SQLite file, its schema and migrations (`schema`), every row in it (meetings,
//! recordings, sealed segments and their tags, upload jobs, command replies for dedupe, the
//! outbox of messages to publish, the marks of what happened that completeness reports are
//! made from, `marks`), and start-up reconciliation of rows against the storage
//! folder (`reconcile`).
//! Must not touch: the content of media files (it only stats them, and never deletes any),
//! MQTT (it stores outbox rows; `control` publishes them), the recording rules (it stores what
//! the engine decided; the one state change it makes itself is L5's restart rule in
//! `reconcile`, because it must happen before the engine exists).
//!
//! Synchronous on purpose: one thread owns the [`Catalog`] (the daemon runs it in a blocking
//! task). Every write is one transaction, committed with `synchronous=FULL` in WAL mode, so a
//! row that `seal_segment` or `apply` returned `Ok` for survives a power cut.

mod error;
mod marks;
mod pending_work;
mod reconcile;
mod retention;
mod schema;
mod uploads;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use tracing::{debug, info, warn};

use crate::protocol::{
    Id, Meeting, MeetingSnapshot, MeetingState, RecordingInfo, RecordingKind, RecordingState,
    Timestamp,
};

pub use error::CatalogError;
pub use pending_work::{PendingOp, PendingWork};
pub use reconcile::{FileProblem, OrphanFile, ReconcileReport, SegmentProblem};
pub use schema::SCHEMA_VERSION;
pub use uploads::{UploadJob, UploadState};

/// How long a write waits for a reader (for example `roomrecctl`) to let go of the file.
const BUSY_TIMEOUT_MS: i64 = 5_000;

/// One change for [`Catalog::apply`]; a batch of them is saved in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The meeting snapshot just applied; `meeting: None` is "no meeting".
    SaveMeeting {
        version: Option<u64>,
        meeting: Option<Meeting>,
        at: Timestamp,
    },
    /// Insert or update a recording. Its meeting must already be saved (earlier in the same
    /// batch is fine); its id, meeting, kind and creation time must not change.
    SaveRecording(RecordingInfo),
    /// The reply to a handled command, for de-duplication. A second reply for the same id is
    /// ignored: the first answer is the one repeated.
    StoreReply {
        command_id: String,
        reply_json: String,
        at: Timestamp,
    },
    /// A message to publish under the topic prefix. A retained message supersedes any pending
    /// retained message on the same topic (the broker would keep only the last one anyway).
    Outbox {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    /// What happened to a recording (`Some`) or to the device (`None`), for its completeness
    /// report.
    Mark {
        recording_id: Option<Id>,
        mark: crate::completeness::Mark,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::SaveMeeting { .. } => "save_meeting",
            Op::SaveRecording(_) => "save_recording",
            Op::StoreReply { .. } => "store_reply",
            Op::Outbox { .. } => "outbox",
            Op::Mark { .. } => "mark",
        }
    }
}

/// A sealed media file. `path` is relative to the storage folder (e.g. `segments/00000042.ts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRecord {
    pub seq: u64,
    pub path: String,
    pub bytes: u64,
    pub duration_ms: u64,
    /// SHA-256 of the file, 64 lowercase hex digits.
    pub sha256: String,
    pub sealed_at: Timestamp,
    /// How much of it sounded below -60 dBFS RMS (the completeness report's silent share).
    pub silent_ms: u64,
}

/// A message waiting in the outbox until the broker acknowledges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    /// Suffix below the device's topic prefix, e.g. `events`.
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub created_at: Timestamp,
}

/// The open catalog. Not `Sync`: one thread owns it.
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    /// For error messages; `:memory:` for in-memory catalogs.
    path: PathBuf,
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        let conn = Connection::open(path).map_err(|source| CatalogError::Open {
            path: path.to_owned(),
            source,
        })?;
        let catalog = Catalog::prepare(conn, path, true)?;
        info!(path = %path.display(), version = SCHEMA_VERSION, "catalog open");
        Ok(catalog)
    }

    /// A private catalog in memory, for tests.
    pub fn open_in_memory() -> Result<Catalog, CatalogError> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| CatalogError::Open {
            path: path.to_owned(),
            source,
        })?;
        Catalog::prepare(conn, path, false)
    }

    fn prepare(mut conn: Connection, path: &Path, on_disk: bool) -> Result<Catalog, CatalogError> {
        // The pragma, not `Connection::busy_timeout`: that one also calls
        // `sqlite3_set_clientdata`, which the system SQLite (3.40 < 3.44) lacks, and the
        // binary would not link.
        conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
        if on_disk {
            enable_wal(&conn)?;
        }
        // FULL: in WAL mode, NORMAL may lose the last commits on power loss; a sealed
        // segment's row must not be among them.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // The schema is ours alone; do not let it run functions with side effects.
        conn.pragma_update(None, "trusted_schema", false)?;
        schema::migrate(&mut conn, path)?;
        Ok(Catalog {
            conn,
            path: path.to_owned(),
        })
    }

    /// The schema version of the open file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, CatalogError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Saves `ops` in one transaction: all of them or none. Returns the ids of the outbox rows
    /// it added, in the order of the `Op::Outbox` entries.
    pub fn apply(&mut self, ops: &[Op]) -> Result<Vec<i64>, CatalogError> {
        let tx = self.write()?;
        let now = Timestamp::now();
        let mut outbox_ids = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            apply_op(&tx, op, now, &mut outbox_ids).map_err(|e| CatalogError::Op {
                index,
                op: op.name(),
                source: Box::new(e),
            })?;
        }
        tx.commit()?;
        debug!(
            ops = ops.len(),
            outbox = outbox_ids.len(),
            "catalog batch saved"
        );
        Ok(outbox_ids)
    }

    /// Records a sealed segment, its recording tags and (when `cloud` is given) its upload job
    /// in one transaction. Call after the file and its folder were fsynced, and before telling
    /// the engine. Sealing the same segment again with identical data is a no-op.
    pub fn seal_segment(
        &mut self,
        seg: &SegmentRecord,
        recordings: &[Id],
        cloud: Option<&Id>,
    ) -> Result<(), CatalogError> {
        check_relative_path(&seg.path)?;
        check_digest(seg)?;
        let tags: BTreeSet<&Id> = recordings.iter().collect();
        let tx = self.write()?;
        let kinds = tagged_kinds(&tx, seg.seq, &tags)?;
        check_cloud(seg.seq, &kinds, cloud)?;
        if let Some(existing) = segment_by_seq(&tx, seg.seq)? {
            same_segment(&tx, &existing, seg, &tags)?;
            debug!(seq = seg.seq, "segment already sealed with identical data");
            return Ok(());
        }
        insert_segment(&tx, seg, &tags, cloud)?;
        tx.commit()?;
        info!(seq = seg.seq, path = %seg.path, bytes = seg.bytes, recordings = ?tags, cloud = ?cloud, "segment sealed");
        Ok(())
    }

    /// Marks a segment's file as removed on purpose (uploaded and released, discarded, deleted),
    /// so reconcile stops expecting it. Returns false if there is no such segment.
    pub fn mark_segment_released(&mut self, seq: u64, at: Timestamp) -> Result<bool, CatalogError> {
        let n = self.conn.execute(
            "UPDATE segments SET released_at = ?2 WHERE seq = ?1 AND released_at IS NULL",
            params![to_i64("segment seq", seq)?, at.0],
        )?;
        if n == 0 {
            let known = segment_by_seq(&self.conn, seq)?.is_some();
            return Ok(known);
        }
        info!(seq, "segment file released");
        Ok(true)
    }

    // -----------------------------------------------------------------------------------------
    // Queries

    pub fn recording(&self, id: &Id) -> Result<Option<RecordingInfo>, CatalogError> {
        let found = self.query_recordings("WHERE id = ?1", params![id.as_str()])?;
        Ok(found.into_iter().next())
    }

    /// All recordings, or those in `state`; newest first.
    pub fn recordings(
        &self,
        state: Option<RecordingState>,
    ) -> Result<Vec<RecordingInfo>, CatalogError> {
        match state {
            Some(s) => self.query_recordings("WHERE state = ?1", params![s.as_str()]),
            None => self.query_recordings("", params![]),
        }
    }

    /// Recordings that are `recording` or `paused`; newest first.
    pub fn live_recordings(&self) -> Result<Vec<RecordingInfo>, CatalogError> {
        self.query_recordings("WHERE state IN ('recording', 'paused')", params![])
    }

    /// The segments tagged with recording `id`, by sequence number.
    pub fn segments_of(&self, id: &Id) -> Result<Vec<SegmentRecord>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.seq, s.path, s.bytes, s.duration_ms, s.sha256, s.sealed_at, s.silent_ms
             FROM segments s JOIN segment_recordings t ON t.seq = s.seq
             WHERE t.recording_id = ?1 ORDER BY s.seq",
        )?;
        let raws = stmt
            .query_map([id.as_str()], RawSegment::read)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawSegment::into_record).collect()
    }

    /// 1 + the largest `n` among recording ids `r-<n>`, or 1: seeds `Engine::new`.
    pub fn next_recording_number(&self) -> Result<u64, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM recordings WHERE id GLOB 'r-[0-9]*'")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let largest = ids
            .iter()
            .filter_map(|id| id.strip_prefix("r-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        Ok(largest.saturating_add(1))
    }

    /// 1 + the largest segment sequence number, or 1: seeds media's segment numbering.
    pub fn next_segment_seq(&self) -> Result<u64, CatalogError> {
        let largest: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(seq), 0) FROM segments", [], |r| {
                    r.get(0)
                })?;
        Ok(to_u64("segment seq", largest)?.saturating_add(1))
    }

    /// The stored reply to command `command_id`, if it was handled before.
    pub fn command_reply(&self, command_id: &str) -> Result<Option<String>, CatalogError> {
        Ok(self
            .conn
            .query_row(
                "SELECT reply FROM commands WHERE id = ?1",
                [command_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Messages not yet acknowledged by the broker, oldest first.
    pub fn pending_outbox(&self) -> Result<Vec<OutboxItem>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, topic, payload, retain, created_at FROM outbox ORDER BY id")?;
        let items = stmt
            .query_map([], |r| {
                Ok(OutboxItem {
                    id: r.get(0)?,
                    topic: r.get(1)?,
                    payload: r.get(2)?,
                    retain: r.get(3)?,
                    created_at: Timestamp(r.get(4)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(items)
    }

    /// The broker acknowledged outbox row `id`: delete it. Returns false if it was already gone
    /// (acknowledged before, or superseded by a newer retained message).
    pub fn ack_outbox(&mut self, id: i64) -> Result<bool, CatalogError> {
        let n = self
            .conn
            .execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        debug!(outbox_id = id, found = n > 0, "outbox message acknowledged");
        Ok(n > 0)
    }

    /// Upload jobs not finished yet, and the bytes of their segments: `(jobs, bytes)`.
    pub fn upload_backlog(&self) -> Result<(u64, u64), CatalogError> {
        let (jobs, bytes): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(s.bytes), 0)
             FROM uploads u JOIN segments s ON s.seq = u.seq WHERE u.state != 'uploaded'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((to_u64("upload jobs", jobs)?, to_u64("upload bytes", bytes)?))
    }

    /// When the oldest segment still waiting for an upload was sealed; `None` when none waits
    /// (the `upload_backlog` alarm's age).
    pub fn oldest_pending_upload(&self) -> Result<Option<Timestamp>, CatalogError> {
        let sealed_at: Option<i64> = self.conn.query_row(
            "SELECT MIN(s.sealed_at)
             FROM uploads u JOIN segments s ON s.seq = u.seq WHERE u.state != 'uploaded'",
            [],
            |r| r.get(0),
        )?;
        Ok(sealed_at.map(Timestamp))
    }

    /// The meeting snapshot saved last (possibly "no meeting"), or `None` if none ever was.
    pub fn last_meeting(&self) -> Result<Option<MeetingSnapshot>, CatalogError> {
        let row: Option<(Option<i64>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT c.version, m.snapshot FROM current_meeting c
                 LEFT JOIN meetings m ON m.id = c.meeting_id WHERE c.only = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((version, snapshot)) = row else {
            return Ok(None);
        };
        let version = version.map(|v| to_u64("meeting version", v)).transpose()?;
        let meeting = snapshot.map(|json| parse_meeting(&json)).transpose()?;
        Ok(Some(MeetingSnapshot { version, meeting }))
    }

    /// Runs SQLite's integrity and foreign-key checks; `Corrupt` lists what they found.
    pub fn integrity_check(&self) -> Result<(), CatalogError> {
        let mut problems = self.pragma_rows("PRAGMA integrity_check", |r| r.get::<_, String>(0))?;
        problems.retain(|p| p != "ok");
        let fk = self.pragma_rows("PRAGMA foreign_key_check", |r| {
            Ok(format!(
                "row {} of {} points to a missing {} row",
                r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                r.get::<_, String>(0)?,
                r.get::<_, String>(2)?
            ))
        })?;
        problems.extend(fk);
        if problems.is_empty() {
            return Ok(());
        }
        warn!(path = %self.path.display(), ?problems, "catalog integrity check failed");
        Err(CatalogError::Corrupt { problems })
    }

    // -----------------------------------------------------------------------------------------
    // Signed commands

    /// Records the nonce of a verified signed command; `false` if `key_id` used it before
    /// (a replay). One statement, so two deliveries can never both claim it.
    pub fn claim_nonce(
        &mut self,
        key_id: &str,
        nonce: &str,
        signed_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, CatalogError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO signed_nonces (key_id, nonce, signed_at, seen_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![key_id, nonce, signed_at.0, now.0],
        )?;
        Ok(n == 1)
    }

    /// Forgets nonces first seen before `older_than`. Returns how many were removed.
    pub fn prune_nonces(&mut self, older_than: Timestamp) -> Result<usize, CatalogError> {
        let n = self.conn.execute(
            "DELETE FROM signed_nonces WHERE seen_at < ?1",
            [older_than.0],
        )?;
        debug!(removed = n, "signed-command nonces pruned");
        Ok(n)
    }

    // -----------------------------------------------------------------------------------------
    // Housekeeping

    /// Forgets replies to commands handled before `older_than`, keeping the dedupe log bounded.
    /// Returns how many were removed.
    pub fn prune_commands(&mut self, older_than: Timestamp) -> Result<usize, CatalogError> {
        let n = self
            .conn
            .execute("DELETE FROM commands WHERE handled_at < ?1", [older_than.0])?;
        debug!(removed = n, "command replies pruned");
        Ok(n)
    }

    // -----------------------------------------------------------------------------------------
    // Helpers

    /// A write transaction that takes the lock up front, so it never fails half-way on BUSY.
    fn write(&mut self) -> Result<Transaction<'_>, CatalogError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    fn query_recordings(
        &self,
        filter: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<RecordingInfo>, CatalogError> {
        let sql = format!(
            "SELECT id, meeting_id, kind, owner, started_by, host, state, created_at,
                    recorded_ms, bytes, shared, location, transcription
             FROM recordings {filter} ORDER BY created_at DESC, rowid DESC"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let raws = stmt
            .query_map(params, RawRecording::read)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawRecording::into_info).collect()
    }

    fn pragma_rows<T>(
        &self,
        sql: &str,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, CatalogError> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], f)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn enable_wal(conn: &Connection) -> Result<(), CatalogError> {
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(CatalogError::NoWal { mode });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Batch ops

fn apply_op(
    tx: &Transaction<'_>,
    op: &Op,
    now: Timestamp,
    outbox_ids: &mut Vec<i64>,
) -> Result<(), CatalogError> {
    match op {
        Op::SaveMeeting {
            version,
            meeting,
            at,
        } => save_meeting(tx, *version, meeting.as_ref(), *at),
        Op::SaveRecording(info) => save_recording(tx, info),
        Op::StoreReply {
            command_id,
            reply_json,
            at,
        } => store_reply(tx, command_id, reply_json, *at),
        Op::Outbox {
            topic,
            payload,
            retain,
        } => {
            outbox_ids.push(add_outbox(tx, topic, payload, *retain, now)?);
            Ok(())
        }
        Op::Mark { recording_id, mark } => marks::insert(tx, recording_id.as_ref(), mark),
    }
}

fn save_meeting(
    tx: &Transaction<'_>,
    version: Option<u64>,
    meeting: Option<&Meeting>,
    at: Timestamp,
) -> Result<(), CatalogError> {
    let version = version.map(|v| to_i64("meeting version", v)).transpose()?;
    if let Some(m) = meeting {
        let state = match m.state {
            MeetingState::Active => "active",
            MeetingState::Ended => "ended",
        };
        tx.execute(
            "INSERT INTO meetings (id, version, snapshot, state, creator, host, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version,
                 snapshot = excluded.snapshot, state = excluded.state,
                 creator = excluded.creator, host = excluded.host, last_seen = excluded.last_seen",
            params![
                m.meeting_id.as_str(),
                version,
                serde_json::to_string(m)?,
                state,
                m.creator.as_str(),
                m.host.as_str(),
                at.0
            ],
        )?;
    }
    tx.execute(
        "INSERT INTO current_meeting (only, version, meeting_id, saved_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (only) DO UPDATE SET version = excluded.version,
             meeting_id = excluded.meeting_id, saved_at = excluded.saved_at",
        params![version, meeting.map(|m| m.meeting_id.as_str()), at.0],
    )?;
    Ok(())
}

fn save_recording(tx: &Transaction<'_>, r: &RecordingInfo) -> Result<(), CatalogError> {
    // DO UPDATE also rewrites the identity columns so that the trigger refuses a change.
    tx.execute(
        "INSERT INTO recordings (id, meeting_id, kind, owner, started_by, host, state,
             created_at, recorded_ms, bytes, shared, location, transcription)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (id) DO UPDATE SET meeting_id = excluded.meeting_id,
             kind = excluded.kind, created_at = excluded.created_at, owner = excluded.owner,
             started_by = excluded.started_by, host = excluded.host, state = excluded.state,
             recorded_ms = excluded.recorded_ms, bytes = excluded.bytes,
             shared = excluded.shared, location = excluded.location,
             transcription = excluded.transcription",
        params![
            r.recording_id.as_str(),
            r.meeting_id.as_str(),
            r.kind.as_str(),
            r.owner.as_str(),
            r.started_by.as_str(),
            r.host.as_str(),
            r.state.as_str(),
            r.created_at.0,
            to_i64("recorded_ms", r.recorded_ms)?,
            to_i64("recording bytes", r.bytes)?,
            r.shared,
            r.location,
            r.transcription
        ],
    )?;
    debug!(recording_id = %r.recording_id, state = r.state.as_str(), "recording saved");
    Ok(())
}

fn store_reply(
    tx: &Transaction<'_>,
    command_id: &str,
    reply_json: &str,
    at: Timestamp,
) -> Result<(), CatalogError> {
    let n = tx.execute(
        "INSERT INTO commands (id, reply, handled_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO NOTHING",
        params![command_id, reply_json, at.0],
    )?;
    if n == 0 {
        // The control layer should have answered from command_reply() instead of executing.
        warn!(
            command_id,
            "a reply for this command id is already stored; keeping the first"
        );
    }
    Ok(())
}

fn add_outbox(
    tx: &Transaction<'_>,
    topic: &str,
    payload: &[u8],
    retain: bool,
    now: Timestamp,
) -> Result<i64, CatalogError> {
    check_topic(topic)?;
    if retain {
        tx.execute(
            "DELETE FROM outbox WHERE topic = ?1 AND retain = 1",
            [topic],
        )?;
    }
    tx.execute(
        "INSERT INTO outbox (topic, payload, retain, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![topic, payload, retain, now.0],
    )?;
    Ok(tx.last_insert_rowid())
}

fn check_topic(topic: &str) -> Result<(), CatalogError> {
    let reason = if topic.is_empty() {
        "it is empty"
    } else if topic.starts_with('/') || topic.ends_with('/') {
        "it starts or ends with '/'"
    } else if topic.contains(['+', '#', '\0']) {
        "it contains an MQTT wildcard or NUL"
    } else {
        return Ok(());
    };
    Err(CatalogError::BadTopic {
        topic: topic.to_owned(),
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Segments

/// Accepts only canonical relative paths made of plain names, so that joining the path to the
/// storage folder can never leave it, and so reconcile can compare paths as strings.
fn check_relative_path(path: &str) -> Result<(), CatalogError> {
    let refuse = |reason| {
        Err(CatalogError::UnsafePath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return refuse("it is empty");
    }
    if path.contains(['\0', '\\']) {
        return refuse("it contains a NUL byte or a backslash");
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => {}
            Component::ParentDir => return refuse("it contains a '..' component"),
            Component::RootDir | Component::Prefix(_) => return refuse("it is absolute"),
            Component::CurDir => return refuse("it contains a '.' component"),
        }
    }
    let canonical: PathBuf = Path::new(path).components().collect();
    if canonical.to_str() != Some(path) {
        return refuse("it is not in canonical form (doubled or trailing '/', or '.')");
    }
    Ok(())
}

fn check_digest(seg: &SegmentRecord) -> Result<(), CatalogError> {
    let ok = seg.sha256.len() == 64
        && seg
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        return Ok(());
    }
    Err(CatalogError::BadDigest {
        seq: seg.seq,
        sha256: seg.sha256.clone(),
    })
}

/// The kind of each tagged recording; every one must already be in the catalog.
fn tagged_kinds(
    tx: &Transaction<'_>,
    seq: u64,
    tags: &BTreeSet<&Id>,
) -> Result<Vec<(Id, RecordingKind)>, CatalogError> {
    let mut stmt = tx.prepare("SELECT kind FROM recordings WHERE id = ?1")?;
    let mut kinds = Vec::with_capacity(tags.len());
    for id in tags {
        let kind: Option<String> = stmt.query_row([id.as_str()], |r| r.get(0)).optional()?;
        let Some(kind) = kind else {
            return Err(CatalogError::UnknownRecording {
                seq,
                recording: (*id).clone(),
            });
        };
        kinds.push(((*id).clone(), parse_kind(kind)?));
    }
    Ok(kinds)
}

/// `cloud` must be exactly the cloud recording among the tags, if there is one.
fn check_cloud(
    seq: u64,
    kinds: &[(Id, RecordingKind)],
    cloud: Option<&Id>,
) -> Result<(), CatalogError> {
    let problem = |recording: &Id, problem| {
        Err(CatalogError::CloudTag {
            seq,
            recording: recording.clone(),
            problem,
        })
    };
    if let Some(c) = cloud {
        match kinds.iter().find(|(id, _)| id == c) {
            None => return problem(c, "is not among the segment's recordings"),
            Some((_, RecordingKind::Local)) => return problem(c, "is a local recording"),
            Some((_, RecordingKind::Cloud)) => {}
        }
    }
    for (id, kind) in kinds {
        if *kind == RecordingKind::Cloud && Some(id) != cloud {
            return problem(id, "is tagged but was not passed as `cloud`");
        }
    }
    Ok(())
}

fn segment_by_seq(conn: &Connection, seq: u64) -> Result<Option<SegmentRecord>, CatalogError> {
    let raw = conn
        .query_row(
            "SELECT seq, path, bytes, duration_ms, sha256, sealed_at, silent_ms FROM segments WHERE seq = ?1",
            [to_i64("segment seq", seq)?],
            RawSegment::read,
        )
        .optional()?;
    raw.map(RawSegment::into_record).transpose()
}

/// Sealing twice is fine only with the very same data: anything else means a reused number.
fn same_segment(
    tx: &Transaction<'_>,
    existing: &SegmentRecord,
    seg: &SegmentRecord,
    tags: &BTreeSet<&Id>,
) -> Result<(), CatalogError> {
    let field = if existing.path != seg.path {
        "path"
    } else if existing.bytes != seg.bytes {
        "size"
    } else if existing.duration_ms != seg.duration_ms {
        "duration"
    } else if existing.sha256 != seg.sha256 {
        "sha256"
    } else if existing.sealed_at != seg.sealed_at {
        "sealed_at"
    } else if segment_tags(tx, seg.seq)? != tags.iter().map(|id| id.to_string()).collect() {
        "set of recordings"
    } else {
        return Ok(());
    };
    Err(CatalogError::SegmentConflict {
        seq: seg.seq,
        field,
    })
}

fn segment_tags(tx: &Transaction<'_>, seq: u64) -> Result<BTreeSet<String>, CatalogError> {
    let mut stmt = tx.prepare("SELECT recording_id FROM segment_recordings WHERE seq = ?1")?;
    let tags = stmt
        .query_map([to_i64("segment seq", seq)?], |r| r.get(0))?
        .collect::<Result<BTreeSet<String>, _>>()?;
    Ok(tags)
}

fn insert_segment(
    tx: &Transaction<'_>,
    seg: &SegmentRecord,
    tags: &BTreeSet<&Id>,
    cloud: Option<&Id>,
) -> Result<(), CatalogError> {
    let seq = to_i64("segment seq", seg.seq)?;
    let taken: Option<i64> = tx
        .query_row(
            "SELECT seq FROM segments WHERE path = ?1",
            [&seg.path],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(other) = taken {
        return Err(CatalogError::PathTaken {
            seq: seg.seq,
            path: seg.path.clone(),
            other,
        });
    }
    tx.execute(
        "INSERT INTO segments (seq, path, bytes, duration_ms, sha256, sealed_at, silent_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seq,
            seg.path,
            to_i64("segment bytes", seg.bytes)?,
            to_i64("segment duration_ms", seg.duration_ms)?,
            seg.sha256,
            seg.sealed_at.0,
            to_i64("segment silent_ms", seg.silent_ms)?
        ],
    )?;
    let mut tag =
        tx.prepare("INSERT INTO segment_recordings (seq, recording_id) VALUES (?1, ?2)")?;
    for id in tags {
        tag.execute(params![seq, id.as_str()])?;
    }
    if let Some(c) = cloud {
        tx.execute(
            "INSERT INTO uploads (seq, recording_id, next_try) VALUES (?1, ?2, ?3)",
            params![seq, c.as_str(), seg.sealed_at.0],
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rows and conversions

/// A `recordings` row as SQLite returns it, before validation.
struct RawRecording {
    id: String,
    meeting_id: String,
    kind: String,
    owner: String,
    started_by: String,
    host: String,
    state: String,
    created_at: i64,
    recorded_ms: i64,
    bytes: i64,
    shared: bool,
    location: Option<String>,
    transcription: bool,
}

impl RawRecording {
    fn read(r: &Row<'_>) -> rusqlite::Result<RawRecording> {
        Ok(RawRecording {
            id: r.get(0)?,
            meeting_id: r.get(1)?,
            kind: r.get(2)?,
            owner: r.get(3)?,
            started_by: r.get(4)?,
            host: r.get(5)?,
            state: r.get(6)?,
            created_at: r.get(7)?,
            recorded_ms: r.get(8)?,
            bytes: r.get(9)?,
            shared: r.get(10)?,
            location: r.get(11)?,
            transcription: r.get(12)?,
        })
    }

    fn into_info(self) -> Result<RecordingInfo, CatalogError> {
        Ok(RecordingInfo {
            recording_id: parse_id("recording id", self.id)?,
            meeting_id: parse_id("recording meeting_id", self.meeting_id)?,
            kind: parse_kind(self.kind)?,
            owner: parse_id("recording owner", self.owner)?,
            started_by: parse_id("recording started_by", self.started_by)?,
            host: parse_id("recording host", self.host)?,
            state: parse_state(self.state)?,
            created_at: Timestamp(self.created_at),
            recorded_ms: to_u64("recorded_ms", self.recorded_ms)?,
            bytes: to_u64("recording bytes", self.bytes)?,
            shared: self.shared,
            location: self.location,
            transcription: self.transcription,
        })
    }
}

/// A `segments` row as SQLite returns it, before validation.
struct RawSegment {
    seq: i64,
    path: String,
    bytes: i64,
    duration_ms: i64,
    sha256: String,
    sealed_at: i64,
    silent_ms: i64,
}

impl RawSegment {
    fn read(r: &Row<'_>) -> rusqlite::Result<RawSegment> {
        Ok(RawSegment {
            seq: r.get(0)?,
            path: r.get(1)?,
            bytes: r.get(2)?,
            duration_ms: r.get(3)?,
            sha256: r.get(4)?,
            sealed_at: r.get(5)?,
            // By name: the upload jobs' query lists it last, after its own columns.
            silent_ms: r.get("silent_ms")?,
        })
    }

    fn into_record(self) -> Result<SegmentRecord, CatalogError> {
        Ok(SegmentRecord {
            seq: to_u64("segment seq", self.seq)?,
            path: self.path,
            bytes: to_u64("segment bytes", self.bytes)?,
            duration_ms: to_u64("segment duration_ms", self.duration_ms)?,
            sha256: self.sha256,
            sealed_at: Timestamp(self.sealed_at),
            silent_ms: to_u64("segment silent_ms", self.silent_ms)?,
        })
    }
}

fn to_i64(what: &'static str, value: u64) -> Result<i64, CatalogError> {
    i64::try_from(value).map_err(|_| CatalogError::OutOfRange { what, value })
}

fn to_u64(what: &'static str, value: i64) -> Result<u64, CatalogError> {
    u64::try_from(value).map_err(|_| bad_row(what, value.to_string(), "negative"))
}

pub(super) fn parse_id(what: &'static str, value: String) -> Result<Id, CatalogError> {
    Id::parse(&value).map_err(|detail| bad_row(what, value, detail))
}

fn parse_kind(value: String) -> Result<RecordingKind, CatalogError> {
    match value.as_str() {
        "cloud" => Ok(RecordingKind::Cloud),
        "local" => Ok(RecordingKind::Local),
        _ => Err(bad_row("recording kind", value, "not cloud or local")),
    }
}

fn parse_state(value: String) -> Result<RecordingState, CatalogError> {
    RecordingState::parse(&value).ok_or_else(|| bad_row("recording state", value, "unknown state"))
}

fn parse_meeting(json: &str) -> Result<Meeting, CatalogError> {
    serde_json::from_str(json)
        .map_err(|e| bad_row("meeting snapshot", json.to_owned(), e.to_string()))
}

pub(super) fn bad_row(
    what: &'static str,
    value: String,
    detail: impl Into<String>,
) -> CatalogError {
    CatalogError::BadRow {
        what,
        value,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_are_accepted() {
        for ok in [
            "segments/00000001.ts",
            "a",
            "segments/day-1/x.mp4",
            "seg..ments/a",
        ] {
            check_relative_path(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn escaping_paths_are_refused_with_a_reason() {
        for bad in [
            "..", "a/..", "/a", "a/./b", "a//b", "a/", "a\\b", "a\0b", "",
        ] {
            let err = check_relative_path(bad).expect_err(bad);
            assert!(err.to_string().contains("refused because"), "{bad}: {err}");
        }
    }

    #[test]
    fn cloud_tag_must_match_the_tagged_cloud_recording() {
        let id = |s| Id::parse(s).expect("id");
        let kinds = [
            (id("r-1"), RecordingKind::Cloud),
            (id("r-2"), RecordingKind::Local),
        ];
        check_cloud(1, &kinds, Some(&id("r-1"))).expect("consistent");
        assert!(
            check_cloud(1, &kinds, None).is_err(),
            "cloud tag without job"
        );
        assert!(
            check_cloud(1, &kinds, Some(&id("r-2"))).is_err(),
            "local as cloud"
        );
        assert!(
            check_cloud(1, &kinds[1..], Some(&id("r-1"))).is_err(),
            "not tagged"
        );
        check_cloud(1, &kinds[1..], None).expect("local only");
    }

    #[test]
    fn digests_must_be_lowercase_hex_of_the_right_length() {
        let mut seg = SegmentRecord {
            seq: 1,
            path: "segments/00000001.ts".into(),
            bytes: 1,
            duration_ms: 1,
            sha256: "0f".repeat(32),
            sealed_at: Timestamp(0),
            silent_ms: 0,
        };
        check_digest(&seg).expect("valid");
        for bad in ["0F".repeat(32), "0f".repeat(31), "zz".repeat(32)] {
            seg.sha256 = bad;
            assert!(check_digest(&seg).is_err(), "{}", seg.sha256);
        }
    }
}
