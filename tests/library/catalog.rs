//! The catalog against real SQLite files in temp folders: migrations, atomic batches, dedupe,
//! segments and their upload jobs, and start-up reconciliation (rule L5).

use std::fs;
use std::path::Path;

use roomrec::catalog::{Catalog, CatalogError, FileProblem, Op, SegmentRecord, SCHEMA_VERSION};
use roomrec::protocol::{Id, RecordingInfo, RecordingKind, RecordingState, Timestamp};
use rusqlite::Connection;
use tempfile::TempDir;

use crate::common::records::{id, meeting, T0};

fn save_meeting(m: &str, version: u64) -> Op {
    Op::SaveMeeting {
        version: Some(version),
        meeting: Some(meeting(m)),
        at: Timestamp(T0),
    }
}

fn rec(r: &str, kind: RecordingKind, state: RecordingState, created: i64) -> RecordingInfo {
    RecordingInfo {
        recording_id: id(r),
        meeting_id: id("m-1"),
        kind,
        owner: id("u-1"),
        started_by: id("u-2"),
        host: id("u-1"),
        state,
        created_at: Timestamp(T0 + created),
        recorded_ms: 0,
        bytes: 0,
        shared: false,
        location: None,
        transcription: false,
    }
}

fn seg(seq: u64) -> SegmentRecord {
    SegmentRecord {
        seq,
        path: format!("segments/{seq:08}.ts"),
        bytes: 1000 + seq,
        duration_ms: 4000,
        sha256: "ab".repeat(32),
        sealed_at: Timestamp(T0 + seq as i64),
        silent_ms: 0,
    }
}

fn outbox(topic: &str, payload: &str, retain: bool) -> Op {
    Op::Outbox {
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
        retain,
    }
}

/// A catalog file in a fresh temp folder, holding meeting m-1 and the given recordings.
fn catalog_with(recordings: &[RecordingInfo]) -> (TempDir, Catalog) {
    let dir = TempDir::new().expect("temp dir");
    let mut cat = Catalog::open(&dir.path().join("catalog.db")).expect("open");
    let mut ops = vec![save_meeting("m-1", 1)];
    ops.extend(recordings.iter().cloned().map(Op::SaveRecording));
    cat.apply(&ops).expect("seed");
    (dir, cat)
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).expect("raw connection")
}

// -------------------------------------------------------------------------------------------
// Opening and migrations

#[test]
fn migrates_an_empty_file_and_reopens_idempotently() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let mut cat = Catalog::open(&path).unwrap();
        assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
        cat.apply(&[save_meeting("m-1", 1)]).unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(
        cat.last_meeting().unwrap().is_some(),
        "data kept across reopen"
    );

    let conn = raw(&path);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_catalog_is_refused_and_not_downgraded() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("catalog.db");
    drop(Catalog::open(&path).unwrap());
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();

    let err = Catalog::open(&path).expect_err("newer schema must be refused");
    assert!(
        matches!(err, CatalogError::TooNew { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("never downgraded"), "{err}");
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION + 1);
}

#[test]
fn a_foreign_sqlite_file_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("other.db");
    raw(&path)
        .execute_batch("CREATE TABLE notes (x TEXT)")
        .unwrap();
    let err = Catalog::open(&path).expect_err("not a catalog");
    assert!(matches!(err, CatalogError::NotACatalog { .. }), "{err:?}");
}

