//! The catalog's error type: every message says what went wrong and what to do about it.

use std::path::PathBuf;

use crate::protocol::Id;

/// Everything the catalog can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "cannot open the catalog at {path}: {source}; check that its folder exists, is \
         writable by roomrecd and is on a local filesystem"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "the catalog at {path} has schema version {found}, newer than version {supported} that \
         this roomrecd understands; run the roomrecd release that wrote it (a catalog is never \
         downgraded) or restore a backup of the catalog"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "{path} is an SQLite file but not a roomrec catalog (application_id {found:#x}); point \
         the catalog setting at the right file or move this one away"
    )]
    NotACatalog { path: PathBuf, found: i64 },

    #[error(
        "the catalog could not switch to WAL journaling (journal_mode is {mode:?}); put the \
         catalog on a local filesystem that supports shared memory (not NFS or a FAT stick)"
    )]
    NoWal { mode: String },

    #[error(
        "migrating the catalog from version {from} to {to} failed: {source}; the catalog was \
         left at version {from}; check free disk space and report this with the log"
    )]
    Migration {
        from: i64,
        to: i64,
        source: rusqlite::Error,
    },

    #[error(
        "catalog batch op #{index} ({op}) failed, so nothing of the batch was saved: {source}"
    )]
    Op {
        index: usize,
        op: &'static str,
        source: Box<CatalogError>,
    },

    #[error(
        "segment path {path:?} is refused because {reason}; segment paths must be plain \
         relative paths inside the storage folder, like \"segments/00000042.ts\""
    )]
    UnsafePath { path: String, reason: &'static str },

    #[error(
        "segment {seq} is already in the catalog with a different {field}; a sequence number \
         must never be reused (seed media from next_segment_seq() after reconcile)"
    )]
    SegmentConflict { seq: u64, field: &'static str },

    #[error(
        "segment {seq} cannot use path {path:?}: segment {other} already has it; media must \
         name each segment file after its own sequence number"
    )]
    PathTaken { seq: u64, path: String, other: i64 },

    #[error(
        "segment {seq} is tagged with recording {recording}, which the catalog does not know; \
         save the recording (Op::SaveRecording) before sealing its segments"
    )]
    UnknownRecording { seq: u64, recording: Id },

    #[error(
        "segment {seq}: cloud recording {recording} {problem}; pass the tagged cloud recording \
         as `cloud` so its upload job is queued"
    )]
    CloudTag {
        seq: u64,
        recording: Id,
        problem: &'static str,
    },

    #[error("segment {seq}: sha256 {sha256:?} is not 64 lowercase hex digits; pass hex::encode of the SHA-256 digest")]
    BadDigest { seq: u64, sha256: String },

    #[error(
        "outbox topic {topic:?} is refused because {reason}; use a suffix below the device \
         prefix such as \"events\" or \"state\""
    )]
    BadTopic { topic: String, reason: &'static str },

    #[error("{what} = {value} does not fit in the catalog's signed 64-bit integers; this is a bug in the caller")]
    OutOfRange { what: &'static str, value: u64 },

    #[error(
        "the catalog holds a value it cannot read ({what} = {value:?}: {detail}); the file was \
         changed outside roomrecd: run the integrity check and restore a backup if it fails"
    )]
    BadRow {
        what: &'static str,
        value: String,
        detail: String,
    },

    #[error("cannot encode the meeting snapshot as JSON: {0}; this is a bug, report it")]
    Json(#[from] serde_json::Error),

    #[error(
        "the catalog failed its integrity check ({}); stop roomrecd, copy the catalog aside, \
         and restore a backup or start a new catalog",
        problems.join("; ")
    )]
    Corrupt { problems: Vec<String> },

    #[error("cannot inspect {path} while reconciling the storage folder: {source}; check its permissions")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "the catalog database failed: {0}; check free disk space and the catalog file's \
         permissions, then run the integrity check"
    )]
    Sqlite(#[from] rusqlite::Error),
}
