//! Health alarms end to end, on a real roomrecd with its real triggers:
//! - `microphone_silent`: the test microphone goes silent (the fault-injection trigger
//!   `media::fault::SILENCE_FILE`): raised after 30 s of silence while recording, as an event
//!   and in the retained status a newly connected console reads; cleared when the sound
//!   returns, the recording stops or the microphone is muted;
//! - `picture_black` / `picture_frozen`: the test camera turns black or repeats one frame
//!   (`BLACK_PICTURE_FILE`, `FROZEN_PICTURE_FILE`): raised after 10 s while recording, from
//!   what the picture check saw in the composed picture, cleared when it moves again;
//! - `disk_low`: a storage budget that holds under an hour at the bitrate the device assumes
//!   before it has recorded, and over an hour once it measured its own;
//! - `upload_backlog`: a queue of segments sealed two hours ago (the device was cut off from
//!   its store meanwhile: their seal times are moved back in the catalog while it is stopped),
//!   not raised while the store is down, raised once a real S3 server (s3s-fs) answers and
//!   cleared when the queue has drained.
//!
//! `clock_unsynchronised` (10 min of an unsynchronised kernel clock) and `camera_lost` /
//! `microphone_lost` (V4L2 and ALSA devices unplugged) are table-tested in
//! `daemon::alarms`: here neither the 10 minutes nor a device to unplug fit.

use crate::common;

use std::time::Duration;

use common::device::{Client, Device, Msg, PREFIX};
use common::s3::S3Server;
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

/// Waits (up to `limit`) for an `alarm_raised` or `alarm_cleared` event of alarm `id`.
async fn wait_alarm(c: &mut Client, kind: &str, id: &str, limit: Duration) -> Value {
    let events = format!("{PREFIX}/events");
    let is = |m: &Msg| m.topic == events && m.json["type"] == kind && m.json["alarm"]["id"] == id;
    let deadline = tokio::time::Instant::now() + limit;
    while !c.seen.iter().any(is) && tokio::time::Instant::now() < deadline {
        c.drain_for(Duration::from_millis(500)).await;
    }
    c.wait(&format!("{kind} {id}"), is).await.json
}

fn lists(status: &Value, id: &str) -> bool {
    status["alarms"]
        .as_array()
        .is_some_and(|a| a.iter().any(|alarm| alarm["id"] == id))
}

fn raised_alarms(c: &Client, id: &str) -> Vec<Value> {
    let events = format!("{PREFIX}/events");
    c.seen
        .iter()
        .filter(|m| {
            m.topic == events && m.json["type"] == "alarm_raised" && m.json["alarm"]["id"] == id
        })
        .map(|m| m.json.clone())
        .collect()
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

/// A device recording locally for a second or more; the client.
async fn recording(broker: &Broker) -> (Device, Client) {
    let device = Device::start(broker, "");
    let mut c = Client::connect(broker).await;
    c.join_meeting().await;
    c.start_recording("u-1", "local").await;
    c.wait_state("a second recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 1_000
    })
    .await;
    (device, c)
}

