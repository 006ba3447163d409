//! T1 from the outside: the daemon's `status` says whether transcription is available, and a
//! missing speech model never touches recording.

use crate::common;

use std::path::PathBuf;

use common::device::{Client, Device, PREFIX};
use common::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_is_unavailable_in_status_and_recordings_are_made_as_always() {
    let broker = Broker::start();
    let model = tempfile::tempdir().expect("dir");
    let nowhere = model.path().join("no-model");
    let extra = format!("[transcription]\nmodel_dir = \"{}\"\n", nowhere.display());
    let _device = Device::start(&broker, &extra);
    let mut c = Client::connect(&broker).await;
    let status = c
        .wait("status with transcription", |m| {
            m.topic == format!("{PREFIX}/status") && m.json["online"] == true
        })
        .await;
    let t = &status.json["transcription"];
    assert_eq!(t["available"], false, "{}", status.json);
    let reason = t["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("no-model") && reason.contains("transcription.model_dir"),
        "the reason names the folder and the key to set: {reason}"
    );

    c.join_meeting().await;
    let local = c.start_recording("u-1", "local").await;
    c.wait_state("11 s recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 11_000
    })
    .await;
    c.end_meeting().await;
    let done = c.wait_event("conversion_done").await;
    assert_eq!(done["recording_id"], local.as_str(), "{done}");
    let mp4 = PathBuf::from(done["location"].as_str().expect("MP4 location"));
    let info = roomrec::media::probe(&mp4).expect("the MP4 plays");
    assert!(info.duration_ms >= 10_000, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_debians_model_installed_transcription_is_available() {
    let broker = Broker::start();
    let _device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    let status = c
        .wait("status", |m| {
            m.topic == format!("{PREFIX}/status") && m.json["online"] == true
        })
        .await;
    assert_eq!(
        status.json["transcription"],
        serde_json::json!({"available": true}),
        "{}",
        status.json
    );
}
