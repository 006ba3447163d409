//! Media against real GStreamer pipelines: segments, tags, sealing, conversion, mute, encoders.
//!
//! Media is checked with the Discoverer (codec, size, duration, audio), never by file size.
//! Run with `cargo test --test library media:: -- --test-threads=1` (each test runs a live
//! pipeline).

use crate::common;

use common::ffprobe;
use common::media::{capture, finish, id, sealed, small, FACTS, FACT_TIMEOUT};
use std::path::{Path, PathBuf};
use std::time::Duration;

use roomrec::media::{
    self, AudioCodec, MediaCommand, MediaError, MediaFact, MediaSettings, SealedFile, VideoEncoder,
};
use roomrec::protocol::Id;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The segment is H.264 at the configured size with audio, and the fact describes the file.
fn check_segment(s: &SealedFile, settings: &MediaSettings, audio_codec: &str) {
    let info = media::probe(&s.abs_path).expect("segment plays");
    let video = info.video.as_ref().expect("segment has video");
    assert_eq!(video.codec, "video/x-h264", "segment {}", s.seq);
    assert_eq!(
        (video.width, video.height),
        (settings.width, settings.height)
    );
    let audio = info.audio.as_ref().expect("segment has audio");
    assert_eq!(audio.codec, audio_codec, "segment {}", s.seq);
    assert_eq!(s.sha256, sha256_of(&s.abs_path), "segment {}", s.seq);
    assert_eq!(s.bytes, std::fs::metadata(&s.abs_path).unwrap().len());
    assert_eq!(s.path, format!("segments/{:08}.ts", s.seq));
    assert!(
        s.duration_ms.abs_diff(info.duration_ms) <= 500,
        "segment {}: fact says {} ms, file plays {} ms",
        s.seq,
        s.duration_ms,
        info.duration_ms
    );
}

fn segments_of(all: &[SealedFile], recording: &str) -> (Vec<PathBuf>, u64) {
    let mine: Vec<&SealedFile> = all
        .iter()
        .filter(|s| s.recordings.contains(&id(recording)))
        .collect();
    let total = mine.iter().map(|s| s.duration_ms).sum();
    (mine.iter().map(|s| s.abs_path.clone()).collect(), total)
}

