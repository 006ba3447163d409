//! The disk budget's catalog queries (issue item 7) against real SQLite files: bytes on disk,
//! and which segments may be evicted, with one case per exclusion: not uploaded, not
//! converted, still recording, within the retention, already released.

use roomrec::catalog::{Catalog, Op, SegmentRecord};
use roomrec::protocol::{
    Id, Meeting, MeetingState, RecordingInfo, RecordingKind, RecordingState, Timestamp,
};
use tempfile::TempDir;

use RecordingKind::{Cloud, Local};
use RecordingState as S;

use crate::common::records::{id, meeting, T0};

/// Segments with `seq < OLD_SEQS` are sealed before the cutoff.
const OLD_SEQS: u64 = 10;
const CUTOFF: Timestamp = Timestamp(T0 + OLD_SEQS as i64 * 1000);

fn rec(r: &str, kind: RecordingKind, state: RecordingState) -> RecordingInfo {
    RecordingInfo {
        recording_id: id(r),
        meeting_id: id("m-1"),
        kind,
        owner: id("u-1"),
        started_by: id("u-1"),
        host: id("u-1"),
        state,
        created_at: Timestamp(T0),
        recorded_ms: 60_000,
        bytes: 0,
        shared: false,
        location: None,
        transcription: false,
    }
}

/// Sealed `seq` seconds after T0; 1000 + seq bytes.
fn seg(seq: u64) -> SegmentRecord {
    SegmentRecord {
        seq,
        path: format!("segments/{seq:08}.ts"),
        bytes: 1000 + seq,
        duration_ms: 4000,
        sha256: "ab".repeat(32),
        sealed_at: Timestamp(T0 + seq as i64 * 1000),
        silent_ms: 0,
    }
}

struct Fx {
    _dir: TempDir,
    cat: Catalog,
}

impl Fx {
    fn new(recordings: &[RecordingInfo]) -> Fx {
        let dir = TempDir::new().expect("temp dir");
        let mut cat = Catalog::open(&dir.path().join("catalog.db")).expect("open");
        let mut ops = vec![Op::SaveMeeting {
            version: Some(1),
            meeting: Some(Meeting {
                state: MeetingState::Ended,
                ..meeting("m-1")
            }),
            at: Timestamp(T0),
        }];
        ops.extend(recordings.iter().cloned().map(Op::SaveRecording));
        cat.apply(&ops).expect("seed");
        Fx { _dir: dir, cat }
    }

    /// Seals `seq` for `tags`; a tag starting with `c` is the cloud recording.
    fn seal(&mut self, seq: u64, tags: &[&str]) {
        let ids: Vec<Id> = tags.iter().map(|t| id(t)).collect();
        let cloud = ids.iter().find(|i| i.as_str().starts_with('c'));
        self.cat.seal_segment(&seg(seq), &ids, cloud).expect("seal");
    }

    fn uploaded(&mut self, seq: u64, cloud: &str) {
        let key = format!("u-1/m-1/{cloud}/{seq}");
        let found = self
            .cat
            .mark_uploaded(seq, &id(cloud), &key, "etag")
            .expect("mark uploaded");
        assert!(found, "job {seq} of {cloud} exists");
    }

    fn evictable(&self) -> Vec<u64> {
        self.cat
            .evictable_segments(CUTOFF, 100)
            .expect("query")
            .into_iter()
            .map(|s| s.seq)
            .collect()
    }
}

#[test]
fn used_bytes_counts_unreleased_segments() {
    let mut fx = Fx::new(&[rec("l-1", Local, S::Recording)]);
    assert_eq!(fx.cat.used_bytes().unwrap(), 0);
    fx.seal(1, &["l-1"]);
    fx.seal(2, &["l-1"]);
    assert_eq!(fx.cat.used_bytes().unwrap(), 1001 + 1002);
    assert!(fx.cat.mark_segment_released(1, CUTOFF).unwrap());
    assert_eq!(fx.cat.used_bytes().unwrap(), 1002);
}

