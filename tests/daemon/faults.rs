//! Faults a room device meets, each against the real daemon, broker, store and pipeline: the
//! broker gone for a minute mid-recording, the wall clock stepped back and forth (devices boot
//! before NTP), and SIGTERM while an upload or a conversion is under way.
use crate::common;

use std::path::Path;
use std::time::Duration;

use common::device::{assert_segments_play, config_text, recording_local, Client, Device, PREFIX};
use common::s3::S3Server;
use common::Broker;
use roomrec::catalog::Catalog;
use serde_json::{json, Value};

fn replies_to<'a>(c: &'a Client, id: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    let topic = format!("{PREFIX}/reply");
    c.seen
        .iter()
        .filter(move |m| m.topic == topic && m.json["id"] == id)
        .map(|m| &m.json)
}

/// The broker gone for 60 s: the recording goes on, the state is republished when the broker
/// is back, and a command the meeting service queued meanwhile is executed once, however
/// often it is delivered. (The device's session is clean, so the broker holds nothing for it
/// while it is away; a QoS 1 sender re-sends an unanswered command with the same id, and the
/// device answers a repeated id with the first answer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_gone_for_a_minute_recording_goes_on_and_queued_commands_run_once() {
    let mut broker = Broker::start();
    let port = broker.port;
    let (mut device, _old) = recording_local(&broker, "").await;
    let before = assert_segments_play(&device);
    broker.kill();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(device.is_running(), "the daemon survives the broker outage");
    let during = assert_segments_play(&device);
    assert!(
        during >= before + 30,
        "1 s segments kept coming while the broker was gone: {before} before, {during} after"
    );

    let broker = Broker::restart_on(port);
    let mut c = Client::connect(&broker).await;
    // mosquitto without persistence lost every retained message; the device republishes.
    let state = c
        .wait_state("state republished after reconnect", |s| {
            s["local"][0]["state"] == "recording"
        })
        .await;
    let recorded = state["local"][0]["recorded_ms"].as_u64().unwrap_or(0);
    assert!(recorded >= 60_000, "{state}");

    let pause = json!({"id": "queued-pause", "actor": "u-1", "action": "pause"});
    let mut sent = 0;
    while replies_to(&c, "queued-pause").next().is_none() {
        assert!(sent < 60, "no reply to a command sent {sent} times");
        c.publish("cmd", pause.to_string(), false).await;
        sent += 1;
        c.drain_for(Duration::from_millis(500)).await;
    }
    c.publish("cmd", pause.to_string(), false).await;
    c.publish("cmd", pause.to_string(), false).await;
    c.drain_for(Duration::from_secs(2)).await;
    let replies: Vec<&Value> = replies_to(&c, "queued-pause").collect();
    assert!(
        replies.len() >= 3,
        "every delivery is answered: {replies:?}"
    );
    assert!(
        replies.iter().all(|r| *r == replies[0]) && replies[0]["ok"] == true,
        "repeats get the first answer: {replies:?}"
    );
    let paused = c
        .seen
        .iter()
        .filter(|m| m.topic.ends_with("/events") && m.json["type"] == "recording_paused")
        .count();
    assert_eq!(paused, 1, "the pause ran once");
    assert_eq!(device.stop(), Some(0));
}

