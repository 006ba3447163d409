//! The confidence picture end to end: a real roomrecd at 360p on the test source publishes, on
//! `<p>/preview` while it records and not while idle, a small JPEG of exactly what it records:
//! ffprobe (not the GStreamer that wrote it) reads a 320×180 JPEG within the 30 kB limit, and
//! OCR reads the meeting's watermark in it, which only the recorded picture carries. A client
//! that connects later gets the latest picture at once (retained).

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::device::{config_text, Client, Device, Msg, PREFIX};
use common::ocr::Reader;
use common::Broker;
use serde_json::json;

const TEXT: &str = "ACME ROOM";

fn is_preview(m: &Msg) -> bool {
    m.topic == format!("{PREFIX}/preview")
}

/// ffprobe's codec, width and height of the picture in `path`.
fn probe(path: &std::path::Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A roomrecd at 360p on the test source, licensed, in meeting 1 (host u-1) with the single
/// watermark [`TEXT`], idle.
async fn in_a_watermarked_meeting(broker: &Broker) -> (Device, Client) {
    let port = broker.port;
    let device = Device::start_custom(|dir| {
        config_text(port, dir, "").replace("width = 320\nheight = 240", "width = 640\nheight = 360")
    });
    let mut c = Client::connect(broker).await;
    c.licence("2099-01-01T00:00:00Z").await;
    let mut meeting = common::device::meeting(1);
    meeting["settings"] = json!({"watermark": {"video": "single", "text": TEXT}});
    c.meeting(meeting).await;
    c.wait_state("meeting applied", |s| s["meeting_version"] == 1)
        .await;
    (device, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_is_a_small_jpeg_of_the_recorded_picture_while_recording() {
    let broker = Broker::start();
    let (_device, mut c) = in_a_watermarked_meeting(&broker).await;

    // Idle: no picture.
    c.drain_for(Duration::from_secs(3)).await;
    assert!(!c.seen.iter().any(is_preview), "a preview while idle");

    c.start_recording("u-1", "local").await;
    let first = c.wait("a preview", is_preview).await;
    let work = tempfile::tempdir().unwrap();
    let jpeg = work.path().join("preview.jpg");
    std::fs::write(&jpeg, &first.payload).unwrap();
    assert_eq!(probe(&jpeg), "mjpeg,320,180", "what ffprobe reads");
    assert!(
        (1_000..=roomrec::media::PREVIEW_MAX_BYTES).contains(&first.payload.len()),
        "{} bytes",
        first.payload.len()
    );
    // The test picture's ball crosses the middle row and can hide a letter in one picture
    // (as a hand in front of a camera would): the text is read in one of three pictures.
    let ocr = Reader::new(TEXT);
    let mut pictures = vec![first.payload.clone()];
    let mut read = ocr.reads_picture(&jpeg);
    while !read && pictures.len() < 3 {
        let next = c.wait("another preview", is_preview).await;
        assert!(
            !pictures.contains(&next.payload),
            "each preview is a new picture"
        );
        std::fs::write(&jpeg, &next.payload).unwrap();
        read = ocr.reads_picture(&jpeg);
        pictures.push(next.payload);
    }
    assert!(
        read,
        "the watermark is read in one of {} previews",
        pictures.len()
    );
    // Pictures keep coming while it records.
    let again = c.wait("a further preview", is_preview).await;
    assert!(!pictures.contains(&again.payload), "a new picture");

    // A console that opens the device now gets the latest picture at once.
    let mut late = Client::connect(&broker).await;
    let retained = late.wait("the retained preview", is_preview).await;
    assert!(retained.retain, "the preview is retained");

    // Stopped: no more pictures.
    let r = c
        .cmd(json!({"actor": "u-1", "action": "stop", "kind": "local"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    c.seen.clear();
    c.drain_for(Duration::from_secs(2)).await;
    c.seen.clear();
    c.drain_for(roomrec::media::PREVIEW_INTERVAL + Duration::from_secs(2))
        .await;
    assert!(
        !c.seen.iter().any(is_preview),
        "a preview after the recording stopped"
    );
}

/// An admin's `preview`: refused while a meeting is on and nothing records it (nobody there
/// agreed to a picture); taken while it records; and with no meeting on, one picture of the
/// camera (here the test picture, without the meeting's watermark: nothing is recorded),
/// published like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_gets_a_preview_on_request_but_never_of_an_unrecorded_meeting() {
    let broker = Broker::start();
    let (mut device, mut c) = in_a_watermarked_meeting(&broker).await;

    let r = c
        .cmd(json!({"actor": "admin:ops", "action": "preview"}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    c.drain_for(Duration::from_secs(2)).await;
    assert!(
        !c.seen.iter().any(is_preview),
        "a picture of an unrecorded meeting"
    );
    let r = c.cmd(json!({"actor": "u-1", "action": "preview"})).await;
    assert_eq!(r["error"]["code"], "forbidden", "a participant: {r}");

    c.start_recording("u-1", "local").await;
    c.wait("the first preview", is_preview).await;
    c.seen.clear();
    let r = c
        .cmd(json!({"actor": "admin:ops", "action": "preview"}))
        .await;
    assert_eq!(r["ok"], true, "while recording: {r}");
    c.wait("the preview asked for", is_preview).await;

    c.end_meeting().await;
    c.wait_event("recording_stopped").await;
    c.drain_for(Duration::from_secs(2)).await;
    c.seen.clear();
    let r = c
        .cmd(json!({"actor": "admin:ops", "action": "preview"}))
        .await;
    assert_eq!(r["ok"], true, "no meeting on: {r}");
    let picture = c.wait("a picture of the camera", is_preview).await;
    let mut late = Client::connect(&broker).await;
    let retained = late.wait("the retained picture", is_preview).await;
    assert_eq!(
        retained.payload, picture.payload,
        "retained like the others"
    );
    let work = tempfile::tempdir().unwrap();
    let jpeg = work.path().join("camera.jpg");
    std::fs::write(&jpeg, &picture.payload).unwrap();
    assert_eq!(probe(&jpeg), "mjpeg,320,180", "what ffprobe reads");
    assert!(
        (1_000..=roomrec::media::PREVIEW_MAX_BYTES).contains(&picture.payload.len()),
        "{} bytes",
        picture.payload.len()
    );
    assert!(
        !Reader::new(TEXT).reads_picture(&jpeg),
        "the camera's picture carries no recording's watermark"
    );
    assert!(device.log().contains("preview picture of the camera taken"));
    assert_eq!(device.stop(), Some(0));
}
