//! Issue 10, bad input: a segment file missing and another corrupt in the middle of a local
//! recording. The conversion goes on, the MP4 keeps real time across both holes (read by
//! ffprobe, not GStreamer), `conversion_done` names each gap, the recording is `ready`, and
//! the catalog keeps every segment.

use crate::common;

use std::path::{Path, PathBuf};

use common::device::{Client, Device};
use common::{ffprobe, Broker};
use roomrec::catalog::{Catalog, SegmentRecord};
use roomrec::protocol::{Id, RecordingState};
use serde_json::Value;

fn catalog(device: &Device) -> Catalog {
    Catalog::open(&device.storage().join("catalog.sqlite3")).expect("catalog")
}

fn segments_of(device: &Device, recording: &str) -> Vec<SegmentRecord> {
    let id = Id::parse(recording).expect("id");
    catalog(device).segments_of(&id).expect("segments")
}

/// What the MP4 must show of one damaged segment: its seq, cause, and the recording time it
/// held (its video span, measured by ffprobe before it was damaged).
struct Damaged {
    seq: u64,
    cause: &'static str,
    span: f64,
}

/// A file ffprobe can read for a segment: its own, or a decrypted copy.
type Readable<'a> = &'a dyn Fn(&SegmentRecord) -> PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_and_a_corrupt_segment_are_gaps_the_mp4_keeps_real_time_across() {
    let broker = Broker::start();
    let device = Device::start(&broker, "");
    let storage = device.storage();
    let own = |s: &SegmentRecord| storage.join(&s.path);
    record_damage_and_check(&broker, &device, &own).await;
}

/// The same with segments encrypted at rest: a segment that does not decrypt is corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_segments_missing_or_corrupt_are_gaps_too() {
    let broker = Broker::start();
    let (device, key) = crate::encryption::encrypting_device(&broker, "");
    let storage = device.storage();
    let copies = tempfile::tempdir().expect("dir");
    let decrypted = |s: &SegmentRecord| {
        let plain = roomrec::crypt::decrypt_to_vec(&key, s.seq, &storage.join(&s.path))
            .unwrap_or_else(|e| panic!("{}: {e}", s.path));
        let copy = copies.path().join(format!("{}.ts", s.seq));
        std::fs::write(&copy, plain).expect("copy");
        copy
    };
    record_damage_and_check(&broker, &device, &decrypted).await;
}

/// Records 20 s locally; before the meeting ends, deletes one segment well inside the
/// recording, overwrites another with bytes that are no MPEG-TS and truncates a third to
/// nothing (none next to another); then checks the MP4 and `conversion_done`.
async fn record_damage_and_check(broker: &Broker, device: &Device, readable: Readable<'_>) {
    let mut c = Client::connect(broker).await;
    c.join_meeting().await;
    let local = c.start_recording("u-1", "local").await;
    c.wait_state("20 s recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 20_000
    })
    .await;

    let sealed = segments_of(device, &local);
    assert!(sealed.len() >= 12, "{} segments sealed", sealed.len());
    let path = |s: &SegmentRecord| device.storage().join(&s.path);
    let (gone, garbled, emptied) = (&sealed[3], &sealed[6], &sealed[9]);
    let damaged = [
        (gone, "missing"),
        (garbled, "corrupt"),
        (emptied, "corrupt"),
    ]
    .map(|(s, cause)| Damaged {
        seq: s.seq,
        cause,
        span: ffprobe::video_span(&readable(s)),
    });
    std::fs::remove_file(path(gone)).expect("delete a segment");
    let garbage: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(path(garbled), garbage).expect("garble a segment");
    std::fs::write(path(emptied), b"").expect("truncate a segment");

    c.end_meeting().await;
    let topic = format!("{}/events", common::device::PREFIX);
    let done = c
        .wait("the conversion's outcome", |m| {
            m.topic == topic
                && m.json["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("conversion_"))
        })
        .await
        .json;
    assert_eq!(done["type"], "conversion_done", "{done}\n{}", device.log());
    assert_eq!(done["recording_id"], local.as_str(), "{done}");
    let mp4 = PathBuf::from(done["location"].as_str().expect("the MP4's location"));

    // Every segment is still catalogued; every file that was there still is.
    let after = segments_of(device, &local);
    let seqs = |v: &[SegmentRecord]| v.iter().map(|s| s.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&sealed), seqs(&after)[..sealed.len()], "catalogued");
    for s in after.iter().filter(|s| s.seq != gone.seq) {
        assert!(path(s).exists(), "{} is kept", s.path);
    }
    let id = Id::parse(&local).expect("id");
    let rec = catalog(device).recording(&id).expect("read").expect("rec");
    assert_eq!(rec.state, RecordingState::Ready, "{rec:?}");

    check_gaps(&done, &damaged);
    let present: Vec<PathBuf> = after
        .iter()
        .filter(|s| !damaged.iter().any(|d| d.seq == s.seq))
        .map(readable)
        .collect();
    let recorded = ffprobe::recorded(&present) + damaged.iter().map(|d| d.span).sum::<f64>();
    check_timeline(&mp4, recorded, &done);
}

