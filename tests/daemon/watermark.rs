//! W1, W2, W4 end to end: the daemon records with the meeting's watermark settings, and the
//! text is read back by OCR (tesseract) from frames ffmpeg takes out of what the user gets:
//! the cloud recording's HLS playlist and segments as uploaded to a real S3 server (s3s-fs),
//! and the local recording's MP4. 640x360, the smallest size the watermark must be legible
//! at, with the product's own font, sizes and opacity.
use crate::common;

use std::path::PathBuf;

use common::device::{config_text, Client, Device};
use common::ocr::{Crop, Reader};
use common::s3::S3Server;
use common::Broker;
use roomrec::catalog::Catalog;
use serde_json::{json, Value};

/// Capitals and a short word: what tesseract reads reliably at the sizes the device draws.
const TEXT: &str = "ACME ROOM";
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

/// A device at 360p (1 s segments) with cloud recording to `s3`.
fn device(broker: &Broker, s3: &S3Server) -> Device {
    let port = broker.port;
    let upload = s3.upload_toml("");
    Device::start_custom(|dir| {
        config_text(port, dir, &upload).replace(
            "width = 320\nheight = 240",
            &format!("width = {WIDTH}\nheight = {HEIGHT}"),
        )
    })
}

/// Meeting m-1 (see `common::device::meeting`) on `tier` with these `settings`.
fn meeting(version: u64, tier: &str, settings: Value) -> Value {
    let mut m = common::device::meeting(version);
    m["account"]["tier"] = json!(tier);
    if !settings.is_null() {
        m["settings"] = settings;
    }
    m
}

fn watermark(video: &str) -> Value {
    json!({"watermark": {"video": video, "text": TEXT}})
}

/// The four quarters of the frame: half its width and half its height each.
fn quarters() -> [Crop; 4] {
    let (w, h) = (WIDTH / 2, HEIGHT / 2);
    [(0, 0, w, h), (w, 0, w, h), (0, h, w, h), (w, h, w, h)]
}

/// Ends the meeting and waits until the cloud recording `rid` is uploaded; returns its
/// playlist in the S3 server's folder.
async fn cloud_playlist(c: &mut Client, s3: &S3Server, rid: &str, version: u64) -> PathBuf {
    let mut ended = common::device::meeting(version);
    ended["state"] = json!("ended");
    c.meeting(ended).await;
    let ready = c.wait_event("recording_ready").await;
    assert_eq!(ready["recording_id"], rid, "{ready}");
    let playlist = s3.object_path(&format!("u-1/m-1/{rid}/index.m3u8"));
    assert!(playlist.is_file(), "no playlist at {}", playlist.display());
    playlist
}

/// The uploaded segment objects of `rid`, oldest first.
fn uploaded_segments(device: &Device, s3: &S3Server, rid: &str) -> Vec<PathBuf> {
    let catalog = Catalog::open(&device.storage().join("catalog.sqlite3")).expect("catalog");
    let id = roomrec::protocol::Id::parse(rid).expect("id");
    catalog
        .segments_of(&id)
        .expect("segments")
        .iter()
        .map(|seg| s3.object_path(&format!("u-1/m-1/{rid}/{:08}.ts", seg.seq)))
        .collect()
}

/// A broker, an S3 server, a 360p device and a client that has sent the licence and meeting
/// m-1 on `tier` with `settings` (version 1), once the device applied it. Kept whole by the
/// tests: dropping a field stops that service.
struct Setup {
    _broker: Broker,
    s3: S3Server,
    device: Device,
    ocr: Reader,
    c: Client,
    /// The state once the meeting applied.
    state: Value,
}

async fn setup(tier: &str, settings: Value) -> Setup {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let device = device(&broker, &s3);
    let mut c = Client::connect(&broker).await;
    c.licence("2099-01-01T00:00:00Z").await;
    c.meeting(meeting(1, tier, settings)).await;
    let state = c
        .wait_state("meeting applied", |s| s["meeting_version"] == 1)
        .await;
    Setup {
        _broker: broker,
        s3,
        device,
        ocr: Reader::new(TEXT),
        c,
        state,
    }
}