/// Convert, then read the MP4 with ffprobe: H.264 with sound, every stream gapless, and as
/// long as the segments' recorded time within a frame.
fn convert_and_check(segments: Vec<PathBuf>, out: PathBuf) {
    let info = media::convert(&segments, &out, &CancellationToken::new()).expect("converts");
    let probed = media::probe(&out).expect("the MP4 plays");
    assert_eq!(info, probed);
    assert_eq!(
        probed.video.as_ref().map(|v| v.codec.as_str()),
        Some("video/x-h264")
    );
    assert!(probed.audio.is_some(), "the MP4 has sound");
    ffprobe::assert_gapless(&out, ffprobe::recorded(&segments));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_cut_tagged_segments_that_convert_per_recording() {
    let dir = tempfile::tempdir().unwrap();
    let settings = small(dir.path());
    let (tx, rx) = mpsc::channel(256);
    let handle = media::spawn(settings.clone(), 7, tx).expect("media starts");

    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    handle.send(capture(&["B", "A"]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    handle.send(MediaCommand::SetMuted(true));
    handle.send(capture(&["B"]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle.send(capture(&[]));
    let facts = finish(handle, rx).await;

    assert!(facts.contains(&MediaFact::Muted(true)), "{facts:?}");
    let failures: Vec<_> = facts
        .iter()
        .filter(|f| matches!(f, MediaFact::Failed { .. } | MediaFact::DiskFull { .. }))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");

    let all = sealed(&facts);
    for s in &all {
        eprintln!("segment {} {} ms {:?}", s.seq, s.duration_ms, s.recordings);
    }
    let seqs: Vec<u64> = all.iter().map(|s| s.seq).collect();
    assert_eq!(
        seqs,
        (7..7 + all.len() as u64).collect::<Vec<_>>(),
        "contiguous from 7"
    );
    for s in &all {
        check_segment(s, &settings, "audio/mpeg");
    }

    // Tags follow the switches: a run of {A}, then of {A, B}, then of {B}; none mixed.
    let tags: Vec<Vec<Id>> = all.iter().map(|s| s.recordings.clone()).collect();
    let mut runs = tags.clone();
    runs.dedup();
    assert_eq!(
        runs,
        vec![vec![id("A")], vec![id("A"), id("B")], vec![id("B")]],
        "tags per segment: {tags:?}"
    );

    let (a, _) = segments_of(&all, "A");
    let (b, _) = segments_of(&all, "B");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    convert_and_check(a, out.join("A.mp4"));
    convert_and_check(b, out.join("B.mp4"));
}

/// L6: a pause stops the pipeline; after the resume a new pipeline continues the numbering,
/// and the MP4 holds both stretches and nothing of the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_recording_converts_and_a_cancelled_conversion_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(FACTS);
    let handle = media::spawn(small(dir.path()), 0, tx).unwrap();
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    handle.send(capture(&[]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = sealed(&finish(handle, rx).await);
    let seqs: Vec<u64> = all.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (0..all.len() as u64).collect::<Vec<_>>());
    assert!(all.len() >= 2, "{all:?}");

    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let (paths, _) = segments_of(&all, "A");
    convert_and_check(paths.clone(), out_dir.join("A.mp4"));

    let out = out_dir.join("A-again.mp4");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let e = media::convert(&paths, &out, &cancel).unwrap_err();
    assert!(matches!(e, MediaError::Cancelled), "{e}");
    let left: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["A.mp4".to_string()],
        "cancelled conversion left files"
    );
}

/// Issue 10: joins and pauses leave no hole. A and B record together, B pauses while A goes
/// on (B's segments skip a stretch of one capture's clock), both pause (a new pipeline, its
/// clock from the start again), both resume. Each MP4 is read by ffprobe: no step above 1.5
/// packet durations in any stream, and as long as its segments within a frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_pauses_convert_without_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(256);
    let handle = media::spawn(small(dir.path()), 0, tx).unwrap();
    handle.send(capture(&["A", "B"]));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    handle.send(capture(&[]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    handle.send(capture(&["A", "B"]));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let all = sealed(&finish(handle, rx).await);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for recording in ["A", "B"] {
        let (paths, _) = segments_of(&all, recording);
        assert!(paths.len() >= 4, "{recording}: {paths:?}");
        convert_and_check(paths, out.join(format!("{recording}.mp4")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openh264_and_opus_make_playable_segments_and_shutdown_seals_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        encoder: VideoEncoder::OpenH264,
        audio: AudioCodec::Opus,
        ..small(dir.path())
    };
    let (tx, rx) = mpsc::channel(FACTS);
    let handle = media::spawn(settings.clone(), 0, tx).unwrap();
    handle.send(capture(&["X"]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // No empty SetCapture: shutdown itself must stop capture and seal the open segment.
    let all = sealed(&finish(handle, rx).await);
    assert!(all.len() >= 2, "{all:?}");
    for s in &all {
        check_segment(s, &settings, "audio/x-opus");
        assert_eq!(s.recordings, vec![id("X")]);
    }
    let (x, _) = segments_of(&all, "X");
    convert_and_check(x, dir.path().join("X.mp4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_is_reported_without_capture() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let handle = media::spawn(small(dir.path()), 0, tx).unwrap();
    handle.send(MediaCommand::SetMuted(true));
    let fact = tokio::time::timeout(FACT_TIMEOUT, rx.recv()).await.unwrap();
    assert_eq!(fact, Some(MediaFact::Muted(true)));
    handle.send(MediaCommand::SetMuted(false));
    let fact = tokio::time::timeout(FACT_TIMEOUT, rx.recv()).await.unwrap();
    assert_eq!(fact, Some(MediaFact::Muted(false)));
    assert!(finish(handle, rx).await.is_empty());
}

/// A segment name pointing at /dev/full makes every write fail with ENOSPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_and_the_next_capture_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let settings = small(dir.path());
    std::fs::create_dir_all(&settings.segments_dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", settings.segments_dir.join("00000003.ts")).unwrap();
    let (tx, mut rx) = mpsc::channel(FACTS);
    let handle = media::spawn(settings.clone(), 3, tx).unwrap();
    handle.send(capture(&["A"]));
    // The first fact but level readings, pictures and picture looks (one may come before the
    // first write fails).
    let fact = loop {
        match tokio::time::timeout(FACT_TIMEOUT, rx.recv()).await.unwrap() {
            Some(MediaFact::Levels(_) | MediaFact::Preview(_) | MediaFact::Picture(_)) => continue,
            other => break other,
        }
    };
    assert!(matches!(fact, Some(MediaFact::DiskFull { .. })), "{fact:?}");

    // Media keeps running: the next capture writes the next number, which plays.
    handle.send(capture(&[]));
    handle.send(capture(&["B"]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = sealed(&finish(handle, rx).await);
    assert!(!all.is_empty());
    assert_eq!(all[0].seq, 4);
    for s in &all {
        check_segment(s, &settings, "audio/mpeg");
    }
}

#[test]
fn missing_encoder_or_bad_settings_fail_at_spawn() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let bad = MediaSettings {
        framerate: 0,
        ..small(dir.path())
    };
    let e = media::spawn(bad, 0, tx).err().expect("refused");
    assert!(matches!(e, MediaError::Settings(_)), "{e}");
}

/// Index of the fact releasing `recording`, after checking it is released exactly once and no
/// segment of it is reported afterwards.
fn released_at(facts: &[MediaFact], recording: &str) -> usize {
    let positions: Vec<usize> = facts
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, MediaFact::Released { recordings } if recordings.contains(&id(recording))))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        positions.len(),
        1,
        "{recording} released exactly once: {facts:#?}"
    );
    let later_segment = facts[positions[0]..]
        .iter()
        .any(|f| matches!(f, MediaFact::Sealed(s) if s.recordings.contains(&id(recording))));
    assert!(
        !later_segment,
        "no segment of {recording} after its release: {facts:#?}"
    );
    positions[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_released_only_after_its_last_segment_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(256);
    let handle = media::spawn(small(dir.path()), 1, tx).expect("media starts");
    handle.send(capture(&["A", "B"]));
    let mut facts = Vec::new();
    // Wait for a couple of shared segments, then let A go while B carries on.
    while sealed(&facts).len() < 2 {
        let f = tokio::time::timeout(FACT_TIMEOUT, rx.recv())
            .await
            .expect("a fact")
            .expect("open");
        facts.push(f);
    }
    handle.send(capture(&["B"]));
    while !facts
        .iter()
        .any(|f| matches!(f, MediaFact::Released { .. }))
    {
        let f = tokio::time::timeout(FACT_TIMEOUT, rx.recv())
            .await
            .expect("a fact")
            .expect("open");
        facts.push(f);
    }
    handle.send(capture(&[]));
    facts.extend(finish(handle, rx).await);
    let a = released_at(&facts, "A");
    let b = released_at(&facts, "B");
    assert!(a < b, "A (dropped first) is released before B");
    let b_after_a = facts[a..]
        .iter()
        .any(|f| matches!(f, MediaFact::Sealed(s) if s.recordings == vec![id("B")]));
    assert!(
        b_after_a,
        "B kept recording after A was released: {facts:#?}"
    );
}

/// Crash safety: a segment cut off at an arbitrary byte (kill -9 or power loss mid-write)
/// still plays up to the cut and converts to an MP4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_cut_short_by_a_crash_still_plays_and_converts() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(FACTS);
    let handle = media::spawn(small(dir.path()), 0, tx).unwrap();
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = sealed(&finish(handle, rx).await);
    let whole = &all[0];
    let bytes = std::fs::read(&whole.abs_path).unwrap();
    // Not on a packet boundary: the last packet is torn, as a crash leaves it.
    let cut = bytes.len() * 3 / 5 + 77;
    let torn = dir.path().join("torn.ts");
    std::fs::write(&torn, &bytes[..cut]).unwrap();
    let info = media::probe(&torn).expect("the torn segment plays");
    assert!(info.video.is_some(), "{info:?}");
    assert!(
        info.duration_ms > 0 && info.duration_ms < whole.duration_ms,
        "torn {} ms of {} ms",
        info.duration_ms,
        whole.duration_ms
    );
    let mp4 = dir.path().join("torn.mp4");
    let converted = media::convert(&[torn], &mp4, &CancellationToken::new()).expect("converts");
    assert!(converted.duration_ms > 0);
}

/// Video frames in a file, counted by demuxing it (`qtdemux` for MP4, `tsdemux` for TS).
fn video_frames(path: &Path, demuxer: &str) -> u64 {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let launch = format!(
        "filesrc location={} ! {demuxer} ! video/x-h264 ! fakesink name=sink sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&launch)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let sink = pipeline.by_name("sink").unwrap();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counted.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("demuxing ends");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "{}: {msg:?}",
        path.display()
    );
    count.load(Ordering::Relaxed)
}

/// The head of a real segment: its tables and its first video frame, without any audio packet
/// (the PMT still lists the audio stream, as roomrec's muxer wrote it): what a capture stopped
/// just after a cut leaves as its last segment.
fn first_frame_only(segment: &Path, out: &Path) {
    let data = std::fs::read(segment).unwrap();
    let pid = |p: &[u8]| (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
    let pes_stream = |p: &[u8]| {
        let at = if p[3] & 0x20 != 0 {
            5 + usize::from(p[4])
        } else {
            4
        };
        (p[1] & 0x40 != 0 && p.get(at..at + 3) == Some(&[0, 0, 1][..]))
            .then(|| p.get(at + 3).copied())
            .flatten()
    };
    let (mut video, mut audio, mut frames) = (None, None, 0);
    let mut head = Vec::new();
    for p in data.chunks_exact(188) {
        match pes_stream(p) {
            Some(0xE0..=0xEF) => {
                video = Some(pid(p));
                frames += 1;
            }
            Some(0xC0..=0xDF) => audio = Some(pid(p)),
            _ => {}
        }
        if frames > 1 {
            break;
        }
        if audio != Some(pid(p)) {
            head.extend_from_slice(p);
        }
    }
    assert!(video.is_some() && frames > 1, "{}", segment.display());
    std::fs::write(out, head).unwrap();
}

/// Defect found in QEMU (camera-removed): the last segment of a capture stopped just after a
/// cut held two frames and no audio (4 TS packets); the Discoverer and splitmuxsrc could not type it and the
/// whole conversion failed. It is media: the MP4 must hold every frame, its frames included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_last_segment_without_audio_still_converts_with_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(FACTS);
    // A small, plain picture, so that one keyframe fits in a few TS packets as in QEMU.
    let settings = MediaSettings {
        width: 160,
        height: 120,
        video_bitrate_kbps: 100,
        ..small(dir.path())
    };
    let handle = media::spawn(settings, 0, tx).unwrap();
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let all = sealed(&finish(handle, rx).await);
    let (mut segments, _) = segments_of(&all, "A");
    let last = segments.last().expect("segments were sealed").clone();
    let tiny = dir.path().join("segments").join("99999999.ts");
    first_frame_only(&last, &tiny);
    let tiny_bytes = std::fs::metadata(&tiny).unwrap().len();
    assert!(
        tiny_bytes < 16 * 188,
        "the tiny segment has {tiny_bytes} bytes"
    );
    let before: u64 = segments.iter().map(|s| video_frames(s, "tsdemux")).sum();
    segments.push(tiny.clone());
    let out = dir.path().join("A.mp4");
    let info = media::convert(&segments, &out, &CancellationToken::new()).expect("converts");
    assert!(info.video.is_some() && info.audio.is_some(), "{info:?}");
    assert_eq!(
        video_frames(&out, "qtdemux"),
        before + 1,
        "the MP4 holds every frame of the segments and the one of the tiny segment"
    );
    // No padded copies are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A tmpfs of `mib` MiB mounted on a fresh folder, unmounted on drop. Needs root and mount
/// rights, which CI has; without them the test fails rather than pass vacuously.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs: run the tests as root (CI does)"
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Issue 10, disk planning: on a disk without room for the MP4 the conversion refuses before
/// writing anything, saying how much is missing, and every segment is kept as it was; with
/// room (the index reserved in front, no faststart copy) the same segments convert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_without_room_for_the_mp4_is_refused_up_front_and_keeps_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(FACTS);
    let handle = media::spawn(small(dir.path()), 0, tx).unwrap();
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let all = sealed(&finish(handle, rx).await);
    let (paths, _) = segments_of(&all, "A");
    let hashes: Vec<String> = paths.iter().map(|p| sha256_of(p)).collect();

    // 2 MiB: less than the segments plus the reserved index plus the 4 MiB kept spare.
    let small_disk = Tmpfs::mount(2);
    let out = small_disk.dir.path().join("A.mp4");
    let e = media::convert(&paths, &out, &CancellationToken::new()).unwrap_err();
    let text = e.to_string();
    eprintln!("{text}");
    assert!(matches!(e, MediaError::NoRoom { .. }), "{e:?}");
    assert!(
        text.contains("MiB") && text.contains("every segment is kept"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(small_disk.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
    let after: Vec<String> = paths.iter().map(|p| sha256_of(p)).collect();
    assert_eq!(hashes, after, "every segment kept as it was");

    let roomy = Tmpfs::mount(16);
    let out = roomy.dir.path().join("A.mp4");
    convert_and_check(paths.clone(), out.clone());
    let mp4_bytes = std::fs::metadata(&out).unwrap().len();
    let segment_bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    eprintln!("segments {segment_bytes} B, MP4 {mp4_bytes} B");
    assert!(
        mp4_bytes < segment_bytes + (1 << 20),
        "{mp4_bytes} vs {segment_bytes}"
    );
}
