//! Issue 14 item 4, the completeness report, against the real daemon, broker, store and
//! pipeline: a local recording paused and then cut by `kill -9` (L5: it cannot go on, it is
//! finalized after the restart) gets `<name>.json` beside its MP4 naming the paused gap and
//! the crash gap, and the share of the time its microphone was silenced; a cloud recording paused and restarted in the middle, then resumed, carries
//! both in its manifest in s3s-fs. The lengths are compared with what the test itself timed,
//! within what a person would not notice; every file is read as plain JSON, not with the
//! types that wrote it.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::device::{Client, Device};
use common::s3::S3Server;
use common::{ffprobe, Broker};
use serde_json::{json, Value};

/// How far a gap's length may be from what the test timed: a pause or a restart also waits
/// for the pipeline to start again, and segment ends are timed when sealed.
const TOLERANCE_MS: i64 = 1_500;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The gaps of `cause` in a report read as plain JSON.
fn gaps_of<'a>(report: &'a Value, cause: &str) -> Vec<&'a Value> {
    report["gaps"]
        .as_array()
        .expect("gaps is a list")
        .iter()
        .filter(|g| g["cause"] == cause)
        .collect()
}

fn ms(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not a number of ms: {v}"))
}

/// Checks what every report must hold: the figures add up, nothing unexplained, a silent
/// share between 0 and 1, the totals by cause agree with the list.
fn assert_consistent(report: &Value, rid: &str) {
    assert_eq!(report["recording_id"], rid, "{report:#}");
    assert!(gaps_of(report, "unexplained").is_empty(), "{report:#}");
    let share = report["silent_share"].as_f64().expect("silent_share");
    assert!((0.0..=1.0).contains(&share), "{report:#}");
    let timeline: i64 = report["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .filter(|g| {
            !["camera_lost", "microphone_lost"].contains(&g["cause"].as_str().unwrap_or(""))
        })
        .map(|g| ms(&g["duration_ms"]))
        .sum();
    let (recorded, covered) = (ms(&report["recorded_ms"]), ms(&report["covered_ms"]));
    // Holes under a second are not gaps: a few of them may add up.
    assert!(
        (recorded + timeline - covered).abs() <= 2_000,
        "recorded {recorded} + gaps {timeline} should make the covered {covered}: {report:#}"
    );
    for (cause, total) in report["gap_totals"].as_object().expect("gap_totals") {
        let listed = gaps_of(report, cause);
        assert_eq!(
            ms(&total["count"]),
            listed.len() as i64,
            "{cause}: {report:#}"
        );
        let sum: i64 = listed.iter().map(|g| ms(&g["duration_ms"])).sum();
        assert_eq!(ms(&total["total_ms"]), sum, "{cause}: {report:#}");
    }
}

/// The one gap of `cause`, whose length must be `expected` ms within the tolerance.
fn assert_gap(report: &Value, cause: &str, expected: i64) -> i64 {
    let found = gaps_of(report, cause);
    assert_eq!(found.len(), 1, "one {cause} gap: {report:#}");
    let got = ms(&found[0]["duration_ms"]);
    println!("{cause} gap: {got} ms in the report, {expected} ms timed by the test");
    assert!(
        (got - expected).abs() <= TOLERANCE_MS,
        "the {cause} gap lasts {got} ms; the test timed {expected} ms: {report:#}"
    );
    ms(&found[0]["start_ms"])
}