/// W1, W4: one row on a free account, in the cloud recording's HLS and in the MP4 of a local
/// recording that shares the capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_single_watermark_is_read_back_from_the_hls_and_the_mp4() {
    let mut t = setup("free", watermark("single")).await;
    assert_eq!(
        t.state["in_force"]["watermark"]["video"], "single",
        "{}",
        t.state
    );
    assert_eq!(
        t.state["in_force"]["watermark"]["text"], TEXT,
        "{}",
        t.state
    );

    let cloud = t.c.start_recording("u-2", "cloud").await;
    let local = t.c.start_recording("u-1", "local").await;
    // L4: a local recording needs 10 s to be kept.
    t.c.wait_state("10.5 s of local recording", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 10_500
    })
    .await;
    let playlist = cloud_playlist(&mut t.c, &t.s3, &cloud, 2).await;
    let done = t.c.wait_event("conversion_done").await;
    assert_eq!(done["recording_id"], local.as_str(), "{done}");
    let mp4 = PathBuf::from(done["location"].as_str().expect("the MP4's location"));

    assert!(
        t.ocr.reads_mostly(&playlist, &[0.5, 1.5, 2.5], None),
        "no watermark in the HLS"
    );
    assert!(
        t.ocr.reads_mostly(&mp4, &[0.5, 1.5, 2.5], None),
        "no watermark in the MP4"
    );
    assert!(
        t.ocr.reads_mostly(&mp4, &[8.0, 9.0, 10.0], None),
        "no watermark late in the MP4"
    );
}

/// W2: on a business account the text is in every quarter of the frame, read from the HLS,
/// before a pause and after it (the resume starts a new capture, which must mark again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w2_multi_watermark_is_read_in_every_quarter_of_the_frame_across_a_pause() {
    let mut t = setup("business", watermark("multi")).await;
    assert_eq!(
        t.state["in_force"]["watermark"]["video"], "multi",
        "{}",
        t.state
    );

    let rid = t.c.start_recording("u-2", "cloud").await;
    t.c.wait_state("3 s of cloud media", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 3000
    })
    .await;
    for action in ["pause", "resume"] {
        let r = t.c.cmd(json!({"actor": "u-2", "action": action})).await;
        assert_eq!(r["ok"], true, "{action}: {r}");
    }
    t.c.wait_state("3 s more after the resume", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 6000
    })
    .await;
    let playlist = cloud_playlist(&mut t.c, &t.s3, &rid, 2).await;
    // Before the pause, in the playlist, and in the last whole segment (the last one may be
    // short): 2 s after the resume (ffmpeg seeks a playlist by its timestamps, which start
    // again after a pause).
    let segments = uploaded_segments(&t.device, &t.s3, &rid);
    let last = &segments[segments.len() - 2];
    for (input, at) in [(&playlist, 1.5), (last, 0.5)] {
        for q in quarters() {
            assert!(
                t.ocr.reads(input, 0, at, Some(q)),
                "no whole watermark in the quarter {q:?} of {} at {at} s",
                input.display()
            );
        }
    }
}