#[test]
fn open_fails_clearly_in_a_missing_folder() {
    let dir = TempDir::new().unwrap();
    let err = Catalog::open(&dir.path().join("nope/catalog.db")).expect_err("no folder");
    assert!(matches!(err, CatalogError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("folder exists"), "{err}");
}

// -------------------------------------------------------------------------------------------
// Batches

#[test]
fn a_failing_op_leaves_nothing_of_its_batch() {
    let (_dir, mut cat) = catalog_with(&[]);
    let mut orphan = rec("r-1", RecordingKind::Local, RecordingState::Recording, 0);
    orphan.meeting_id = id("m-unknown");
    let err = cat
        .apply(&[
            save_meeting("m-2", 2),
            outbox("events", "{}", false),
            Op::StoreReply {
                command_id: "c-1".into(),
                reply_json: "{}".into(),
                at: Timestamp(T0),
            },
            Op::SaveRecording(orphan),
        ])
        .expect_err("foreign key violation");
    assert!(
        matches!(
            err,
            CatalogError::Op {
                index: 3,
                op: "save_recording",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(cat.pending_outbox().unwrap().is_empty());
    assert_eq!(cat.command_reply("c-1").unwrap(), None);
    assert_eq!(cat.recording(&id("r-1")).unwrap(), None);
    let last = cat.last_meeting().unwrap().unwrap();
    assert_eq!(last.version, Some(1), "m-2's snapshot was rolled back");
}

#[test]
fn recordings_are_upserted_and_listed_newest_first() {
    let (_dir, mut cat) = catalog_with(&[
        rec("r-1", RecordingKind::Cloud, RecordingState::Recording, 0),
        rec("r-2", RecordingKind::Local, RecordingState::Paused, 10),
        rec("r-3", RecordingKind::Local, RecordingState::Ready, 20),
    ]);
    let mut r1 = rec("r-1", RecordingKind::Cloud, RecordingState::Stopped, 0);
    r1.recorded_ms = 61_000;
    r1.bytes = 5_000_000;
    r1.location = Some("s3://bucket/r-1".into());
    r1.transcription = true; // T1: kept with the row (schema V4) for the transcript
    cat.apply(&[Op::SaveRecording(r1.clone())]).unwrap();

    assert_eq!(cat.recording(&id("r-1")).unwrap(), Some(r1));
    let all: Vec<String> = cat
        .recordings(None)
        .unwrap()
        .iter()
        .map(|r| r.recording_id.to_string())
        .collect();
    assert_eq!(all, ["r-3", "r-2", "r-1"]);
    let ready = cat.recordings(Some(RecordingState::Ready)).unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].recording_id, id("r-3"));
    let live = cat.live_recordings().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].recording_id, id("r-2"));
}

#[test]
fn a_recordings_kind_cannot_change() {
    let (_dir, mut cat) = catalog_with(&[rec(
        "r-1",
        RecordingKind::Local,
        RecordingState::Recording,
        0,
    )]);
    let flipped = rec("r-1", RecordingKind::Cloud, RecordingState::Recording, 0);
    let err = cat
        .apply(&[Op::SaveRecording(flipped)])
        .expect_err("kind is fixed");
    assert!(err.to_string().contains("never change"), "{err}");
    let kept = cat.recording(&id("r-1")).unwrap().unwrap();
    assert_eq!(kept.kind, RecordingKind::Local);
}

#[test]
fn values_beyond_i64_are_refused_not_wrapped() {
    let (_dir, mut cat) = catalog_with(&[]);
    let mut r = rec("r-1", RecordingKind::Local, RecordingState::Recording, 0);
    r.bytes = u64::MAX;
    let err = cat
        .apply(&[Op::SaveRecording(r)])
        .expect_err("out of range");
    assert!(err.to_string().contains("does not fit"), "{err}");
}

#[test]
fn last_meeting_keeps_no_meeting_snapshots_across_reopen() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("catalog.db");
    let mut cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.last_meeting().unwrap(), None);
    cat.apply(&[save_meeting("m-1", 3)]).unwrap();
    let last = cat.last_meeting().unwrap().unwrap();
    assert_eq!(
        (last.version, last.meeting),
        (Some(3), Some(meeting("m-1")))
    );

    cat.apply(&[Op::SaveMeeting {
        version: Some(4),
        meeting: None,
        at: Timestamp(T0 + 1),
    }])
    .unwrap();
    drop(cat);
    let last = Catalog::open(&path)
        .unwrap()
        .last_meeting()
        .unwrap()
        .unwrap();
    assert_eq!((last.version, last.meeting), (Some(4), None));
}

// -------------------------------------------------------------------------------------------
// Command dedupe log