/// `conversion_done` names exactly the damaged segments, in order, each as long as it was.
fn check_gaps(done: &Value, damaged: &[Damaged]) {
    let gaps = done["gaps"].as_array().expect("conversion_done has gaps");
    assert_eq!(gaps.len(), damaged.len(), "{done}");
    for (gap, d) in gaps.iter().zip(damaged) {
        assert_eq!(gap["seqs"], serde_json::json!([d.seq]), "{gap}");
        assert_eq!(gap["cause"], d.cause, "{gap}");
        let ms = gap["duration_ms"].as_f64().expect("duration_ms");
        // Within one frame at 30 fps (and the ms rounding).
        assert!(
            (ms / 1e3 - d.span).abs() <= 0.035,
            "gap of {ms} ms for a segment of {:.3} s: {gap}",
            d.span
        );
    }
}

/// ffprobe: the MP4 lasts the recorded time (the damaged segments' included) within one
/// frame, and its only steps above 1.5 packet durations are the declared gaps, each stepping
/// by the gap and one packet.
fn check_timeline(mp4: &Path, recorded: f64, done: &Value) {
    let total = ffprobe::duration(mp4);
    let runs = ffprobe::stream_runs(mp4);
    let frame = runs
        .iter()
        .find(|r| r.kind == "video")
        .map(|r| r.usual)
        .expect("video");
    eprintln!(
        "{}: {total:.3} s for {recorded:.3} s recorded",
        mp4.display()
    );
    eprintln!("{done}");
    assert!(
        (total - recorded).abs() <= frame + 1e-3,
        "the MP4 lasts {total:.3} s for {recorded:.3} s recorded (a frame is {frame:.3} s)"
    );
    let gaps: Vec<(f64, f64)> = done["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .map(|g| {
            let ms = |k: &str| g[k].as_f64().expect("ms") / 1e3;
            (ms("start_ms"), ms("duration_ms"))
        })
        .collect();
    let steps = ffprobe::steps_over(mp4, 1.5);
    for s in &steps {
        eprintln!("{} step {:.1} ms after {:.3} s", s.kind, s.step * 1e3, s.at);
    }
    for s in &steps {
        let declared = gaps.iter().any(|(start, len)| {
            // The step runs from the last packet before the gap to the first after it.
            (s.at + s.step - (start + len)).abs() <= frame + s.usual
                && (s.step - s.usual - len).abs() <= frame
        });
        assert!(
            declared,
            "{} steps {:.1} ms after {:.3} s, not at a declared gap {gaps:?}",
            s.kind,
            s.step * 1e3,
            s.at
        );
    }
    // AAC (the default): silent packets fill each gap, the sound has no hole.
    assert!(
        steps.iter().all(|s| s.kind != "audio"),
        "the sound is silent across each gap, not absent"
    );
    let video_steps = steps.iter().filter(|s| s.kind == "video").count();
    assert_eq!(
        video_steps,
        gaps.len(),
        "the picture holds its last frame across each gap, and only there: {gaps:?}"
    );
}