#[test]
fn uploaded_cloud_segments_go_after_the_retention_oldest_first() {
    let mut fx = Fx::new(&[rec("c-1", Cloud, S::Recording)]);
    for seq in [3, 1, 2, 11] {
        fx.seal(seq, &["c-1"]);
        fx.uploaded(seq, "c-1");
    }
    assert_eq!(
        fx.evictable(),
        vec![1, 2, 3],
        "seq 11 is within the retention"
    );
    let first = fx.cat.evictable_segments(CUTOFF, 2).unwrap();
    assert_eq!(first, vec![seg(1), seg(2)], "limit, whole records");
    assert_eq!(
        fx.cat
            .evictable_segments(Timestamp(T0 + 60_000), 100)
            .unwrap()
            .len(),
        4,
        "a later cutoff takes the young one too"
    );
}

#[test]
fn segments_not_uploaded_stay() {
    let mut fx = Fx::new(&[rec("c-1", Cloud, S::Stopped)]);
    fx.seal(1, &["c-1"]); // pending
    fx.seal(2, &["c-1"]);
    fx.cat
        .claim_upload(Timestamp(T0 + 60_000), 0)
        .unwrap()
        .expect("job 1 claimed: uploading");
    fx.seal(3, &["c-1"]);
    fx.cat
        .upload_failed(3, &id("c-1"), "timeout", Timestamp(T0 + 90_000))
        .unwrap();
    fx.seal(4, &["c-1"]);
    fx.uploaded(4, "c-1");
    assert_eq!(fx.evictable(), vec![4]);
}

#[test]
fn local_segments_stay_until_converted_and_checked() {
    let states = [
        (S::Recording, false),
        (S::Paused, false),
        (S::Stopped, false),
        (S::Converting, false),
        (S::NeedsFinalize, false),
        (S::Failed, false),
        (S::Ready, true),
    ];
    for (state, goes) in states {
        let mut fx = Fx::new(&[rec("l-1", Local, state)]);
        fx.seal(1, &["l-1"]);
        fx.seal(OLD_SEQS + 1, &["l-1"]);
        let want: Vec<u64> = if goes { vec![1] } else { vec![] };
        assert_eq!(fx.evictable(), want, "local recording {state:?}");
    }
}

#[test]
fn a_shared_segment_goes_only_when_every_recording_lets_it() {
    let mut fx = Fx::new(&[
        rec("c-1", Cloud, S::Stopped),
        rec("l-1", Local, S::Ready),
        rec("l-2", Local, S::Converting),
    ]);
    fx.seal(1, &["c-1", "l-1"]); // uploaded + converted: goes
    fx.uploaded(1, "c-1");
    fx.seal(2, &["c-1", "l-2"]); // uploaded, but l-2 is still converting
    fx.uploaded(2, "c-1");
    fx.seal(3, &["c-1", "l-1"]); // converted, but not uploaded
    assert_eq!(fx.evictable(), vec![1]);
}

#[test]
fn discarded_and_deleted_recordings_free_their_segments_at_once() {
    let mut fx = Fx::new(&[
        rec("l-1", Local, S::Discarded),
        rec("l-2", Local, S::Deleted),
        rec("c-3", Cloud, S::Deleted),
        rec("l-4", Local, S::Ready),
        rec("c-5", Cloud, S::Recording),
    ]);
    let young = OLD_SEQS + 1;
    fx.seal(young, &["l-1"]);
    fx.seal(young + 1, &["l-2"]);
    fx.seal(young + 2, &["c-3", "l-1"]); // its job never sent: deleted anyway
    fx.seal(young + 3, &["l-1", "l-4"]); // l-4 is kept: the retention applies
    fx.seal(young + 4, &["l-2", "c-5"]); // c-5 not uploaded: stays
    assert_eq!(fx.evictable(), vec![young, young + 1, young + 2]);
}

#[test]
fn released_segments_are_not_listed_again() {
    let mut fx = Fx::new(&[rec("l-1", Local, S::Discarded)]);
    fx.seal(1, &["l-1"]);
    fx.seal(2, &["l-1"]);
    assert!(fx.cat.mark_segment_released(1, CUTOFF).unwrap());
    assert_eq!(fx.evictable(), vec![2]);
}
