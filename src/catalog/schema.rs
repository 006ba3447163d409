//! The catalog's schema, as an append-only list of migrations keyed by `PRAGMA user_version`.
//!
//! Rules for editing: never change a step that has shipped; add a new one. Each step runs in
//! its own transaction together with the `user_version` bump, so a crash mid-migration leaves
//! the previous version intact.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use tracing::info;

use super::CatalogError;

/// Marks the file as a roomrec catalog ("rmrc"), so a stray SQLite file is refused.
pub(crate) const APPLICATION_ID: i64 = 0x726d_7263;

/// Migration `i` takes the catalog from `user_version` i to i + 1.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this code writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1. Times are integer milliseconds since the Unix epoch; sizes and durations are
/// non-negative integers; ids are the protocol's validated ids.
const V1: &str = r#"
-- Every meeting snapshot seen, keyed by meeting id; the latest snapshot wins.
CREATE TABLE meetings (
    id          TEXT PRIMARY KEY NOT NULL,
    version     INTEGER CHECK (version >= 0),
    snapshot    TEXT NOT NULL,              -- protocol::Meeting as JSON
    state       TEXT NOT NULL CHECK (state IN ('active', 'ended')),
    creator     TEXT NOT NULL,
    host        TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);

-- The snapshot applied last, which may be "no meeting" (meeting_id NULL): one row at most.
CREATE TABLE current_meeting (
    only        INTEGER PRIMARY KEY NOT NULL CHECK (only = 1),
    version     INTEGER CHECK (version >= 0),
    meeting_id  TEXT REFERENCES meetings (id),
    saved_at    INTEGER NOT NULL
);

CREATE TABLE recordings (
    id          TEXT PRIMARY KEY NOT NULL,
    meeting_id  TEXT NOT NULL REFERENCES meetings (id),
    kind        TEXT NOT NULL CHECK (kind IN ('cloud', 'local')),
    owner       TEXT NOT NULL,
    started_by  TEXT NOT NULL,
    host        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('recording', 'paused', 'stopped', 'converting',
                    'needs_finalize', 'ready', 'discarded', 'failed', 'deleted')),
    created_at  INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL CHECK (recorded_ms >= 0),
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    shared      INTEGER NOT NULL CHECK (shared IN (0, 1)),
    location    TEXT
);
CREATE INDEX recordings_by_state ON recordings (state);

-- What a recording is cannot change once saved; only how far it got.
CREATE TRIGGER recordings_identity_is_fixed
BEFORE UPDATE OF id, meeting_id, kind, created_at ON recordings
WHEN NEW.id IS NOT OLD.id OR NEW.meeting_id IS NOT OLD.meeting_id
  OR NEW.kind IS NOT OLD.kind OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'a recording''s id, meeting, kind and creation time never change');
END;

-- One row per sealed media file. `path` is relative to the storage folder.
CREATE TABLE segments (
    seq         INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 0),
    path        TEXT NOT NULL UNIQUE,
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    sha256      TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    sealed_at   INTEGER NOT NULL,
    -- Set when the file was removed on purpose (uploaded, discarded, deleted), so that
    -- reconcile does not report it missing. The row stays: it is the history.
    released_at INTEGER
);

-- Which recordings were capturing during each segment (many-to-many).
CREATE TABLE segment_recordings (
    seq          INTEGER NOT NULL REFERENCES segments (seq),
    recording_id TEXT NOT NULL REFERENCES recordings (id),
    PRIMARY KEY (seq, recording_id)
) WITHOUT ROWID;
CREATE INDEX segment_recordings_by_recording ON segment_recordings (recording_id, seq);

-- One upload job per segment of a cloud recording.
CREATE TABLE uploads (
    seq          INTEGER NOT NULL,
    recording_id TEXT NOT NULL,
    object_key   TEXT,
    state        TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'uploading', 'uploaded')),
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_try     INTEGER NOT NULL,
    last_error   TEXT,
    etag         TEXT,
    PRIMARY KEY (seq, recording_id),
    FOREIGN KEY (seq, recording_id) REFERENCES segment_recordings (seq, recording_id)
) WITHOUT ROWID;
CREATE INDEX uploads_by_state ON uploads (state, next_try);

-- Replies to handled commands, so a redelivered command id gets the first answer again.
CREATE TABLE commands (
    id          TEXT PRIMARY KEY NOT NULL,
    reply       TEXT NOT NULL,
    handled_at  INTEGER NOT NULL
);
CREATE INDEX commands_by_time ON commands (handled_at);