/// W2 below business: one row instead, and the host team is told (reason `tier`); W4: a
/// change to no watermark applies from the next segment, which then holds no text at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w2_w4_a_low_tier_records_one_row_and_turning_it_off_applies_at_the_next_segment() {
    let mut t = setup("pro", watermark("multi")).await;
    let told = t.c.wait_event("watermark_downgraded").await;
    assert_eq!(told["reason"], "tier", "{told}");
    assert_eq!(told["to"], json!(["u-1", "u-2"]), "{told}");
    assert_eq!(
        t.state["in_force"]["watermark"]["video"], "single",
        "{}",
        t.state
    );

    let rid = t.c.start_recording("u-2", "cloud").await;
    t.c.wait_state("2 s with the watermark", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 2000
    })
    .await;
    t.c.meeting(meeting(2, "pro", Value::Null)).await;
    t.c.wait_state("watermark off", |s| {
        s["in_force"]["watermark"]["video"] == "off"
    })
    .await;
    let s =
        t.c.wait_state("2.5 s more", |s| {
            s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 4500
        })
        .await;
    assert_eq!(s["meeting_version"], 2, "{s}");
    let playlist = cloud_playlist(&mut t.c, &t.s3, &rid, 3).await;
    let segments = uploaded_segments(&t.device, &t.s3, &rid);
    assert!(segments.len() >= 4, "{segments:?}");

    // One row: in the middle of the frame, but no whole copy in a corner quarter.
    assert!(
        t.ocr.reads_mostly(&playlist, &[0.3, 0.9, 1.5], None),
        "no watermark at the start"
    );
    assert!(
        t.ocr.reads_mostly(&segments[0], &[0.0, 0.3, 0.6], None),
        "no watermark in the first segment object"
    );
    assert!(
        !t.ocr.reads(&playlist, 0, 0.5, Some(quarters()[0])),
        "a whole copy in the top-left quarter: more than one row"
    );
    // The last whole segment started after the change: no text anywhere in it.
    let after = &segments[segments.len() - 2];
    let span = common::ffprobe::duration(after);
    for at in [0.0, span / 2.0] {
        assert!(
            !t.ocr.reads(after, 0, at, None),
            "text in {} after the watermark was turned off",
            after.display()
        );
    }
}

/// Bad input: a watermark text that is too long, holds a control character or looks like
/// markup is refused with `bad_request` (the event `settings_refused` to the host team, naming
/// the field and the fault), the meeting is otherwise applied with no watermark, and it
/// records as always; a valid text afterwards is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_watermark_text_is_refused_and_the_meeting_still_applies_and_records() {
    let long = "W".repeat(65);
    let bad = [
        ("<b>ACME</b>", "looks like markup"),
        ("ACME\u{7}ROOM", "U+0007"),
        ("ACME\u{202E}MOOR", "U+202E"),
        (long.as_str(), "65 characters"),
    ];
    let mut t = setup("business", Value::Null).await;
    for (i, (text, why)) in bad.iter().enumerate() {
        let version = i as u64 + 2;
        let settings = json!({"watermark": {"video": "multi", "text": text}});
        t.c.meeting(meeting(version, "business", settings)).await;
        let told = t.c.wait_event("settings_refused").await;
        assert_eq!(told["error"]["code"], "bad_request", "{told}");
        let message = told["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("settings.watermark.text") && message.contains(why),
            "{text:?}: the sentence names the field and says {why:?}: {message}"
        );
        assert_eq!(told["to"], json!(["u-1", "u-2"]), "{told}");
        t.c.wait_state("the meeting applied, with no watermark", |s| {
            s["meeting_version"] == version && s["in_force"]["watermark"]["video"] == "off"
        })
        .await;
    }
    // Still the meeting: a local recording is made and converted as always.
    t.c.start_recording("u-1", "local").await;
    t.c.wait_state("10.5 s recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 10_500
    })
    .await;
    let mut ended = meeting(bad.len() as u64 + 2, "business", Value::Null);
    ended["state"] = json!("ended");
    t.c.meeting(ended).await;
    let done = t.c.wait_event("conversion_done").await;
    let mp4 = PathBuf::from(done["location"].as_str().expect("the MP4's location"));
    let info = roomrec::media::probe(&mp4).expect("the MP4 plays");
    assert!(info.duration_ms >= 10_000, "{info:?}");
    assert!(
        !t.ocr.reads(&mp4, 0, 2.0, None),
        "no text was burned in from a refused setting"
    );
}
