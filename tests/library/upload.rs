//! The upload actor against a real S3-compatible server (s3s-fs on loopback, which checks
//! signatures and checksums): upload and verify, idempotent retries, the server killed
//! mid-upload, the link cut and restored, quota byte counts, a playable HLS manifest, share,
//! delete, and the status messages of bad credentials, a missing bucket and clock skew.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::records::{id, meeting, T0};
use common::s3::{S3Server, BUCKET, SECRET_KEY};
use roomrec::catalog::{Catalog, Op, SegmentRecord, UploadState};
use roomrec::config::UploadConfig;
use roomrec::protocol::{RecordingInfo, RecordingKind, RecordingState, Timestamp};
use roomrec::upload::{self, Store, UploadCommand, UploadFact, UploadHandle, UploadSettings};
use sha2::Digest;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Only a bound against hanging forever; no test asserts on elapsed time.
const PATIENCE: Duration = Duration::from_secs(60);

/// Three small MPEG-TS files (H.264 + AAC, 1 s each), made once per test run.
fn ts_fixtures() -> &'static [PathBuf] {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("upload-ts");
        std::fs::create_dir_all(&dir).expect("fixture dir");
        [0, 18, 1]
            .iter()
            .enumerate()
            .map(|(i, pattern)| {
                let path = dir.join(format!("{i}.ts"));
                let made = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
                if !made {
                    make_ts(&path, *pattern);
                }
                path
            })
            .collect()
    })
}

fn make_ts(path: &Path, pattern: u32) {
    // Written aside and renamed, so a run killed half-way leaves no truncated fixture.
    let part = path.with_extension("part");
    let pipeline = format!(
        "videotestsrc num-buffers=15 pattern={pattern} ! \
         video/x-raw,format=I420,width=320,height=240,framerate=15/1 ! x264enc key-int-max=15 ! \
         h264parse ! mpegtsmux name=mux ! filesink location={} \
         audiotestsrc num-buffers=43 ! audioconvert ! avenc_aac ! aacparse ! mux.",
        part.display()
    );
    // `timeout`: gst-launch with num-buffers sources can hang after EOS (see stack notes).
    let status = std::process::Command::new("timeout")
        .args(["60", "gst-launch-1.0", "-q", "-e"])
        .args(pipeline.split_whitespace())
        .status()
        .expect("gst-launch-1.0 (gstreamer1.0-tools) must be installed");
    assert!(
        status.success(),
        "gst-launch-1.0 failed for {}",
        path.display()
    );
    std::fs::rename(&part, path).expect("fixture renamed into place");
}

fn cloud_recording(r: &str, state: RecordingState) -> RecordingInfo {
    RecordingInfo {
        recording_id: id(r),
        meeting_id: id("m-1"),
        kind: RecordingKind::Cloud,
        owner: id("u-1"),
        started_by: id("u-2"),
        host: id("u-1"),
        state,
        created_at: Timestamp(T0),
        recorded_ms: 3000,
        bytes: 0,
        shared: false,
        location: None,
        transcription: false,
    }
}

