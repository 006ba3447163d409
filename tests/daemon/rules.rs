//! One end-to-end scenario per rule group (C, L, X, M, D, E1), through the real daemon, broker
//! and GStreamer pipeline. The full rule table is in the engine's unit tests.
use crate::common;

use std::time::Duration;

use common::device::{meeting, Client, Device, UPLOAD};
use common::Broker;
use serde_json::{json, Value};

async fn with_meeting(extra: &str) -> (Broker, Device, Client) {
    let broker = Broker::start();
    let device = Device::start(&broker, extra);
    let mut client = Client::connect(&broker).await;
    client.licence("2099-01-01T00:00:00Z").await;
    client.meeting(meeting(1)).await;
    client
        .wait_state("meeting applied", |s| s["meeting_version"] == 1)
        .await;
    (broker, device, client)
}

fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_cloud_recording_by_hosts_requests_by_members() {
    let (_b, _d, mut c) = with_meeting(UPLOAD).await;
    // C1: a member may not start cloud recording.
    let r = c
        .cmd(json!({"actor": "u-3", "action": "start", "kind": "cloud"}))
        .await;
    assert_eq!(code(&r), "forbidden", "{r}");
    // C2: the member's request reaches the host and co-hosts; the co-host approves.
    let r = c
        .cmd(json!({"actor": "u-3", "action": "request_cloud"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let ev = c.wait_event("cloud_record_requested").await;
    let to: Vec<_> = ev["to"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(to.contains(&"u-1") && to.contains(&"u-2"), "{ev}");
    let r = c
        .cmd(json!({"actor": "u-2", "action": "approve_cloud", "requester": "u-3"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    // C3/C4: one cloud recording, owned by the creator, viewed as cloud by every host.
    assert_eq!(r["state"]["cloud"]["state"], "recording");
    assert_eq!(r["state"]["cloud"]["owner"], "u-1");
    assert_eq!(r["state"]["views"]["u-1"], "cloud");
    assert_eq!(r["state"]["views"]["u-2"], "cloud");
    let again = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "cloud"}))
        .await;
    assert_eq!(
        again["ok"], true,
        "starting it again is not an error: {again}"
    );
    // Real segments are sealed for it.
    c.wait_state("cloud bytes recorded", |s| {
        s["cloud"]["bytes"].as_u64().unwrap_or(0) > 0
    })
    .await;
    // C6: all hosts leave → cloud stops at once.
    let mut left = meeting(2);
    left["participants"] = json!(["u-3", "u-4"]);
    c.meeting(left).await;
    let ev = c.wait_event("recording_stopped").await;
    assert_eq!(ev["reason"], "all_hosts_left", "{ev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l_local_permissions_and_the_ten_second_minimum() {
    let (_b, _d, mut c) = with_meeting("").await;
    // L1/L3: under host_only a member is refused and the host is asked.
    let r = c
        .cmd(json!({"actor": "u-3", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(code(&r), "forbidden", "{r}");
    let ev = c.wait_event("local_record_requested").await;
    assert_eq!(ev["to"], json!(["u-1"]), "{ev}");
    // L2: allowing switches the policy to selected and tells the member.
    let r = c
        .cmd(json!({"actor": "u-1", "action": "allow_local", "participant": "u-3"}))
        .await;
    assert_eq!(r["state"]["local_policy"], "selected", "{r}");
    c.wait_event("local_recording_allowed").await;
    let r = c
        .cmd(json!({"actor": "u-3", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["state"]["views"]["u-3"], "local");
    // L4: stopped after about a second, it is discarded as too short.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = c.cmd(json!({"actor": "u-3", "action": "stop"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let ev = c.wait_event("recording_discarded").await;
    assert_eq!(ev["reason"], "too_short", "{ev}");
    // L2: forbidding someone who records stops their recording.
    c.cmd(json!({"actor": "u-3", "action": "start", "kind": "local"}))
        .await;
    c.seen.clear();
    let r = c
        .cmd(json!({"actor": "u-1", "action": "forbid_local", "participant": "u-3"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let ev = c.wait_event("recording_stopped").await;
    assert_eq!(ev["reason"], "forbidden", "{ev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cloud_and_local_together() {
    let (_b, _d, mut c) = with_meeting(UPLOAD).await;
    c.cmd(json!({"actor": "u-1", "action": "set_local_policy", "policy": "all"}))
        .await;
    // X2: the co-host records locally, the host starts cloud: both run, the co-host views cloud.
    let r = c
        .cmd(json!({"actor": "u-2", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "cloud"}))
        .await;
    assert_eq!(r["state"]["views"]["u-2"], "cloud", "{r}");
    assert_eq!(r["state"]["local"][0]["state"], "recording");
    // X1: the host who started cloud cannot start a local one.
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(code(&r), "conflict", "{r}");
    // X3: the host's plain stop ends only the cloud recording; the co-host views local again.
    let r = c.cmd(json!({"actor": "u-1", "action": "stop"})).await;
    assert_eq!(r["state"]["cloud"]["state"], "idle", "{r}");
    assert_eq!(r["state"]["views"]["u-2"], "local");
    assert_eq!(r["state"]["local"][0]["state"], "recording");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m_muted_microphone_needs_confirmation() {
    let (_b, _d, mut c) = with_meeting("").await;
    let r = c
        .cmd(json!({"actor": "u-1", "action": "mute", "muted": true}))
        .await;
    assert_eq!(r["state"]["muted"], true, "{r}");
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(code(&r), "needs_confirmation", "{r}");
    assert_eq!(r["error"]["reason"], "muted");
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local", "unmute": true}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["state"]["muted"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_expired_device_licence_refuses_new_recordings() {
    let (_b, _d, mut c) = with_meeting("").await;
    c.licence("2001-01-01T00:00:00Z").await;
    // The licence is retained; give the device a moment by asking for status first.
    c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(code(&r), "licence_expired", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("licence"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_meeting_end_converts_local_recordings_to_mp4() {
    let (_b, d, mut c) = with_meeting("").await;
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let rid = r["state"]["local"][0]["recording_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // More than the 10 s minimum, measured by sealed media rather than a timer.
    c.wait_state("12 s recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 12_000
    })
    .await;
    let mut ended = meeting(2);
    ended["state"] = json!("ended");
    c.meeting(ended).await;
    let stopped = c.wait_event("recording_stopped").await;
    assert_eq!(stopped["reason"], "meeting_ended", "{stopped}");
    let done = c.wait_event("conversion_done").await;
    assert_eq!(done["recording_id"], rid.as_str());
    let location = done["location"]
        .as_str()
        .expect("conversion_done has the MP4's location");
    let mp4 = std::path::Path::new(location);
    assert!(mp4.starts_with(d.storage().join("local")), "{location}");
    let info = roomrec::media::probe(mp4).expect("the MP4 plays");
    assert!(info.duration_ms >= 11_000, "{info:?}");
    assert!(info.video.is_some() && info.audio.is_some(), "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_budget_refuses_a_start_without_room_and_reports_it() {
    // A device whose storage budget is 100 KB: under a minute of media.
    let broker = Broker::start();
    let _device = Device::start_custom(|dir| {
        common::device::config_text(broker.port, dir, "")
            .replace("[media]", "max_bytes = 100000\n\n[media]")
    });
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(code(&r), "disk_full", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("storage.max_bytes"),
        "{r}"
    );
    let status = c
        .wait("status with the budget", |m| {
            m.topic.ends_with("/status") && m.json["storage"]["remaining_record_s"].is_u64()
        })
        .await;
    assert!(
        status.json["storage"]["remaining_record_s"]
            .as_u64()
            .unwrap()
            < 60,
        "{}",
        status.json
    );
}