/// A device that boots before NTP sees its wall clock jump. Here it jumps back an hour, then
/// forward two, while a cloud and a local recording run: durations come from the monotonic
/// clock, the upload queue is not stalled by next-try times in the "future", the MP4 holds
/// what was recorded, and the cloud recording completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_steps_back_and_forth_change_no_duration_and_stall_nothing() {
    let faketime = Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1");
    assert!(
        faketime.exists(),
        "libfaketime is missing: apt-get install faketime (scripts/install-deps does)"
    );
    let broker = Broker::start();
    let s3 = S3Server::start();
    let port = broker.port;
    let mut device = Device::prepare(|dir| config_text(port, dir, &s3.upload_toml("")));
    let offset = device.dir.path().join("clock-offset");
    std::fs::write(&offset, "+0\n").expect("offset file");
    device.env = [
        ("LD_PRELOAD", faketime.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE", offset.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".into()),
        // Only the wall clock steps; CLOCK_MONOTONIC runs on, as on a real device.
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    device.spawn();
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let cloud = c.start_recording("u-2", "cloud").await;
    let local = c.start_recording("u-1", "local").await;

    let mut samples = Vec::new();
    for (step, recorded) in [("-1h", 3_000), ("+2h", 7_000), ("+1h", 12_000)] {
        let s = c
            .wait_state("recording time passing", |s| {
                s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= recorded
            })
            .await;
        samples.push(s["local"][0]["recorded_ms"].as_u64().unwrap_or(0));
        std::fs::write(&offset, format!("{step}\n")).expect("step the clock");
    }
    let s = c
        .wait_state("more recording after the last step", |s| {
            s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 14_000
        })
        .await;
    samples.push(s["local"][0]["recorded_ms"].as_u64().unwrap_or(0));
    assert!(
        samples.windows(2).all(|w| w[0] <= w[1]) && samples[3] < 60_000,
        "recorded time runs with the monotonic clock, never with a step: {samples:?}"
    );

    c.end_meeting().await;
    let done = c.wait_event("conversion_done").await;
    assert_eq!(done["recording_id"], local.as_str(), "{done}");
    let info = roomrec::media::probe(Path::new(done["location"].as_str().unwrap_or("")))
        .expect("the MP4 plays");
    // (Not list_recordings: a signed admin command is rightly refused as `expired` by a
    // device whose clock is an hour off.)
    let stopped = c
        .seen
        .iter()
        .find(|m| m.json["type"] == "recording_stopped" && m.json["recording_id"] == local.as_str())
        .map(|m| m.json.clone())
        .expect("recording_stopped for the local recording");
    let recorded = stopped["recorded_ms"].as_u64().unwrap_or(0);
    assert!(
        info.duration_ms + 1_500 >= recorded && info.duration_ms <= recorded + 1_500,
        "MP4 {} ms for {recorded} ms recorded",
        info.duration_ms
    );
    let ready = c.wait_event("recording_ready").await;
    assert_eq!(ready["recording_id"], cloud.as_str(), "{ready}");
    let catalog = Catalog::open(&device.storage().join("catalog.sqlite3")).expect("catalog");
    catalog.integrity_check().expect("integrity");
    assert_eq!(device.stop(), Some(0));
}

