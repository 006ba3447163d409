//! W3 end to end: a pro meeting asking for the audio watermark gets the recording's id in the
//! sound of what the user gets, read back by `roomrecctl watermark read` (its own decode of
//! the file): the local recording's MP4, and the cloud recording's HLS playlist as uploaded to
//! a real S3 server (s3s-fs), from its file and over HTTP; a free one is told and gets none.

use crate::common;

use std::process::Command;

use common::device::{config_text, Client, Device};
use common::s3::S3Server;
use common::{Broker, HttpFolder};
use serde_json::{json, Value};

/// m-1 (`common::device::meeting`) on `tier`, asking for the audio watermark.
fn marked_meeting(tier: &str) -> Value {
    let mut m = common::device::meeting(1);
    m["account"]["tier"] = tier.into();
    m["settings"] = json!({"watermark": {"video": "off", "audio": true}});
    m
}

/// Records 17 s locally (a whole 15 s excerpt and more) in `meeting`; the recording's id and
/// `roomrecctl watermark read --json` of its MP4 (exit code, JSON).
async fn record_and_read(meeting: Value) -> (String, i32, Value, Client) {
    let broker = Broker::start();
    let _device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    c.licence("2099-01-01T00:00:00Z").await;
    c.meeting(meeting).await;
    c.wait_state("meeting applied", |s| s["meeting_version"] == 1)
        .await;
    let (local, mp4) = c.local_mp4(17_000).await;
    let (code, reading) = read(&mp4);
    (local, code, reading, c)
}

/// `roomrecctl --json watermark read SOURCE`: its exit code and its JSON.
fn read(source: impl AsRef<std::ffi::OsStr>) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_roomrecctl"))
        .args(["--json", "watermark", "read"])
        .arg(source)
        .output()
        .expect("roomrecctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reading: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), reading)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3_a_pro_recording_carries_its_id_in_its_sound() {
    let (local, code, reading, _c) = record_and_read(marked_meeting("pro")).await;
    assert_eq!(code, 0, "{reading}");
    assert_eq!(reading["recording_id"], local.as_str(), "{reading}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3_a_free_recording_is_told_and_carries_no_mark() {
    let (_local, code, reading, mut c) = record_and_read(marked_meeting("free")).await;
    // exit 5: no watermark (never a wrong id).
    assert_eq!(code, 5, "{reading}");
    assert_eq!(reading["watermark"], Value::Null, "{reading}");
    let told = c.wait_event("audio_watermark_unavailable").await;
    assert_eq!(told["reason"], "tier", "{told}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3_a_pro_cloud_recording_carries_its_id_in_its_uploaded_hls() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let (port, upload) = (broker.port, s3.upload_toml(""));
    let _device = Device::start_custom(|dir| config_text(port, dir, &upload));
    let mut c = Client::connect(&broker).await;
    c.licence("2099-01-01T00:00:00Z").await;
    c.meeting(marked_meeting("pro")).await;
    c.wait_state("meeting applied", |s| s["meeting_version"] == 1)
        .await;
    let cloud = c.start_recording("u-1", "cloud").await;
    c.wait_state("17 s recorded", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 17_000
    })
    .await;
    c.end_meeting().await;
    let ready = c.wait_event("recording_ready").await;
    assert_eq!(ready["recording_id"], cloud.as_str(), "{ready}");
    let playlist = s3.object_path(&format!("u-1/m-1/{cloud}/index.m3u8"));
    let (code, reading) = read(&playlist);
    assert_eq!(code, 0, "{reading}");
    assert_eq!(reading["recording_id"], cloud.as_str(), "{reading}");

    // The same playlist as someone meets it on the web: its URL, the segments fetched by the
    // URIs the playlist lists, relative to it (the bucket's files served read-only by HTTP,
    // as a public bucket or a CDN would).
    let web = HttpFolder::serve(&s3.data());
    let url = web.url(&format!(
        "{}/u-1/m-1/{cloud}/index.m3u8",
        common::s3::BUCKET
    ));
    let (code, reading) = read(&url);
    assert_eq!(code, 0, "{url}: {reading}");
    assert_eq!(reading["recording_id"], cloud.as_str(), "{url}: {reading}");
    // A URL that serves nothing is bad input (exit 2) named in the error, never "no
    // watermark" (exit 5).
    let missing = web.url("recordings/none/index.m3u8");
    let out = Command::new(env!("CARGO_BIN_EXE_roomrecctl"))
        .args(["watermark", "read", &missing])
        .output()
        .expect("roomrecctl runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&missing) && said.contains("404"),
        "the error names the URL and the answer: {said}"
    );
}