/// The test plays the daemon: it owns a catalog connection, seals segments and reads facts.
struct Rig {
    s3: S3Server,
    storage: tempfile::TempDir,
    catalog: Catalog,
    facts: mpsc::Receiver<UploadFact>,
    seen: Vec<UploadFact>,
    handle: UploadHandle,
    cancel: CancellationToken,
    settings: UploadSettings,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(S3Server::start(), |_| {})
    }

    fn with(s3: S3Server, tweak: impl FnOnce(&mut UploadSettings)) -> Rig {
        let storage = tempfile::tempdir().expect("storage dir");
        std::fs::create_dir_all(storage.path().join("segments")).expect("segments dir");
        let mut catalog = Catalog::open(&storage.path().join("catalog.sqlite3")).expect("catalog");
        catalog
            .apply(&[
                Op::SaveMeeting {
                    version: Some(1),
                    meeting: Some(meeting("m-1")),
                    at: Timestamp(T0),
                },
                Op::SaveRecording(cloud_recording("r-1", RecordingState::Recording)),
            ])
            .expect("meeting and recording saved");
        let mut settings = UploadSettings::from_config(&s3.upload_config());
        settings.seal_grace = Duration::from_millis(300);
        settings.stall_timeout = Duration::from_secs(5);
        tweak(&mut settings);
        let (tx, facts) = mpsc::channel(256);
        let cancel = CancellationToken::new();
        let handle = spawn(&settings, storage.path(), tx, cancel.clone());
        Rig {
            s3,
            storage,
            catalog,
            facts,
            seen: Vec::new(),
            handle,
            cancel,
            settings,
        }
    }

    /// Stops the actor and starts a new one on the same catalog (a daemon restart).
    async fn restart_actor(&mut self) {
        self.cancel.cancel();
        // Let the old actor put its cut-off jobs back before the new one recovers them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (tx, facts) = mpsc::channel(256);
        self.cancel = CancellationToken::new();
        self.facts = facts;
        self.handle = spawn(&self.settings, self.storage.path(), tx, self.cancel.clone());
    }

    /// Copies `content` in as segment `seq` of r-1 and seals it with its upload job.
    fn seal(&mut self, seq: u64, content: &[u8]) -> SegmentRecord {
        self.seal_timed(seq, content, 1000)
    }

    fn seal_timed(&mut self, seq: u64, content: &[u8], duration_ms: u64) -> SegmentRecord {
        let rel = format!("segments/{seq:08}.ts");
        std::fs::write(self.storage.path().join(&rel), content).expect("segment file");
        let seg = SegmentRecord {
            seq,
            path: rel,
            bytes: content.len() as u64,
            duration_ms,
            sha256: hex::encode(sha2::Sha256::digest(content)),
            sealed_at: Timestamp(T0 + seq as i64),
            silent_ms: 0,
        };
        self.catalog
            .seal_segment(&seg, &[id("r-1")], Some(&id("r-1")))
            .expect("sealed");
        self.handle.send(UploadCommand::Wake);
        seg
    }

    fn seal_fixture(&mut self, seq: u64, which: usize) -> SegmentRecord {
        let content = std::fs::read(&ts_fixtures()[which]).expect("fixture");
        self.seal(seq, &content)
    }

    /// Waits for a fact matching `want`; every fact read is kept in `seen`.
    async fn wait_for(&mut self, what: &str, want: impl Fn(&UploadFact) -> bool) -> UploadFact {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let fact = tokio::time::timeout_at(deadline, self.facts.recv())
                .await
                .unwrap_or_else(|_| panic!("no fact for {what}; seen: {:#?}", self.seen))
                .expect("the upload actor stopped");
            self.seen.push(fact.clone());
            if want(&fact) {
                return fact;
            }
        }
    }

    async fn wait_uploaded(&mut self, seq: u64) {
        let is_it = |f: &UploadFact| matches!(f, UploadFact::Uploaded { seq: s, .. } if *s == seq);
        if self.seen.iter().any(is_it) {
            return;
        }
        self.wait_for(
            &format!("segment {seq} uploaded"),
            |f| matches!(f, UploadFact::Uploaded { seq: s, .. } if *s == seq),
        )
        .await;
    }

    async fn wait_error(&mut self, needle: &str) -> String {
        let fact = self
            .wait_for(&format!("last_error with {needle:?}"), |f| {
                matches!(f, UploadFact::Health { last_error: Some(e), .. } if e.contains(needle))
            })
            .await;
        match fact {
            UploadFact::Health {
                last_error: Some(e),
                ..
            } => e,
            _ => unreachable!(),
        }
    }

    fn key(&self, seq: u64) -> String {
        format!("u-1/m-1/r-1/{seq:08}.ts")
    }

    fn store(&self) -> Store {
        Store::new(&self.s3.upload_config(), 0, Duration::from_secs(10)).expect("client")
    }

    fn job_state(&self, seq: u64) -> UploadState {
        let jobs = self.catalog.upload_jobs_of(&id("r-1")).expect("jobs");
        jobs.iter()
            .find(|j| j.segment.seq == seq)
            .map(|j| j.state)
            .expect("job exists")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn spawn(
    settings: &UploadSettings,
    storage: &Path,
    tx: mpsc::Sender<UploadFact>,
    cancel: CancellationToken,
) -> UploadHandle {
    upload::spawn(
        settings.clone(),
        &storage.join("catalog.sqlite3"),
        storage,
        tx,
        cancel,
    )
    .expect("upload actor starts")
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(n as u64);
    (0..n).map(|_| rng.u8(..)).collect()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_uploaded_verified_and_counted() {
    let mut rig = Rig::new();
    let segs: Vec<SegmentRecord> = (1..=3)
        .map(|i| rig.seal_fixture(i, i as usize - 1))
        .collect();
    for s in &segs {
        rig.wait_uploaded(s.seq).await;
    }
    for s in &segs {
        let stored = std::fs::read(rig.s3.object_path(&rig.key(s.seq))).expect("object file");
        let local = std::fs::read(rig.storage.path().join(&s.path)).expect("local file");
        assert_eq!(stored, local, "segment {} arrived byte for byte", s.seq);
        assert_eq!(rig.job_state(s.seq), UploadState::Uploaded);
    }
    let total: u64 = segs.iter().map(|s| s.bytes).sum();
    assert_eq!(
        rig.catalog.uploaded_bytes(&id("r-1")).expect("bytes"),
        total
    );
    let fact_bytes: u64 = rig
        .seen
        .iter()
        .filter_map(|f| match f {
            UploadFact::Uploaded { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .sum();
    assert_eq!(
        fact_bytes, total,
        "Uploaded facts carry the quota-relevant bytes"
    );
    let jobs = rig.catalog.upload_jobs_of(&id("r-1")).expect("jobs");
    for j in &jobs {
        assert_eq!(
            j.object_key.as_deref(),
            Some(rig.key(j.segment.seq).as_str())
        );
        let md5 = hex::encode(md5::Md5::digest(
            std::fs::read(rig.storage.path().join(&j.segment.path)).expect("file"),
        ));
        assert_eq!(
            j.etag.as_deref(),
            Some(md5.as_str()),
            "ETag recorded and equal to the MD5"
        );
    }
    rig.wait_for("health with an empty queue", |f| {
        matches!(
            f,
            UploadFact::Health {
                pending: 0,
                pending_bytes: 0,
                last_error: None,
                ..
            }
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_recording_gets_a_playable_hls_manifest_then_share_and_delete() {
    let mut rig = Rig::new();
    // Sequence 3 is missing: a pause between 2 and 4.
    let sealed_bytes: u64 = [(1, 0), (2, 1), (4, 2)]
        .into_iter()
        .map(|(seq, which)| rig.seal_fixture(seq, which).bytes)
        .sum();
    let mut info = cloud_recording("r-1", RecordingState::Stopped);
    info.shared = false;
    rig.handle.send(UploadCommand::Complete {
        recording: info,
        transcription: false,
    });
    let done = rig
        .wait_for("completion", |f| matches!(f, UploadFact::Completed { .. }))
        .await;
    let UploadFact::Completed { location, .. } = done else {
        unreachable!()
    };
    let playlist_key = "u-1/m-1/r-1/index.m3u8";
    assert_eq!(
        location,
        format!("{}/{BUCKET}/{playlist_key}", rig.s3.endpoint())
    );
    for seq in [1, 2, 4] {
        assert_eq!(
            rig.job_state(seq),
            UploadState::Uploaded,
            "completion waited for {seq}"
        );
    }

    // Fetch the playlist and its segments with signed GETs (s3s-fs serves only signed
    // requests), then let GStreamer play the copy.
    let store = rig.store();
    let playlist = String::from_utf8(
        store
            .get_bytes(playlist_key)
            .await
            .expect("get")
            .expect("playlist"),
    )
    .expect("utf-8");
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert_eq!(
        playlist.matches("#EXT-X-DISCONTINUITY").count(),
        1,
        "{playlist}"
    );
    let copy = tempfile::tempdir().expect("copy dir");
    std::fs::write(copy.path().join("index.m3u8"), &playlist).expect("write playlist");
    for line in playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let body = store
            .get_bytes(&format!("u-1/m-1/r-1/{line}"))
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{line} listed but not in the bucket"));
        std::fs::write(copy.path().join(line), body).expect("write segment");
    }
    let probed =
        roomrec::media::probe(&copy.path().join("index.m3u8")).expect("the playlist plays");
    assert!(
        probed.video.is_some() && probed.audio.is_some(),
        "{probed:?}"
    );
    assert!((2500..=3500).contains(&probed.duration_ms), "{probed:?}");

    let manifest = manifest_of(&store).await;
    assert_eq!(manifest["creator"], "u-1");
    assert_eq!(manifest["started_by"], "u-2");
    assert_eq!(manifest["shared"], false);
    assert_eq!(manifest["segments"].as_array().map(Vec::len), Some(3));
    assert_eq!(manifest["pauses"][0]["after_seq"], 2);
    assert_eq!(manifest["duration_ms"], 3000);

    rig.handle.send(UploadCommand::Share {
        recording_id: id("r-1"),
        shared: true,
    });
    rig.wait_for("shared", |f| {
        matches!(f, UploadFact::Shared { shared: true, .. })
    })
    .await;
    let manifest = manifest_of(&store).await;
    assert_eq!(manifest["shared"], true, "share rewrote the flag");

    rig.handle.send(UploadCommand::Delete {
        recording_id: id("r-1"),
    });
    let deleted = rig
        .wait_for("deleted", |f| matches!(f, UploadFact::Deleted { .. }))
        .await;
    assert_eq!(
        deleted,
        UploadFact::Deleted {
            recording_id: id("r-1"),
            objects: 5,
            files: 3,
            freed_bytes: sealed_bytes,
        },
        "the local files' bytes are reported, for the disk budget"
    );
    assert_eq!(rig.catalog.used_bytes().expect("used"), 0, "released");
    assert_eq!(
        rig.s3.keys(),
        Vec::<String>::new(),
        "nothing left in the bucket"
    );
    for seq in [1, 2, 4] {
        assert!(!rig
            .storage
            .path()
            .join(format!("segments/{seq:08}.ts"))
            .exists());
    }
    assert!(rig
        .catalog
        .upload_jobs_of(&id("r-1"))
        .expect("jobs")
        .is_empty());
}

/// T1: a transcribed cloud recording gets a WebVTT rendition that a player finds through the
/// master playlist: ffmpeg reading the master sees the subtitle stream and its cues, the
/// speech after the pause at its offset in recorded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcribed_recording_gets_a_subtitle_rendition_in_a_master_playlist() {
    use common::speech;
    let media = tempfile::tempdir().expect("media dir");
    let first = "Good morning everyone, welcome to the weekly meeting.";
    let second = "Please open the window before the meeting starts.";
    let one = speech::spoken_media(media.path(), "a.ts", first, 1_000, 1_000, 10.0);
    let one_ms = speech::duration_ms(&one);
    let resume_s = 10.0 + one_ms as f64 / 1000.0 + 60.0;
    let two = speech::spoken_media(media.path(), "b.ts", second, 1_500, 1_000, resume_s);
    let two_ms = speech::duration_ms(&two);

    let mut rig = Rig::with(S3Server::start(), |s| {
        s.transcription_model = Some(roomrec::transcribe::DEFAULT_MODEL_DIR.into());
    });
    // Sequence 2 is missing: a pause between 1 and 3.
    rig.seal_timed(1, &std::fs::read(&one).expect("a.ts"), one_ms);
    rig.seal_timed(3, &std::fs::read(&two).expect("b.ts"), two_ms);
    rig.handle.send(UploadCommand::Complete {
        recording: cloud_recording("r-1", RecordingState::Stopped),
        transcription: true,
    });
    let done = rig
        .wait_for("completion", |f| matches!(f, UploadFact::Completed { .. }))
        .await;
    let UploadFact::Completed { location, .. } = done else {
        unreachable!()
    };
    assert!(location.ends_with("/u-1/m-1/r-1/master.m3u8"), "{location}");

    let store = rig.store();
    let copy = tempfile::tempdir().expect("copy dir");
    let names = [
        "master.m3u8",
        "index.m3u8",
        "subtitles.m3u8",
        "00000001.ts",
        "00000003.ts",
        "00000001.vtt",
        "00000003.vtt",
    ];
    for name in names {
        let body = store
            .get_bytes(&format!("u-1/m-1/r-1/{name}"))
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{name} is not in the bucket"));
        std::fs::write(copy.path().join(name), body).expect("write");
    }
    let master = copy.path().join("master.m3u8");
    // ffmpeg 5.1's HLS reader takes subtitle renditions only with `-strict experimental`
    // (without it, it warns "Can't support the subtitle"); it reads the cue times as written
    // and does not apply X-TIMESTAMP-MAP, so with `-copyts` they are the recording's times.
    let listed = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-strict", "experimental"])
        .args(["-show_entries", "stream=codec_type,codec_name"])
        .args(["-of", "csv=p=0"])
        .arg(&master)
        .output()
        .expect("ffprobe");
    let streams = String::from_utf8_lossy(&listed.stdout);
    assert!(
        streams
            .lines()
            .any(|l| l.contains("webvtt") && l.contains("subtitle")),
        "ffprobe sees a WebVTT subtitle stream in the master playlist: {streams}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        streams.contains("video") && streams.contains("audio"),
        "{streams}"
    );

    let cues = speech::cues_read_by_ffmpeg(&master);
    // The cue with the second sentence, on the recording's timeline: 1.5 s into the segment
    // after the pause, not a minute later.
    let text = speech::show(&cues);
    let start = cues
        .iter()
        .find(|c| c.text.contains("window") || c.text.contains("meeting starts"))
        .unwrap_or_else(|| panic!("the sentence after the pause is in the transcript:\n{text}"))
        .start_ms;
    assert!(
        (one_ms + 1_000..=one_ms + 4_000).contains(&start),
        "the cue after the pause starts at {start} ms, the speech at {} ms of recorded time:\n{text}",
        one_ms + 1_500
    );

    let manifest = manifest_of(&store).await;
    assert_eq!(manifest["master_playlist"], "master.m3u8");
    assert_eq!(manifest["subtitles"], "subtitles.m3u8");

    rig.handle.send(UploadCommand::Delete {
        recording_id: id("r-1"),
    });
    let deleted = rig
        .wait_for("deleted", |f| matches!(f, UploadFact::Deleted { .. }))
        .await;
    assert!(
        matches!(deleted, UploadFact::Deleted { objects: 8, .. }),
        "2 segments, 2 subtitle segments, 3 playlists and the manifest: {deleted:?}"
    );
    assert_eq!(rig.s3.keys(), Vec::<String>::new(), "nothing left");
}

/// r-1's `manifest.json` as the store holds it.
async fn manifest_of(store: &Store) -> serde_json::Value {
    let body = store
        .get_bytes("u-1/m-1/r-1/manifest.json")
        .await
        .expect("get")
        .expect("manifest");
    serde_json::from_slice(&body).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_waits_for_segments_sealed_after_the_request() {
    // A caller that sends Complete before the last seal must give a grace period.
    let mut rig = Rig::with(S3Server::start(), |s| s.seal_grace = Duration::from_secs(2));
    rig.seal_fixture(1, 0);
    rig.wait_uploaded(1).await;
    rig.handle.send(UploadCommand::Complete {
        recording: cloud_recording("r-1", RecordingState::Stopped),
        transcription: false,
    });
    // The last segment is sealed only now, before the grace period ends.
    rig.seal_fixture(2, 1);
    let done = rig
        .wait_for("completion", |f| matches!(f, UploadFact::Completed { .. }))
        .await;
    assert!(
        rig.seen
            .iter()
            .any(|f| matches!(f, UploadFact::Uploaded { seq: 2, .. })),
        "segment 2 was uploaded before {done:?}"
    );
    let playlist = rig
        .store()
        .get_bytes("u-1/m-1/r-1/index.m3u8")
        .await
        .expect("get")
        .expect("m3u8");
    assert!(String::from_utf8_lossy(&playlist).contains("00000002.ts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_an_object_already_there_is_not_sent_again_and_a_damaged_one_is() {
    let mut rig = Rig::new();
    let content = random_bytes(300_000);
    rig.seal(1, &content);
    rig.seal(2, &random_bytes(200_000));
    rig.wait_uploaded(1).await;
    rig.wait_uploaded(2).await;
    let object = rig.s3.object_path(&rig.key(1));
    let before = std::fs::metadata(&object)
        .expect("object")
        .modified()
        .expect("mtime");

    // As if the daemon died after the PUT and before the catalog heard of it.
    let now = Timestamp(T0);
    rig.catalog
        .upload_failed(1, &id("r-1"), "test: interrupted", now)
        .expect("requeue");
    // And segment 2's object was left half-written in the store.
    std::fs::write(
        rig.s3.object_path(&rig.key(2)),
        &random_bytes(200_000)[..1000],
    )
    .expect("damage");
    rig.catalog
        .upload_failed(2, &id("r-1"), "test: interrupted", now)
        .expect("requeue");
    rig.handle.send(UploadCommand::Wake);
    rig.seen.clear();
    rig.wait_uploaded(1).await;
    rig.wait_uploaded(2).await;

    let after = std::fs::metadata(&object)
        .expect("object")
        .modified()
        .expect("mtime");
    assert_eq!(
        before, after,
        "the object already present was not sent again"
    );
    assert_eq!(std::fs::read(&object).expect("object"), content);
    assert_eq!(
        std::fs::read(rig.s3.object_path(&rig.key(2))).expect("object"),
        random_bytes(200_000),
        "the half-written object was replaced"
    );
    let ts_keys: Vec<String> = rig
        .s3
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(".ts"))
        .collect();
    assert_eq!(
        ts_keys,
        vec![rig.key(1), rig.key(2)],
        "one object per segment, never two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_mid_upload_and_restarted_gets_the_segment_once() {
    // 100 kB/s: a 1.5 MB segment takes 15 s, so the kill surely lands mid-transfer.
    let mut rig = Rig::with(S3Server::start(), |s| s.rate_cap = Some(100_000));
    let content = random_bytes(1_500_000);
    rig.seal(1, &content);
    let data = rig.s3.data();
    let receiving = common::wait_until(PATIENCE, || part_file_size(&data) > 0);
    assert!(receiving, "the server never started receiving");
    rig.s3.kill();
    let error = rig.wait_error("cannot reach the store").await;
    assert!(!error.contains(SECRET_KEY));
    assert_ne!(rig.job_state(1), UploadState::Uploaded);
    rig.s3.restart();
    rig.wait_uploaded(1).await;
    assert_eq!(
        std::fs::read(rig.s3.object_path(&rig.key(1))).expect("object"),
        content
    );
    let ts_keys: Vec<String> = rig
        .s3
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(".ts"))
        .collect();
    assert_eq!(ts_keys, vec![rig.key(1)]);
}

fn part_file_size(data: &Path) -> u64 {
    std::fs::read_dir(data)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".internal.part"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_cut_keeps_the_queue_and_uploads_resume_by_themselves() {
    let mut rig = Rig::new();
    rig.s3.kill();
    rig.seal_fixture(1, 0);
    rig.seal_fixture(2, 1);
    let error = rig.wait_error("cannot reach the store").await;
    assert!(error.contains(&rig.s3.endpoint()), "{error}");
    assert_eq!(
        rig.catalog.upload_backlog().expect("backlog").0,
        2,
        "the queue kept both"
    );
    rig.s3.restart();
    rig.wait_uploaded(1).await;
    rig.wait_uploaded(2).await;
    rig.wait_for("error cleared", |f| {
        matches!(
            f,
            UploadFact::Health {
                pending: 0,
                last_error: None,
                ..
            }
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_survives_a_restart() {
    let mut rig = Rig::new();
    rig.s3.kill();
    for seq in 1..=3 {
        rig.seal(seq, &random_bytes(50_000 + seq as usize));
    }
    rig.wait_error("cannot reach the store").await;
    rig.restart_actor().await;
    rig.s3.restart();
    for seq in 1..=3 {
        rig.wait_uploaded(seq).await;
    }
    assert_eq!(rig.catalog.upload_backlog().expect("backlog"), (0, 0));
}

#[test]
fn a_wrong_secret_is_reported_without_the_secret_in_logs_or_status() {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || LogWriter(writer.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // One thread: every task, and so every log line, goes through the subscriber above.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let error = runtime.block_on(async {
        let s3 = S3Server::start();
        let wrong = "wrong-Zq8-secret-never-in-logs";
        let config = s3.upload_config_with_secret(wrong);
        let mut rig = Rig::with(s3, |s| s.store = config);
        rig.seal(1, &random_bytes(10_000));
        let error = rig.wait_error("SignatureDoesNotMatch").await;
        assert!(error.contains("upload.secret_access_key"), "{error}");
        assert_eq!(
            rig.catalog.upload_backlog().expect("backlog").0,
            1,
            "the job is kept"
        );
        assert!(!error.contains(wrong));
        let debug = format!("{:?}", rig.settings);
        assert!(
            !debug.contains(wrong),
            "settings' Debug shows no secret: {debug}"
        );
        error
    });
    let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        logs.contains("SignatureDoesNotMatch"),
        "the failure was logged"
    );
    assert!(
        !logs.contains("wrong-Zq8-secret"),
        "a secret reached the logs"
    );
    assert!(
        !logs.contains("X-Amz-Signature="),
        "a signed URL reached the logs"
    );
    assert!(!error.contains("X-Amz-Signature="));
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_reported_and_uploads_resume_once_it_exists() {
    let s3 = S3Server::start();
    let mut config: UploadConfig = s3.upload_config();
    config.bucket = "not-yet".into();
    let mut rig = Rig::with(s3, |s| s.store = config.clone());
    rig.seal(1, &random_bytes(10_000));
    let error = rig.wait_error("NoSuchBucket").await;
    assert!(
        error.contains("upload.bucket") && error.contains("not-yet"),
        "{error}"
    );
    std::fs::create_dir_all(rig.s3.data().join("not-yet")).expect("create the bucket");
    rig.wait_uploaded(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_rejected_by_the_store_is_reported_and_corrected() {
    // The device clock an hour ahead: s3s-fs refuses requests signed in the future.
    let mut rig = Rig::with(S3Server::start(), |s| s.clock_offset_s = 3600);
    rig.seal(1, &random_bytes(10_000));
    let error = rig.wait_error("clock").await;
    assert!(
        error.contains("RequestTimeTooSkewed") && error.contains("NTP"),
        "{error}"
    );
    rig.wait_uploaded(1).await;
}

// ---------------------------------------------------------------------------------------------
// Benchmark driver (not a test): benches/upload.sh runs it inside its network namespaces.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark driver: run benches/upload.sh (it sets up the shaped link)"]
async fn bench_shaped_link() {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} is unset: run benches/upload.sh"))
    };
    let rate_mbit: f64 = var("BENCH_RATE_MBIT").parse().expect("BENCH_RATE_MBIT");
    let counter = PathBuf::from(var("BENCH_COUNTER"));
    let link_pid = var("BENCH_LINK_PID");
    let mut files: Vec<PathBuf> = std::fs::read_dir(var("BENCH_FILES"))
        .expect("BENCH_FILES")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let config = UploadConfig {
        endpoint: var("BENCH_ENDPOINT"),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        path_style: true,
        credentials: roomrec::config::UploadCredentials::Keys {
            access_key_id: "benchkey".into(),
            secret_access_key: roomrec::config::Secret::new("benchsecret"),
            file: None,
        },
        ca_file: None,
        rate_cap: None,
        live_share_percent: 25,
        key_prefix: String::new(),
    };
    let mut bench = Bench::start(&config).await;

    // 1. Goodput: every file once, at full rate.
    let start = tokio::time::Instant::now();
    let bytes = bench.seal_all(&files, 1).await;
    bench.wait_uploads(files.len()).await;
    let secs = start.elapsed().as_secs_f64();
    let mbit = bytes as f64 * 8.0 / secs / 1e6;
    println!(
        "bench roomrec goodput: {:.1} MB in {secs:.2} s = {mbit:.2} Mbit/s = {:.1} % of the {rate_mbit} Mbit/s link",
        bytes as f64 / 1e6,
        100.0 * mbit / rate_mbit
    );

    // 2. A 10 s outage (every packet dropped) in the middle of a backlog twice as large.
    let link_bytes = || -> u64 {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &link_pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot signal the link forwarder");
    };
    let mut all = files.clone();
    all.extend(files.iter().cloned());
    let first = files.len() as u64 + 1;
    bench.seal_all(&all, first).await;
    let t0 = tokio::time::Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let (cut_at, restore_at) = (5.0, 15.0);
    let (mut cut, mut restored) = (false, false);
    while bench.uploaded < files.len() + all.len() {
        let t = t0.elapsed().as_secs_f64();
        if !cut && t >= cut_at {
            signal("-USR1");
            cut = true;
        }
        if !restored && t >= restore_at {
            signal("-USR2");
            restored = true;
        }
        samples.push((t, link_bytes()));
        bench.drain_for(Duration::from_millis(100)).await;
        assert!(t < 300.0, "the backlog did not drain in 5 minutes");
    }
    let rate = |from: f64, to: f64| -> f64 {
        let at = |x: f64| samples.iter().find(|(t, _)| *t >= x).map_or(0, |s| s.1);
        (at(to).saturating_sub(at(from))) as f64 * 8.0 / (to - from) / 1e6
    };
    let steady = rate(cut_at - 3.0, cut_at);
    let back = samples
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t >= restore_at && *t + 0.5 <= samples.last().map_or(0.0, |s| s.0))
        .find(|t| rate(*t, *t + 0.5) >= 0.9 * steady)
        .map(|t| t + 0.5 - restore_at);
    println!(
        "bench roomrec outage: steady {steady:.2} Mbit/s on the wire before a 10 s cut; back to \
         ≥ 90 % of it {} after the link returned (500 ms windows)",
        back.map_or("never".to_owned(), |b| format!("{b:.2} s"))
    );
    bench.cancel.cancel();
}

struct Bench {
    _storage: tempfile::TempDir,
    storage: PathBuf,
    catalog: Catalog,
    facts: mpsc::Receiver<UploadFact>,
    handle: UploadHandle,
    cancel: CancellationToken,
    uploaded: usize,
}

impl Bench {
    async fn start(config: &UploadConfig) -> Bench {
        let dir = tempfile::tempdir().expect("storage");
        let storage = dir.path().to_owned();
        std::fs::create_dir_all(storage.join("segments")).expect("segments");
        let mut catalog = Catalog::open(&storage.join("catalog.sqlite3")).expect("catalog");
        catalog
            .apply(&[
                Op::SaveMeeting {
                    version: Some(1),
                    meeting: Some(meeting("m-1")),
                    at: Timestamp(T0),
                },
                Op::SaveRecording(cloud_recording("r-1", RecordingState::Recording)),
            ])
            .expect("saved");
        let (tx, facts) = mpsc::channel(4096);
        let cancel = CancellationToken::new();
        let settings = UploadSettings::from_config(config);
        let handle = spawn(&settings, &storage, tx, cancel.clone());
        // Let the first probe pass, so the figures time uploads, not start-up.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Bench {
            _storage: dir,
            storage,
            catalog,
            facts,
            handle,
            cancel,
            uploaded: 0,
        }
    }

    async fn seal_all(&mut self, files: &[PathBuf], first_seq: u64) -> u64 {
        let mut total = 0;
        for (i, file) in files.iter().enumerate() {
            let seq = first_seq + i as u64;
            let rel = format!("segments/{seq:08}.ts");
            std::fs::copy(file, self.storage.join(&rel)).expect("copy");
            let content = std::fs::read(file).expect("read");
            total += content.len() as u64;
            let seg = SegmentRecord {
                seq,
                path: rel,
                bytes: content.len() as u64,
                duration_ms: 3000,
                sha256: hex::encode(sha2::Sha256::digest(&content)),
                sealed_at: Timestamp(T0 + seq as i64),
                silent_ms: 0,
            };
            self.catalog
                .seal_segment(&seg, &[id("r-1")], Some(&id("r-1")))
                .expect("seal");
            self.handle.send(UploadCommand::Wake);
        }
        total
    }

    async fn wait_uploads(&mut self, n: usize) {
        while self.uploaded < n {
            self.drain_for(PATIENCE).await;
        }
    }

    async fn drain_for(&mut self, d: Duration) {
        if let Ok(Some(f)) = tokio::time::timeout(d, self.facts.recv()).await {
            if matches!(f, UploadFact::Uploaded { .. }) {
                self.uploaded += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Faults s3s-fs cannot show by itself, through a misbehaving proxy in front of it

async fn rig_behind(fault: common::faulty::Fault) -> (Rig, common::faulty::FaultyLink) {
    let s3 = S3Server::start();
    let link = common::faulty::FaultyLink::start(s3.port, fault).await;
    let endpoint = link.endpoint();
    let rig = Rig::with(s3, |s| s.store.endpoint = endpoint);
    (rig, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_storm_is_reported_keeps_the_queue_and_ends_in_uploads() {
    let (mut rig, link) = rig_behind(common::faulty::Fault::Http503).await;
    rig.seal_fixture(1, 0);
    rig.seal_fixture(2, 1);
    let error = rig.wait_error("503").await;
    assert!(error.contains("retrying"), "{error}");
    assert_eq!(
        rig.catalog.upload_backlog().expect("backlog").0,
        2,
        "the queue kept both"
    );
    link.set(common::faulty::Fault::Pass);
    rig.wait_uploaded(1).await;
    rig.wait_uploaded(2).await;
    let keys = rig.s3.keys();
    assert!(
        keys.contains(&rig.key(1)) && keys.contains(&rig.key(2)),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_is_reported_and_uploads_resume() {
    let (mut rig, link) = rig_behind(common::faulty::Fault::Silent).await;
    rig.seal_fixture(1, 0);
    let error = rig
        .wait_for("an error for the silent store", |f| {
            matches!(
                f,
                UploadFact::Health {
                    last_error: Some(_),
                    ..
                }
            )
        })
        .await;
    assert!(
        matches!(error, UploadFact::Health { pending: 1, .. }),
        "{error:?}"
    );
    link.set(common::faulty::Fault::Pass);
    rig.wait_uploaded(1).await;
    assert!(rig.s3.keys().contains(&rig.key(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_still_delivers_every_segment_once_and_whole() {
    let (mut rig, link) = rig_behind(common::faulty::Fault::DropEveryOther).await;
    let sealed: Vec<SegmentRecord> = (1..=4)
        .map(|seq| rig.seal_fixture(seq, (seq % 2) as usize))
        .collect();
    for seg in &sealed {
        rig.wait_uploaded(seg.seq).await;
    }
    for seg in &sealed {
        let body = std::fs::read(rig.s3.object_path(&rig.key(seg.seq))).expect("object stored");
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&body)),
            seg.sha256,
            "segment {} whole",
            seg.seq
        );
    }
    let objects = rig.s3.keys().iter().filter(|k| k.ends_with(".ts")).count();
    assert_eq!(objects, 4, "each segment stored once: {:?}", rig.s3.keys());
    assert!(
        link.accepted() >= 2,
        "the link really dropped connections: {}",
        link.accepted()
    );
}
