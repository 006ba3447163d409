//! Health alarms end to end: a real roomrecd whose test microphone goes silent (the
//! fault-injection trigger `media::fault::SILENCE_FILE`) raises `microphone_silent` after
//! 30 s of silence while recording, as an event and in the retained status a newly connected
//! console reads, and clears it when the sound returns or the recording stops.

use crate::common;

use std::time::Duration;

use common::device::{Client, Device, Msg, PREFIX};
use common::Broker;
use roomrec::protocol::Timestamp;
use serde_json::{json, Value};

/// The silence a test source can be given; removing it brings the tone back.
fn silence_file(device: &Device) -> std::path::PathBuf {
    device.storage().join(roomrec::media::fault::SILENCE_FILE)
}

fn at(v: &Value) -> i64 {
    Timestamp::parse(v.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not an RFC 3339 time: {v}: {e}"))
        .0
}

/// A device recording locally with a silent microphone, from the first silent reading; the
/// client and the wall time of that reading (ms).
async fn recording_in_silence(broker: &Broker) -> (Device, Client, i64) {
    let device = Device::start(broker, "");
    let mut c = Client::connect(broker).await;
    c.join_meeting().await;
    std::fs::write(silence_file(&device), b"").expect("silence the test microphone");
    c.start_recording("u-1", "local").await;
    let levels = format!("{PREFIX}/levels");
    let silent = c
        .wait("a silent level reading", |m| {
            m.topic == levels && m.json["rms_dbfs"].as_f64().is_some_and(|r| r <= -119.0)
        })
        .await;
    (device, c, at(&silent.json["at"]))
}

/// Waits for an alarm event of `kind` for up to `limit` (longer than `Client::wait`'s 30 s).
async fn wait_alarm_event(c: &mut Client, kind: &str, limit: Duration) -> Value {
    let events = format!("{PREFIX}/events");
    let is = |m: &Msg| m.topic == events && m.json["type"] == kind;
    let deadline = tokio::time::Instant::now() + limit;
    while !c.seen.iter().any(is) && tokio::time::Instant::now() < deadline {
        c.drain_for(Duration::from_millis(500)).await;
    }
    c.wait(kind, is).await.json
}

/// The latest status the device published, from what the client saw.
async fn status_with(c: &mut Client, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let status = format!("{PREFIX}/status");
    c.wait(what, |m| m.topic == status && pred(&m.json))
        .await
        .json
}

fn assert_silent_alarm(alarm: &Value, silent_from: i64) {
    assert_eq!(alarm["id"], "microphone_silent", "{alarm}");
    assert_eq!(alarm["severity"], "critical", "{alarm}");
    // `since` is when the silence began: the first silent reading, give or take one.
    let since = at(&alarm["since"]);
    assert!(
        (since - silent_from).abs() <= 1_000,
        "since {since} vs first silent reading {silent_from}: {alarm}"
    );
    let message = alarm["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("silence") && message.contains("check"),
        "{alarm}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_microphone_raises_an_alarm_after_30_s_and_clears_when_sound_returns() {
    let broker = Broker::start();
    let (device, mut c, silent_from) = recording_in_silence(&broker).await;

    let raised = wait_alarm_event(&mut c, "alarm_raised", Duration::from_secs(45)).await;
    assert_silent_alarm(&raised["alarm"], silent_from);
    assert_eq!(raised["to"], json!([]), "{raised}");
    let held = at(&raised["at"]) - at(&raised["alarm"]["since"]);
    assert!(
        (30_000..35_000).contains(&held),
        "raised {held} ms into the silence"
    );
    let status = status_with(&mut c, "status listing the alarm", |s| {
        s["alarms"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(status["alarms"][0], raised["alarm"], "{status}");
    // A console connecting now reads it from the retained status.
    let mut late = Client::connect(&broker).await;
    let retained = status_with(&mut late, "the retained status", |_| true).await;
    assert_eq!(retained["alarms"], json!([raised["alarm"]]), "{retained}");

    // The sound returns: cleared, with the alarm as it was raised, and gone from status.
    std::fs::remove_file(silence_file(&device)).expect("the tone back");
    let cleared = c.wait_event("alarm_cleared").await;
    assert_eq!(cleared["alarm"], raised["alarm"], "{cleared}");
    status_with(&mut c, "status without alarms", |s| {
        s["alarms"] == json!([])
    })
    .await;
    let levels = format!("{PREFIX}/levels");
    c.wait("a loud reading again", |m| {
        m.topic == levels && m.json["rms_dbfs"].as_f64().is_some_and(|r| r > -10.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_microphone_alarm_clears_when_the_recording_stops() {
    let broker = Broker::start();
    let (_device, mut c, silent_from) = recording_in_silence(&broker).await;
    let raised = wait_alarm_event(&mut c, "alarm_raised", Duration::from_secs(45)).await;
    assert_silent_alarm(&raised["alarm"], silent_from);

    let r = c
        .cmd(json!({"actor": "u-1", "action": "stop", "target": "local"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let cleared = c.wait_event("alarm_cleared").await;
    assert_eq!(cleared["alarm"], raised["alarm"], "{cleared}");
    status_with(&mut c, "status without alarms", |s| {
        s["alarms"] == json!([])
    })
    .await;
}

/// Muting clears the alarm, and a muted microphone is never silent for the alarm. The levels
/// are those of what is recorded: with the tone back at the source, muted readings are the
/// floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_clears_the_silent_microphone_alarm_and_raises_none() {
    let broker = Broker::start();
    let (device, mut c, silent_from) = recording_in_silence(&broker).await;
    let raised = wait_alarm_event(&mut c, "alarm_raised", Duration::from_secs(45)).await;
    assert_silent_alarm(&raised["alarm"], silent_from);

    let r = c
        .cmd(json!({"actor": "u-1", "action": "mute", "muted": true}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let cleared = c.wait_event("alarm_cleared").await;
    assert_eq!(cleared["alarm"], raised["alarm"], "{cleared}");

    // The tone is back at the source, but muted: what is recorded, and measured, is silence.
    std::fs::remove_file(silence_file(&device)).expect("the tone back");
    c.drain_for(Duration::from_secs(2)).await;
    c.seen.clear();
    c.drain_for(Duration::from_secs(35)).await;
    let levels = format!("{PREFIX}/levels");
    let readings: Vec<f64> = c
        .seen
        .iter()
        .filter(|m| m.topic == levels)
        .map(|m| m.json["rms_dbfs"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(readings.len() >= 60, "{} readings in 35 s", readings.len());
    assert!(
        readings.iter().all(|r| *r <= -119.0),
        "muted readings: {readings:?}"
    );
    let events = format!("{PREFIX}/events");
    let again: Vec<&Msg> = c
        .seen
        .iter()
        .filter(|m| m.topic == events && m.json["type"] == "alarm_raised")
        .collect();
    assert!(again.is_empty(), "raised while muted: {again:?}");
}