/// SIGTERM while a segment is on its way to the store (the cap keeps one in flight): the
/// daemon stops in time, the cut-off upload goes back to the queue, and after a restart every
/// segment reaches the bucket intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_upload_loses_nothing_and_the_upload_resumes() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    // ~30 kB of media a second against a 16 kB/s cap: a backlog builds, so an upload is
    // always under way.
    let mut device = Device::start(&broker, &s3.upload_toml("rate_cap = 16000\n"));
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let cloud = c.start_recording("u-2", "cloud").await;
    c.wait("an upload under way", |m| {
        m.topic.ends_with("/status") && m.json["uploads"]["pending"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    assert_eq!(device.stop(), Some(0), "log:\n{}", device.log());
    let id = roomrec::protocol::Id::parse(&cloud).expect("id");
    let catalog = Catalog::open(&device.storage().join("catalog.sqlite3")).expect("catalog");
    let left = catalog
        .upload_jobs_of(&id)
        .expect("jobs")
        .into_iter()
        .filter(|j| j.state != roomrec::catalog::UploadState::Uploaded)
        .count();
    assert!(
        left >= 1,
        "the stop left uploads to do (the cap keeps a backlog)"
    );
    c.restart(&mut device).await;
    c.end_meeting().await;
    let ready = c.wait_event("recording_ready").await;
    assert_eq!(ready["recording_id"], cloud.as_str(), "{ready}");
    let segments = catalog.segments_of(&id).expect("segments");
    assert!(segments.len() >= 2, "{segments:?}");
    s3.assert_holds_once(&format!("u-1/m-1/{cloud}/"), &segments);
}

/// SIGTERM while the MP4 is being made: the daemon stops in time, and after a restart the
/// recording is listed `needs_finalize` (L5) with every segment; `finalize` then produces the
/// MP4 with everything recorded. The conversion of a few seconds takes milliseconds, so the
/// fault trigger `media::fault::HOLD_CONVERSION_FILE` holds it at its start: the signal is
/// sure to land while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_conversion_leaves_it_to_finalize() {
    let broker = Broker::start();
    let (mut device, mut c) = recording_local(&broker, "").await;
    let hold = device
        .storage()
        .join(roomrec::media::fault::HOLD_CONVERSION_FILE);
    std::fs::write(&hold, b"").expect("hold the conversion");
    c.wait_state("past the 10 s minimum", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 11_000
    })
    .await;
    c.end_meeting().await;
    c.wait_event("recording_stopped").await;
    let held = "fault injection: the conversion is held";
    for _ in 0..100 {
        if device.log().contains(held) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(device.log().contains(held), "the conversion never started");
    assert_eq!(
        device.stop(),
        Some(0),
        "SIGTERM mid-conversion: a clean exit"
    );
    assert!(
        !device.log().contains("conversion done"),
        "the held conversion finished before the signal"
    );
    std::fs::remove_file(&hold).expect("release the hold");
    c.restart(&mut device).await;
    let r = c
        .cmd(json!({"actor": "admin:ops", "action": "list_recordings"}))
        .await;
    let rec = &r["recordings"][0];
    assert_eq!(rec["state"], "needs_finalize", "{r}");
    let rid = rec["recording_id"].as_str().expect("recording").to_owned();
    let f = c
        .cmd(json!({"actor": "u-1", "action": "finalize", "recording_id": rid}))
        .await;
    assert_eq!(f["ok"], true, "{f}");
    let done = c.wait_event("conversion_done").await;
    let info = roomrec::media::probe(Path::new(done["location"].as_str().unwrap_or("")))
        .expect("the finalized MP4 plays");
    assert!(info.duration_ms >= 10_500, "{info:?}");
    assert!(assert_segments_play(&device) >= 10);
    assert_eq!(device.stop(), Some(0));
}

/// The disk filling up under a recording, on a real (16 MiB tmpfs) filesystem that also holds
/// the catalog: six seconds in, another writer takes almost all of it. The recording stops
/// with `disk_full` keeping what it sealed, the daemon keeps serving, refuses `start` with
/// `disk_full`, and takes recordings again once the space is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_filling_up_mid_recording_stops_it_cleanly_and_keeps_what_was_sealed() {
    let broker = Broker::start();
    let port = broker.port;
    let mut device = Device::prepare(|dir| {
        config_text(port, dir, "").replace("[media]", "min_free_bytes = \"256 KiB\"\n\n[media]")
    });
    let storage = device.storage();
    std::fs::create_dir_all(&storage).expect("storage folder");
    let filler = storage.join("filler");
    // A private tmpfs over the storage folder (a user and mount namespace: no root needed,
    // nothing mounted outside the daemon's view), and the writer that fills it after 6 s.
    let script = format!(
        "mount -t tmpfs -o size=16m tmpfs '{s}' || exit 97; \
         (sleep 6; head -c 15900k /dev/zero > '{f}'; while [ ! -e '{s}/.release' ]; do sleep 0.2; done; rm -f '{f}') & \
         exec \"$@\"",
        s = storage.display(),
        f = filler.display()
    );
    device.wrapper = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        &script,
        "sh",
    ]
    .map(String::from)
    .to_vec();
    device.spawn();
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let local = c.start_recording("u-1", "local").await;
    let stopped = c.wait_event("recording_stopped").await;
    assert_eq!(stopped["recording_id"], local.as_str(), "{stopped}");
    assert_eq!(stopped["reason"], "disk_full", "{stopped}");
    assert!(
        device.is_running(),
        "the daemon keeps running on a full disk"
    );

    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(r["error"]["code"], "disk_full", "{r}");
    let status = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(status["ok"], true, "{status}");
    // What was recorded before the disk filled is kept: the sealed segments are on the full
    // disk and play (read through /proc/<pid>/root, the daemon's view with the tmpfs).
    assert!(
        stopped["recorded_ms"].as_u64().unwrap_or(0) >= 3_000,
        "recorded before the disk filled: {stopped}"
    );
    let segments_dir = in_daemon_view(&device, &storage).join("segments");
    let mut playing = 0;
    for entry in std::fs::read_dir(&segments_dir)
        .expect("segments folder")
        .flatten()
    {
        if roomrec::media::probe(&entry.path()).is_ok_and(|i| i.video.is_some()) {
            playing += 1;
        }
    }
    assert!(
        playing >= 3,
        "segments sealed before the disk filled play: {playing}"
    );

    // The other writer lets go (a marker file in the tmpfs tells it; the test cannot see the
    // tmpfs, but the daemon's storage path inside it is the same).
    release_space(&device, &storage);
    let again = loop_until_ok(
        &mut c,
        json!({"actor": "u-1", "action": "start", "kind": "local"}),
    )
    .await;
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(device.stop(), Some(0));
}

/// `path` as the daemon sees it, inside its mount namespace (through /proc/<pid>/root).
fn in_daemon_view(device: &Device, path: &Path) -> std::path::PathBuf {
    Path::new("/proc")
        .join(device.pid().to_string())
        .join("root")
        .join(path.strip_prefix("/").unwrap_or(path))
}

/// Creates the marker that makes the filler remove its file.
fn release_space(device: &Device, storage: &Path) {
    let marker = in_daemon_view(device, storage).join(".release");
    std::fs::write(&marker, b"").expect("release marker in the daemon's storage");
}

/// Sends `command` (a fresh id each time) until it succeeds, for up to 30 s: free space is
/// noticed by the daemon's next storage check.
async fn loop_until_ok(c: &mut Client, command: Value) -> Value {
    let mut last = Value::Null;
    for _ in 0..30 {
        let mut command = command.clone();
        command.as_object_mut().map(|o| o.remove("id"));
        last = c.cmd(command).await;
        if last["ok"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last
}