/// Pauses (as `actor`) for `secs`, resumes; returns how long the recording was paused as
/// the test saw it (from the pause's reply to the resume's).
async fn pause_for(c: &mut Client, actor: &str, secs: u64) -> i64 {
    let r = c.cmd(json!({"actor": actor, "action": "pause"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let paused = wall_ms();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let r = c.cmd(json!({"actor": actor, "action": "resume"})).await;
    assert_eq!(r["ok"], true, "{r}");
    wall_ms() - paused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_recording_paused_then_cut_by_a_crash_reports_both_gaps_beside_its_mp4() {
    let broker = Broker::start();
    let mut device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let rid = c.start_recording("u-1", "local").await;
    let recorded =
        |ms: u64| move |s: &Value| s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= ms;
    c.wait_state("2 s recorded", recorded(2_000)).await;
    // 4 s of silence from the test microphone (the fault trigger `SILENCE_FILE`).
    let silence = device.storage().join(roomrec::media::fault::SILENCE_FILE);
    std::fs::write(&silence, b"").expect("silence the test microphone");
    let silent_from = wall_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;
    std::fs::remove_file(&silence).expect("the tone again");
    let silent_for = wall_ms() - silent_from;
    c.wait_state("8 s recorded", recorded(8_000)).await;
    let paused = pause_for(&mut c, "u-1", 5).await;
    c.wait_state("14 s recorded", recorded(14_000)).await;
    device.kill9();
    let killed = wall_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spawned = wall_ms();
    c.restart(&mut device).await;
    let online = wall_ms();

    let f = c
        .cmd(json!({"actor": "u-1", "action": "finalize", "recording_id": rid}))
        .await;
    assert_eq!(f["ok"], true, "{f}");
    let done = c.wait_event("conversion_done").await;
    let mp4 = std::path::PathBuf::from(done["location"].as_str().expect("MP4 location"));
    let beside = mp4.with_extension("json");
    let text = std::fs::read_to_string(&beside)
        .unwrap_or_else(|e| panic!("{} beside the MP4: {e}", beside.display()));
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");
    println!("{report:#}");
    assert_consistent(&report, &rid);

    let pause_at = assert_gap(&report, "paused", paused);
    // The crash gap runs from the last media the killed run wrote (at most a second before
    // the kill) to the restart, which came between the spawn and the device being online.
    let crash = gaps_of(&report, "crash");
    assert_eq!(crash.len(), 1, "one crash gap: {report:#}");
    let crash_ms = ms(&crash[0]["duration_ms"]);
    println!(
        "crash gap: {crash_ms} ms; the test killed and respawned {} ms apart, online after {} ms",
        spawned - killed,
        online - killed
    );
    assert!(
        crash_ms >= spawned - killed - 200 && crash_ms <= online - killed + TOLERANCE_MS,
        "crash gap {crash_ms} ms: {report:#}"
    );
    assert!(
        ms(&crash[0]["start_ms"]) > pause_at,
        "the crash comes after the pause"
    );

    // What the MP4 holds (read by ffprobe) is the recorded time.
    let mp4_ms = (ffprobe::duration(&mp4) * 1000.0) as i64;
    let recorded = ms(&report["recorded_ms"]);
    assert!(
        (mp4_ms - recorded).abs() <= 500,
        "MP4 {mp4_ms} ms, report {recorded} ms"
    );
    assert!(recorded >= 13_000, "{report:#}");

    // The silent share: the 4 s the test silenced, as the levels heard it.
    let silent = ms(&report["silent_ms"]);
    println!("silent: {silent} ms in the report, {silent_for} ms silenced by the test");
    assert!(
        (silent - silent_for).abs() <= TOLERANCE_MS,
        "{silent} ms silent for {silent_for} ms silenced: {report:#}"
    );
    let share = report["silent_share"].as_f64().expect("silent_share");
    let expected = silent as f64 / recorded as f64;
    assert!(
        (share - expected).abs() < 0.001,
        "{share} vs {expected}: {report:#}"
    );

    // The event carries the figures.
    let summary = &done["completeness"];
    assert_eq!(summary["recorded_ms"], report["recorded_ms"], "{done}");
    assert_eq!(summary["covered_ms"], report["covered_ms"], "{done}");
    assert_eq!(summary["gap_totals"], report["gap_totals"], "{done}");
    assert_eq!(summary["silent_share"], report["silent_share"], "{done}");
    assert_eq!(device.stop(), Some(0), "log:\n{}", device.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_recording_paused_and_restarted_in_the_middle_carries_both_gaps_in_its_manifest() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let mut device = Device::start(&broker, &s3.upload_toml(""));
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let rid = c.start_recording("u-2", "cloud").await;
    let recorded = |ms: u64| move |s: &Value| s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= ms;
    c.wait_state("4 s recorded", recorded(4_000)).await;
    let paused = pause_for(&mut c, "u-2", 4).await;
    c.wait_state("8 s recorded", recorded(8_000)).await;

    device.kill9();
    let killed = wall_ms();
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.restart(&mut device).await;
    // The retained snapshot applies again; the recording waits, paused, for a resume.
    c.wait_state("restored paused", |s| {
        s["meeting_version"] == 1 && s["cloud"]["state"] == "paused"
    })
    .await;
    let r = c.cmd(json!({"actor": "u-2", "action": "resume"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let resumed = wall_ms();
    let after = c
        .wait_state("recording again", |s| s["cloud"]["state"] == "recording")
        .await;
    let so_far = after["cloud"]["recorded_ms"].as_u64().unwrap_or(0);
    c.wait_state("4 s more", recorded(so_far + 4_000)).await;
    c.end_meeting().await;
    let ready = c.wait_event("recording_ready").await;
    assert_eq!(ready["recording_id"], rid.as_str(), "{ready}");

    let key = format!("u-1/m-1/{rid}/manifest.json");
    let bytes = std::fs::read(s3.object_path(&key)).expect("the manifest in the bucket");
    let manifest: Value = serde_json::from_slice(&bytes).expect("the manifest is JSON");
    let report = &manifest["completeness"];
    println!("{report:#}");
    assert_consistent(report, &rid);
    let pause_at = assert_gap(report, "paused", paused);
    // From the kill to the resume the recording had no media: the restart explains it.
    let crash_at = assert_gap(report, "crash", resumed - killed);
    assert!(
        crash_at > pause_at,
        "the crash comes after the pause: {report:#}"
    );
    // The manifest's own segment list and the report agree on the recorded time.
    let listed: i64 = manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| ms(&s["duration_ms"]))
        .sum();
    assert_eq!(ms(&report["recorded_ms"]), listed, "{manifest:#}");
    assert_eq!(
        ready["completeness"]["gap_totals"], report["gap_totals"],
        "{ready}"
    );
    assert_eq!(
        ready["completeness"]["covered_ms"], report["covered_ms"],
        "{ready}"
    );
    assert_eq!(device.stop(), Some(0), "log:\n{}", device.log());
}