-- Messages to publish, written with the change they report and deleted once the broker
-- acknowledged them. AUTOINCREMENT: an id is never reused, so a late ack cannot hit a newer row.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    payload     BLOB NOT NULL,
    retain      INTEGER NOT NULL CHECK (retain IN (0, 1)),
    created_at  INTEGER NOT NULL
);
"#;

/// Version 2: share and delete work on cloud recordings, kept until the store has done it, so
/// a restart between the command and the store's answer neither loses it nor orphans objects.
const V2: &str = r#"
CREATE TABLE recording_ops (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    recording_id TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('share', 'delete')),
    shared       INTEGER CHECK (shared IN (0, 1)),   -- share: the new flag
    keys         TEXT,                               -- delete: JSON array of object keys
    queued_at    INTEGER NOT NULL
);
CREATE INDEX recording_ops_by_recording ON recording_ops (recording_id);
"#;

/// Version 3: the nonces of signed admin commands (`crate::auth`), so a command replayed
/// after a daemon restart is still refused. Scoped by key, so admins never collide.
const V3: &str = r#"
CREATE TABLE signed_nonces (
    key_id      TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    signed_at   INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX signed_nonces_by_time ON signed_nonces (seen_at);
"#;

/// Version 4: whether transcription was in force for a recording (T1), so the transcript can
/// be made after the meeting from the row alone. Existing rows had none.
const V4: &str = r#"
ALTER TABLE recordings ADD COLUMN transcription INTEGER NOT NULL DEFAULT 0
    CHECK (transcription IN (0, 1));
"#;

/// Version 5: what completeness reports are made from (issue 14, item 4): each segment's
/// silent time, and marks of what happened to a recording (started, paused, resumed,
/// stopped with its reason) or to the device (`recording_id` NULL: a device lost or back
/// with its role, the service started). No foreign key: a mark is history, written in the
/// batch of the change it records, whatever order the batch has.
const V5: &str = r#"
ALTER TABLE segments ADD COLUMN silent_ms INTEGER NOT NULL DEFAULT 0 CHECK (silent_ms >= 0);
CREATE TABLE marks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    recording_id TEXT,
    kind         TEXT NOT NULL CHECK (kind IN ('started', 'paused', 'resumed', 'stopped',
                     'device_lost', 'device_back', 'restarted')),
    detail       TEXT
);
CREATE INDEX marks_by_recording ON marks (recording_id, at);
"#;

/// Brings the database at `path` (for messages) up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), CatalogError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    check_identity(conn, path, found)?;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let (from, to) = (index as i64, index as i64 + 1);
        apply_step(conn, step, to).map_err(|source| CatalogError::Migration {
            from,
            to,
            source,
        })?;
        info!(from, to, "catalog schema migrated");
    }
    Ok(())
}

/// Refuses a newer schema (never downgrade) and a foreign SQLite file.
fn check_identity(conn: &Connection, path: &Path, found: i64) -> Result<(), CatalogError> {
    if found > SCHEMA_VERSION {
        return Err(CatalogError::TooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let app_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let empty = found == 0 && app_id == 0 && !has_tables(conn)?;
    if app_id != APPLICATION_ID && !empty {
        return Err(CatalogError::NotACatalog {
            path: path.to_owned(),
            found: app_id,
        });
    }
    Ok(())
}

fn has_tables(conn: &Connection) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table')",
        [],
        |r| r.get(0),
    )
}

fn apply_step(conn: &mut Connection, step: &str, to: i64) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(step)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", to)?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn schema_version_counts_the_migrations() {
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
        let mut conn = Connection::open_in_memory().expect("memory db");
        migrate(&mut conn, Path::new(":memory:")).expect("from empty");
        assert_eq!(version(&conn), SCHEMA_VERSION);
        migrate(&mut conn, Path::new(":memory:")).expect("again: nothing to do");
        assert_eq!(version(&conn), SCHEMA_VERSION);
    }

    #[test]
    fn a_failing_step_leaves_the_previous_version_intact() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        let broken = "CREATE TABLE half_done (x INTEGER); INSERT INTO nowhere VALUES (1);";
        apply_step(&mut conn, broken, 1).expect_err("second statement fails");
        assert_eq!(version(&conn), 0);
        assert!(
            !has_tables(&conn).expect("schema query"),
            "first statement rolled back"
        );
    }
}