/// The test camera turned black (or frozen) while recording: `id` raised 10 s on, since the
/// picture changed (give or take the check's second), listed in status; cleared once the
/// trigger is gone. The other picture alarm is never raised meanwhile.
async fn picture_alarm_round_trip(trigger: &str, id: &str, other: &str, words: &str) {
    let broker = Broker::start();
    let (device, mut c) = recording(&broker).await;
    let file = device.storage().join(trigger);
    let changed_at = now_ms();
    std::fs::write(&file, b"").expect("the fault trigger");

    let raised = wait_alarm(&mut c, "alarm_raised", id, Duration::from_secs(30)).await;
    let alarm = &raised["alarm"];
    assert_eq!(alarm["severity"], "critical", "{raised}");
    assert!(
        alarm["message"]
            .as_str()
            .unwrap_or_default()
            .contains(words),
        "{raised}"
    );
    let since = at(&alarm["since"]);
    assert!(
        (changed_at..changed_at + 2_500).contains(&since),
        "since {since}, picture changed at {changed_at}: {raised}"
    );
    let held = at(&raised["at"]) - since;
    assert!((10_000..13_000).contains(&held), "raised {held} ms in");
    let status = status_with(&mut c, "status listing the alarm", |s| lists(s, id)).await;
    assert_eq!(status["alarms"][0], *alarm, "{status}");

    std::fs::remove_file(&file).expect("the trigger removed");
    let cleared = wait_alarm(&mut c, "alarm_cleared", id, Duration::from_secs(10)).await;
    assert_eq!(cleared["alarm"], *alarm, "{cleared}");
    status_with(&mut c, "status without the alarm", |s| !lists(s, id)).await;
    let wrong = raised_alarms(&c, other);
    assert!(wrong.is_empty(), "{other} raised too: {wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_picture_raises_an_alarm_after_10_s_and_clears_when_the_picture_returns() {
    use roomrec::media::fault::BLACK_PICTURE_FILE;
    picture_alarm_round_trip(
        BLACK_PICTURE_FILE,
        "picture_black",
        "picture_frozen",
        "black",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_picture_raises_an_alarm_after_10_s_and_clears_when_it_moves_again() {
    use roomrec::media::fault::FROZEN_PICTURE_FILE;
    picture_alarm_round_trip(
        FROZEN_PICTURE_FILE,
        "picture_frozen",
        "picture_black",
        "has not changed",
    )
    .await;
}

/// 290 MB: 58 min at the 300 MB/h the device assumes before it has recorded anything, and
/// well over an hour at the test source's measured rate (about 0.4 Mbit/s: 300 kbit/s of
/// video, the AAC sound and the MPEG-TS overhead).
const BUDGET_BYTES: u64 = 290_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_low_holds_while_the_budget_is_under_an_hour_of_recording() {
    let broker = Broker::start();
    let port = broker.port;
    let _device = Device::start_custom(|dir| {
        let config = common::device::config_text(port, dir, "");
        let storage = format!("dir = \"{}\"\n", dir.join("storage").display());
        assert!(config.contains(&storage), "{config}");
        config.replacen(
            &storage,
            &format!("{storage}max_bytes = {BUDGET_BYTES}\n"),
            1,
        )
    });
    let mut c = Client::connect(&broker).await;
    // Raised at start, before the first connection: a console reads it from the status.
    let status = status_with(&mut c, "status listing disk_low", |s| lists(s, "disk_low")).await;
    let remaining = status["storage"]["remaining_record_s"]
        .as_u64()
        .unwrap_or(0);
    assert!((3_000..3_600).contains(&remaining), "{status}");
    let alarm = status["alarms"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "disk_low"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(alarm["severity"], "warning", "{alarm}");
    let message = alarm["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("less than one hour") && message.contains("storage.max_bytes"),
        "{alarm}"
    );

    // Recording measures the real rate: the same room holds more than an hour of it.
    c.join_meeting().await;
    c.start_recording("u-1", "local").await;
    let cleared = wait_alarm(&mut c, "alarm_cleared", "disk_low", Duration::from_secs(20)).await;
    assert_eq!(cleared["alarm"], alarm, "{cleared}");
    let status = status_with(&mut c, "status without disk_low", |s| {
        !lists(s, "disk_low") && s["storage"]["remaining_record_s"].as_u64().is_some()
    })
    .await;
    let remaining = status["storage"]["remaining_record_s"]
        .as_u64()
        .unwrap_or(0);
    assert!(remaining >= 3_600, "{status}");
}

/// Moves the seal time of every segment in the device's catalog `ms` back, as if they had
/// been recorded that long ago (the daemon is stopped).
fn age_segments(device: &Device, ms: i64) {
    let db = rusqlite::Connection::open(device.storage().join("catalog.sqlite3")).expect("catalog");
    let changed = db
        .execute("UPDATE segments SET sealed_at = sealed_at - ?1", [ms])
        .expect("segments aged");
    assert!(changed >= 3, "{changed} segments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_backlog_over_an_hour_old_is_an_alarm_while_the_store_answers() {
    let broker = Broker::start();
    let mut s3 = S3Server::start();
    s3.kill();
    // The uploader reports the store reachable with the queue as it stands before any upload
    // of the backlog can finish: the alarm is raised before the queue drains, however fast.
    let section = s3.upload_toml("");
    let mut device = Device::start(&broker, &section);
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    c.start_recording("u-1", "cloud").await;
    c.wait_state("3 s of cloud media", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 3_000
    })
    .await;
    c.end_meeting().await;
    status_with(&mut c, "the queue waiting for the dead store", |s| {
        s["uploads"]["pending"].as_u64().unwrap_or(0) >= 3 && s["uploads"]["last_error"].is_string()
    })
    .await;
    assert_eq!(device.stop(), Some(0));
    age_segments(&device, 2 * 3_600_000);

    // Two hours old, but the store is still down: no alarm (status names the store's fault).
    c.restart(&mut device).await;
    status_with(&mut c, "status with the dead store's error", |s| {
        s["uploads"]["last_error"].is_string() && s["uploads"]["pending"].as_u64() >= Some(3)
    })
    .await;
    c.drain_for(Duration::from_secs(3)).await;
    assert!(raised_alarms(&c, "upload_backlog").is_empty());
    let status_topic = format!("{PREFIX}/status");
    let listed: Vec<&Msg> = c
        .seen
        .iter()
        .filter(|m| m.topic == status_topic && lists(&m.json, "upload_backlog"))
        .collect();
    assert!(listed.is_empty(), "{listed:?}");

    // The store answers: raised at once, listed, and cleared once the queue has drained.
    let back_at = now_ms();
    s3.restart();
    let raised = wait_alarm(
        &mut c,
        "alarm_raised",
        "upload_backlog",
        Duration::from_secs(20),
    )
    .await;
    let alarm = &raised["alarm"];
    assert_eq!(alarm["severity"], "warning", "{raised}");
    assert!(
        alarm["message"]
            .as_str()
            .unwrap_or_default()
            .contains("waited more than an hour for its upload"),
        "{raised}"
    );
    assert!(at(&alarm["since"]) >= back_at, "{raised}");
    status_with(&mut c, "status listing upload_backlog", |s| {
        lists(s, "upload_backlog")
    })
    .await;
    let cleared = wait_alarm(
        &mut c,
        "alarm_cleared",
        "upload_backlog",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(cleared["alarm"], *alarm, "{cleared}");
    let status = status_with(&mut c, "status without upload_backlog", |s| {
        !lists(s, "upload_backlog")
    })
    .await;
    assert_eq!(status["uploads"]["pending"], 0, "{status}");
    assert!(s3.keys().iter().filter(|k| k.ends_with(".ts")).count() >= 3);
}
