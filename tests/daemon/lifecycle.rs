//! The daemon's life: config checks and exit codes, clean stop, restart and crash recovery —
//! each against the real binary, broker and pipeline. Faults are in `faults.rs`.
use crate::common;

use std::process::Command;
use std::time::Duration;

use common::device::{assert_segments_play, config_text, meeting, recording_local, Client, Device};
use common::Broker;
use roomrec::catalog::Catalog;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_roomrecd");

#[test]
fn check_config_exits_0_for_valid_and_78_with_every_problem_for_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text(1883, dir.path(), "")).unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    let text = config_text(1883, dir.path(), "")
        .replace("room-t", "room 7!")
        .replace("segment_seconds = 1", "segment_seconds = 0");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("device_id"), "{err}");
    assert!(err.contains("media.segment_seconds"), "{err}");
}

#[test]
fn bad_config_exits_78_without_touching_storage() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text =
        config_text(1883, dir.path(), "").replace("source = \"test\"", "source = \"webcam\"");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("media.source"));
    assert!(
        !dir.path().join("storage").exists(),
        "storage must not be created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_seals_the_last_segment_and_exits_cleanly() {
    let broker = Broker::start();
    let (mut device, mut c) = recording_local(&broker, "").await;
    assert_eq!(device.stop(), Some(0), "log:\n{}", device.log());
    let n = assert_segments_play(&device);
    assert!(n >= 3, "at least 3 one-second segments, got {n}");
    // The retained status says offline after a clean stop.
    c.drain_for(Duration::from_millis(300)).await;
    let offline = c.seen.iter().rev().find(|m| m.topic.ends_with("/status"));
    assert_eq!(
        offline.map(|m| m.json["online"].clone()),
        Some(json!(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_ids_are_deduplicated_across_restarts() {
    let broker = Broker::start();
    let mut device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let cmd = json!({"id": "restart-1", "actor": "u-1", "action": "mute", "muted": true});
    let first = c.cmd(cmd.clone()).await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(device.stop(), Some(0));
    c.restart(&mut device).await;
    let again = c.cmd(cmd).await;
    assert_eq!(
        first, again,
        "the stored first answer comes back after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_meeting_snapshot_is_stale_across_a_restart() {
    let broker = Broker::start();
    let mut device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    c.meeting(meeting(5)).await;
    c.wait_state("version 5 applied", |s| s["meeting_version"] == 5)
        .await;
    assert_eq!(device.stop(), Some(0));
    // The broker's retained copy of the last snapshot applies again after a restart.
    c.restart(&mut device).await;
    c.wait_state("version 5 applied again", |s| s["meeting_version"] == 5)
        .await;
    assert_eq!(device.stop(), Some(0));
    // A replayed older snapshot that would make member u-3 the host.
    let mut replayed = meeting(3);
    replayed["host"] = json!("u-3");
    c.meeting(replayed).await;
    c.restart(&mut device).await;
    c.drain_for(Duration::from_secs(2)).await;
    let applied: Vec<&Value> = (c.seen.iter())
        .filter(|m| m.topic.ends_with("/state") && m.json["meeting_version"] == 3)
        .map(|m| &m.json)
        .collect();
    assert!(
        applied.is_empty(),
        "the older snapshot applied: {applied:?}"
    );
    let start = c
        .cmd(json!({"actor": "u-3", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(start["ok"], false, "u-3 acted as host: {start}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_sealed_segments_and_the_local_recording_needs_finalize() {
    let broker = Broker::start();
    let (mut device, mut c) = recording_local(&broker, "").await;
    device.kill9();
    let sealed = assert_segments_play(&device);
    assert!(sealed >= 2, "sealed segments survive the crash: {sealed}");
    c.restart(&mut device).await;
    let r = c
        .cmd(json!({"actor": "admin:ops", "action": "list_recordings"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let recs = r["recordings"].as_array().expect("recordings listed");
    assert_eq!(recs.len(), 1, "{r}");
    assert_eq!(
        recs[0]["state"], "needs_finalize",
        "L5: interrupted capture: {r}"
    );
    let after = assert_segments_play(&device);
    assert!(
        after >= sealed,
        "nothing sealed was lost: {after} < {sealed}"
    );
    // The segment being written at the kill is adopted when it plays: no playable file is
    // left outside the catalog.
    let catalog = Catalog::open(&device.storage().join("catalog.sqlite3")).unwrap();
    let rid = roomrec::protocol::Id::parse(recs[0]["recording_id"].as_str().unwrap()).unwrap();
    let catalogued: Vec<String> = catalog
        .segments_of(&rid)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect();
    for entry in std::fs::read_dir(device.storage().join("segments"))
        .unwrap()
        .flatten()
    {
        let rel = format!("segments/{}", entry.file_name().to_string_lossy());
        let plays = roomrec::media::probe(&entry.path())
            .is_ok_and(|i| i.duration_ms > 0 && i.video.is_some());
        assert!(
            !plays || catalogued.contains(&rel),
            "{rel} plays but is not catalogued: {catalogued:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncatalogued_segment_file_is_never_overwritten() {
    let broker = Broker::start();
    let mut device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    c.wait("device online", |m| {
        m.topic.ends_with("/status") && m.json["online"] == true
    })
    .await;
    assert_eq!(device.stop(), Some(0));
    // As if the power went after a segment was written but before its row was committed.
    let orphan = device.storage().join("segments/00000001.ts");
    std::fs::write(&orphan, b"media written before a power cut").unwrap();
    c.restart(&mut device).await;
    c.join_meeting().await;
    c.cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    c.wait_state("2 s recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 2000
    })
    .await;
    assert_eq!(device.stop(), Some(0));
    assert!(
        std::fs::read(&orphan).unwrap() == b"media written before a power cut",
        "the uncatalogued file was overwritten by new media"
    );
    assert!(assert_segments_play(&device) >= 2);
}

/// Whether a line of what was received satisfies `want`, reading more datagrams (bounded)
/// until one does.
fn notified(
    sock: &std::os::unix::net::UnixDatagram,
    seen: &mut Vec<String>,
    want: impl Fn(&str) -> bool,
) -> bool {
    if seen.iter().any(|t| t.lines().any(&want)) {
        return true;
    }
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = text.lines().any(&want);
            seen.push(text);
            if hit {
                return true;
            }
        }
    }
    false
}

#[test]
fn tells_systemd_ready_status_and_watchdog_and_reloads_on_sighup() {
    let broker = Broker::start();
    let port = broker.port;
    let mut device = Device::prepare(|dir| config_text(port, dir, ""));
    let sock_path = device.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    device
        .env
        .push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    device.env.push(("WATCHDOG_USEC".into(), "4000000".into()));
    device.spawn();
    let mut seen = Vec::new();
    assert!(
        notified(&sock, &mut seen, |l| l == "READY=1"),
        "READY=1: {seen:?}"
    );
    assert!(
        notified(&sock, &mut seen, |l| l.starts_with("STATUS=")),
        "STATUS=: {seen:?}"
    );
    assert!(
        notified(&sock, &mut seen, |l| l == "WATCHDOG=1"),
        "WATCHDOG=1: {seen:?}"
    );

    // SIGHUP with a new log level: reloading, then ready again, and the new level applies.
    let text = std::fs::read_to_string(&device.config)
        .unwrap()
        .replace("info,roomrec=debug", "info,roomrec=trace");
    std::fs::write(&device.config, text).unwrap();
    let pid = device.pid().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    seen.clear();
    assert!(
        notified(&sock, &mut seen, |l| l == "RELOADING=1"),
        "RELOADING=1: {seen:?}"
    );
    let reload_at = seen.len();
    assert!(
        notified(&sock, &mut seen, |l| l == "READY=1")
            && seen[reload_at - 1..].iter().any(|t| t.contains("READY=1")),
        "READY=1 after reload: {seen:?}"
    );
    let log = device.log();
    assert!(
        log.contains("configuration reloaded") && log.contains("level=info,roomrec=trace"),
        "{log}"
    );
    assert!(device.is_running());
    assert_eq!(device.stop(), Some(0));
    assert!(
        notified(&sock, &mut seen, |l| l == "STOPPING=1"),
        "STOPPING=1: {seen:?}"
    );
}