#[test]
fn command_replies_survive_reopen_and_the_first_one_wins() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("catalog.db");
    let reply = |json: &str, at| Op::StoreReply {
        command_id: "c-17".into(),
        reply_json: json.into(),
        at: Timestamp(at),
    };
    {
        let mut cat = Catalog::open(&path).unwrap();
        cat.apply(&[reply(r#"{"id":"c-17","ok":true}"#, T0)])
            .unwrap();
        cat.apply(&[reply(r#"{"id":"c-17","ok":false}"#, T0 + 5)])
            .unwrap();
    }
    let mut cat = Catalog::open(&path).unwrap();
    assert_eq!(
        cat.command_reply("c-17").unwrap().as_deref(),
        Some(r#"{"id":"c-17","ok":true}"#)
    );
    assert_eq!(cat.command_reply("c-18").unwrap(), None);

    assert_eq!(cat.prune_commands(Timestamp(T0)).unwrap(), 0, "not older");
    assert_eq!(cat.prune_commands(Timestamp(T0 + 1)).unwrap(), 1);
    assert_eq!(cat.command_reply("c-17").unwrap(), None);
}

// -------------------------------------------------------------------------------------------
// Outbox

#[test]
fn outbox_is_oldest_first_and_acks_remove_rows() {
    let (_dir, mut cat) = catalog_with(&[]);
    let first = cat
        .apply(&[outbox("reply", "a", false), outbox("events", "b", false)])
        .unwrap();
    let second = cat.apply(&[outbox("events", "c", false)]).unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0] < first[1] && first[1] < second[0]);

    let pending = cat.pending_outbox().unwrap();
    let payloads: Vec<&[u8]> = pending.iter().map(|m| m.payload.as_slice()).collect();
    assert_eq!(payloads, [b"a", b"b", b"c"]);
    assert_eq!(pending[0].topic, "reply");
    assert_eq!(pending[0].id, first[0]);

    assert!(cat.ack_outbox(first[1]).unwrap());
    assert!(
        !cat.ack_outbox(first[1]).unwrap(),
        "second ack finds nothing"
    );
    let left: Vec<i64> = cat.pending_outbox().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(left, [first[0], second[0]]);

    // AUTOINCREMENT: ids are never reused once acknowledged.
    cat.ack_outbox(second[0]).unwrap();
    let next = cat.apply(&[outbox("events", "d", false)]).unwrap();
    assert!(next[0] > second[0]);
}

#[test]
fn a_retained_message_supersedes_older_pending_ones_on_its_topic() {
    let (_dir, mut cat) = catalog_with(&[]);
    let ids = cat
        .apply(&[
            outbox("state", "v1", true),
            outbox("events", "e", false),
            outbox("state", "v2", true),
        ])
        .unwrap();
    let pending: Vec<(i64, Vec<u8>)> = cat
        .pending_outbox()
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.payload))
        .collect();
    assert_eq!(pending, [(ids[1], b"e".to_vec()), (ids[2], b"v2".to_vec())]);
    assert!(!cat.ack_outbox(ids[0]).unwrap(), "superseded row is gone");
}

#[test]
fn hostile_outbox_topics_are_refused() {
    let (_dir, mut cat) = catalog_with(&[]);
    for topic in ["", "/state", "a/#", "a/+/b"] {
        let err = cat.apply(&[outbox(topic, "x", false)]).expect_err(topic);
        assert!(err.to_string().contains("topic"), "{topic}: {err}");
    }
}

// -------------------------------------------------------------------------------------------
// Segments

#[test]
fn sealing_records_tags_and_an_upload_job_for_the_cloud_recording() {
    let (_dir, mut cat) = catalog_with(&[
        rec("r-1", RecordingKind::Cloud, RecordingState::Recording, 0),
        rec("r-2", RecordingKind::Local, RecordingState::Recording, 1),
    ]);
    let (cloud, local) = (id("r-1"), id("r-2"));
    cat.seal_segment(&seg(1), &[cloud.clone(), local.clone()], Some(&cloud))
        .unwrap();
    cat.seal_segment(&seg(2), std::slice::from_ref(&local), None)
        .unwrap();

    assert_eq!(cat.segments_of(&cloud).unwrap(), [seg(1)]);
    assert_eq!(cat.segments_of(&local).unwrap(), [seg(1), seg(2)]);
    assert_eq!(cat.upload_backlog().unwrap(), (1, seg(1).bytes));
    assert_eq!(cat.next_segment_seq().unwrap(), 3);
}

#[test]
fn sealing_again_is_idempotent_only_with_identical_data() {
    let (_dir, mut cat) = catalog_with(&[
        rec("r-1", RecordingKind::Cloud, RecordingState::Recording, 0),
        rec("r-2", RecordingKind::Local, RecordingState::Recording, 1),
    ]);
    let cloud = id("r-1");
    cat.seal_segment(&seg(1), std::slice::from_ref(&cloud), Some(&cloud))
        .unwrap();
    cat.seal_segment(&seg(1), std::slice::from_ref(&cloud), Some(&cloud))
        .expect("same data again is fine");
    assert_eq!(cat.upload_backlog().unwrap().0, 1, "no second upload job");

    let mut bigger = seg(1);
    bigger.bytes += 1;
    let err = cat
        .seal_segment(&bigger, std::slice::from_ref(&cloud), Some(&cloud))
        .expect_err("different size");
    assert!(
        matches!(
            err,
            CatalogError::SegmentConflict {
                seq: 1,
                field: "size"
            }
        ),
        "{err:?}"
    );

    let err = cat
        .seal_segment(&seg(1), &[cloud.clone(), id("r-2")], Some(&cloud))
        .expect_err("different tags");
    assert!(
        matches!(err, CatalogError::SegmentConflict { seq: 1, .. }),
        "{err:?}"
    );

    let mut same_path = seg(2);
    same_path.path = seg(1).path;
    let err = cat
        .seal_segment(&same_path, &[id("r-2")], None)
        .expect_err("path of segment 1");
    assert!(
        matches!(err, CatalogError::PathTaken { other: 1, .. }),
        "{err:?}"
    );
    assert_eq!(cat.segments_of(&cloud).unwrap(), [seg(1)]);
}

#[test]
fn hostile_segment_paths_are_refused() {
    let (_dir, mut cat) = catalog_with(&[rec(
        "r-1",
        RecordingKind::Local,
        RecordingState::Recording,
        0,
    )]);
    for path in [
        "../x",
        "/etc/passwd",
        "segments/../../x",
        "",
        "segments//a.ts",
        "./segments/a.ts",
        "segments/a.ts/",
        "segments\\..\\x",
    ] {
        let mut s = seg(1);
        s.path = path.into();
        let err = cat.seal_segment(&s, &[id("r-1")], None).expect_err(path);
        assert!(
            matches!(err, CatalogError::UnsafePath { .. }),
            "{path}: {err:?}"
        );
    }
    assert_eq!(cat.next_segment_seq().unwrap(), 1, "nothing was inserted");
}

#[test]
fn sealing_checks_the_recordings_and_the_cloud_tag() {
    let (_dir, mut cat) = catalog_with(&[
        rec("r-1", RecordingKind::Cloud, RecordingState::Recording, 0),
        rec("r-2", RecordingKind::Local, RecordingState::Recording, 1),
    ]);
    let (cloud, local) = (id("r-1"), id("r-2"));
    let cases: [(&[Id], Option<&Id>); 4] = [
        (&[id("r-404")], None),
        (std::slice::from_ref(&cloud), None),
        (std::slice::from_ref(&local), Some(&cloud)),
        (std::slice::from_ref(&local), Some(&local)),
    ];
    for (tags, c) in cases {
        let err = cat
            .seal_segment(&seg(1), tags, c)
            .expect_err("inconsistent");
        assert!(
            matches!(
                err,
                CatalogError::UnknownRecording { .. } | CatalogError::CloudTag { .. }
            ),
            "{tags:?} {c:?}: {err:?}"
        );
    }
    let mut bad = seg(1);
    bad.sha256 = "AB".repeat(32);
    let err = cat
        .seal_segment(&bad, &[local], None)
        .expect_err("uppercase");
    assert!(matches!(err, CatalogError::BadDigest { .. }), "{err:?}");
    assert_eq!(cat.next_segment_seq().unwrap(), 1);
}

#[test]
fn next_recording_number_follows_the_largest_numeric_id() {
    let (_dir, mut cat) = catalog_with(&[]);
    assert_eq!(cat.next_recording_number().unwrap(), 1);
    let ops: Vec<Op> = ["r-1", "r-9", "r-10", "r-x", "rec-99"]
        .into_iter()
        .map(|r| Op::SaveRecording(rec(r, RecordingKind::Local, RecordingState::Ready, 0)))
        .collect();
    cat.apply(&ops).unwrap();
    assert_eq!(cat.next_recording_number().unwrap(), 11);
}

// -------------------------------------------------------------------------------------------
// Reconcile

fn write_file(storage: &Path, rel: &str, len: usize) {
    let path = storage.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, vec![0u8; len]).unwrap();
}

#[test]
fn reconcile_settles_interrupted_recordings_l5() {
    use RecordingKind::{Cloud, Local};
    use RecordingState::*;
    let (dir, mut cat) = catalog_with(&[
        rec("r-1", Local, Recording, 0),
        rec("r-2", Local, Paused, 1),
        rec("r-3", Local, Converting, 2),
        rec("r-4", Cloud, Recording, 3),
        rec("r-5", Cloud, Paused, 4),
        rec("r-6", Local, Stopped, 5),
        rec("r-7", Local, Ready, 6),
    ]);
    let report = cat.reconcile(dir.path()).unwrap();

    assert_eq!(report.needs_finalize, [id("r-1"), id("r-2"), id("r-3")]);
    assert_eq!(report.resumable_cloud, [id("r-4"), id("r-5")]);
    let state = |r: &str| cat.recording(&id(r)).unwrap().unwrap().state;
    for r in ["r-1", "r-2", "r-3"] {
        assert_eq!(state(r), NeedsFinalize, "{r}");
    }
    assert_eq!(state("r-4"), Recording, "cloud left as it was");
    assert_eq!(state("r-5"), Paused, "cloud left as it was");
    assert_eq!(state("r-6"), Stopped);
    assert_eq!(state("r-7"), Ready);

    let again = cat.reconcile(dir.path()).unwrap();
    assert!(again.needs_finalize.is_empty(), "reconcile is idempotent");
}

#[test]
fn reconcile_reports_file_problems_and_deletes_nothing() {
    let (dir, mut cat) =
        catalog_with(&[rec("r-1", RecordingKind::Local, RecordingState::Stopped, 0)]);
    let storage = dir.path();
    let tags = [id("r-1")];
    for seq in 1..=4 {
        cat.seal_segment(&seg(seq), &tags, None).unwrap();
    }
    write_file(storage, &seg(1).path, seg(1).bytes as usize); // intact
    write_file(storage, &seg(3).path, 10); // truncated
                                           // seg 2 missing; seg 4 missing but released on purpose.
    assert!(cat.mark_segment_released(4, Timestamp(T0)).unwrap());
    write_file(storage, "segments/00000099.ts", 7); // sealed on disk, never recorded
    write_file(storage, "segments/tmp/part.bin", 3);

    let report = cat.reconcile(storage).unwrap();
    let problems: Vec<(u64, &str, &FileProblem)> = report
        .segment_problems
        .iter()
        .map(|p| (p.seq, p.path.as_str(), &p.problem))
        .collect();
    assert_eq!(
        problems,
        [
            (2, seg(2).path.as_str(), &FileProblem::Missing),
            (
                3,
                seg(3).path.as_str(),
                &FileProblem::SizeMismatch {
                    expected: seg(3).bytes,
                    actual: 10
                }
            ),
        ]
    );
    let orphans: Vec<(String, u64)> = report
        .orphan_files
        .iter()
        .map(|o| (o.path.to_string_lossy().into_owned(), o.bytes))
        .collect();
    assert_eq!(
        orphans,
        [
            ("segments/00000099.ts".to_owned(), 7),
            ("segments/tmp/part.bin".to_owned(), 3)
        ]
    );
    assert!(!report.files_consistent());
    assert!(storage.join("segments/00000099.ts").exists(), "orphan kept");
    assert!(storage.join(&seg(3).path).exists(), "resized file kept");
}

#[test]
fn reconcile_requeues_interrupted_uploads() {
    let (dir, mut cat) = catalog_with(&[rec(
        "r-1",
        RecordingKind::Cloud,
        RecordingState::Recording,
        0,
    )]);
    let cloud = id("r-1");
    cat.seal_segment(&seg(1), std::slice::from_ref(&cloud), Some(&cloud))
        .unwrap();
    raw(&dir.path().join("catalog.db"))
        .execute("UPDATE uploads SET state = 'uploading'", [])
        .unwrap();
    let report = cat.reconcile(dir.path()).unwrap();
    assert_eq!(report.uploads_requeued, 1);
    assert_eq!(cat.upload_backlog().unwrap().0, 1);
}

#[test]
fn reconcile_notices_a_missing_storage_folder() {
    let (dir, mut cat) = catalog_with(&[]);
    let report = cat.reconcile(&dir.path().join("not-mounted")).unwrap();
    assert!(report.storage_missing);
    assert!(!report.files_consistent());
}

// -------------------------------------------------------------------------------------------
// Integrity

#[test]
fn integrity_check_passes_on_a_sound_catalog_and_catches_dangling_rows() {
    let (dir, mut cat) = catalog_with(&[rec(
        "r-1",
        RecordingKind::Local,
        RecordingState::Recording,
        0,
    )]);
    cat.seal_segment(&seg(1), &[id("r-1")], None).unwrap();
    cat.integrity_check().expect("sound catalog");

    // Something other than roomrecd, with foreign keys off, leaves a dangling tag.
    raw(&dir.path().join("catalog.db"))
        .execute(
            "INSERT INTO segment_recordings (seq, recording_id) VALUES (1, 'r-404')",
            [],
        )
        .unwrap();
    let err = cat.integrity_check().expect_err("dangling row");
    assert!(
        matches!(&err, CatalogError::Corrupt { problems } if !problems.is_empty()),
        "{err:?}"
    );
}

#[test]
fn in_memory_catalog_works_for_tests() {
    let mut cat = Catalog::open_in_memory().unwrap();
    assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
    cat.apply(&[save_meeting("m-1", 1)]).unwrap();
    cat.integrity_check().unwrap();
}
