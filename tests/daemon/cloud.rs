//! Cloud recording end to end (E1, E2): the daemon records, uploads every segment to a real
//! S3-compatible server (s3s-fs, which checks signatures), writes the manifest once the
//! meeting ends, tells the creator `recording_ready`, then shares and deletes on command.
use crate::common;

use std::time::Duration;

use common::device::{Client, Device};
use common::s3::{S3Server, SECRET_KEY};
use common::{wait_until, Broker};
use roomrec::catalog::Catalog;
use serde_json::{json, Value};
use sha2::Digest;

fn manifest(s3: &S3Server, prefix: &str) -> Value {
    let bytes =
        std::fs::read(s3.object_path(&format!("{prefix}manifest.json"))).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The device's catalog and the segments it lists for recording `rid`.
fn catalogued(device: &Device, rid: &str) -> (Catalog, Vec<roomrec::catalog::SegmentRecord>) {
    let catalog = Catalog::open(&device.storage().join("catalog.sqlite3")).unwrap();
    let segments = catalog
        .segments_of(&roomrec::protocol::Id::parse(rid).unwrap())
        .unwrap();
    (catalog, segments)
}

/// Records a cloud recording of >= 3 s, ends the meeting and waits for `recording_ready`.
/// Returns the recording id and its folder in the bucket.
async fn record_until_ready(c: &mut Client) -> (String, String) {
    c.join_meeting().await;

    let rid = c.start_recording("u-2", "cloud").await;
    c.wait_state("3 s of cloud media", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 3000
    })
    .await;
    c.end_meeting().await;

    // E1: once every segment and the manifest are up, the creator (C4: u-1) hears of it.
    let ready = c.wait_event("recording_ready").await;
    assert_eq!(ready["to"], json!(["u-1"]), "{ready}");
    assert_eq!(ready["recording_id"], rid.as_str());
    let location = ready["location"].as_str().expect("location");
    let prefix = format!("u-1/m-1/{rid}/");
    assert!(
        location.ends_with(&format!("{prefix}index.m3u8")),
        "{location}"
    );
    (rid, prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_e2_cloud_recording_is_uploaded_completed_shared_and_deleted() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let device = Device::start(&broker, &s3.upload_toml(""));
    let mut c = Client::connect(&broker).await;
    let (rid, prefix) = record_until_ready(&mut c).await;

    // Every catalogued segment of the recording is in the bucket, byte for byte.
    let (_, segments) = catalogued(&device, &rid);
    assert!(segments.len() >= 3, "{segments:?}");
    let keys = s3.keys();
    for seg in &segments {
        let ext = seg.path.rsplit('.').next().unwrap();
        let key = format!("{prefix}{:08}.{ext}", seg.seq);
        let body =
            std::fs::read(s3.object_path(&key)).unwrap_or_else(|_| panic!("{key} in {keys:?}"));
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&body)),
            seg.sha256,
            "{key}"
        );
    }
    let playlist = std::fs::read_to_string(s3.object_path(&format!("{prefix}index.m3u8"))).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert_eq!(
        playlist.matches("#EXTINF").count(),
        segments.len(),
        "{playlist}"
    );
    let m = manifest(&s3, &prefix);
    assert_eq!(m["shared"], false, "{m}");

    // E2: the host shares it, then deletes it.
    let r = c
        .cmd(json!({"actor": "u-1", "action": "share", "recording_id": rid, "shared": true}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    c.wait_event("recording_shared").await;
    assert!(
        wait_until(Duration::from_secs(20), || manifest(&s3, &prefix)["shared"]
            == true),
        "manifest rewritten with shared = true"
    );
    let r = c
        .cmd(json!({"actor": "u-1", "action": "delete", "recording_id": rid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    c.wait_event("recording_deleted").await;
    assert!(
        wait_until(Duration::from_secs(20), || !s3
            .keys()
            .iter()
            .any(|k| k.starts_with(&prefix))),
        "objects removed: {:?}",
        s3.keys()
    );
    assert!(
        !device.log().contains(SECRET_KEY),
        "the secret never reaches the log"
    );
}

/// E2's share and delete are promised by the `ok` reply; a restart while the store is away
/// must not lose them (nor leave the deleted recording's objects in the bucket for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_and_delete_sent_while_the_store_is_down_are_done_after_a_restart() {
    let broker = Broker::start();
    let mut s3 = S3Server::start();
    let mut device = Device::start(&broker, &s3.upload_toml(""));
    let mut c = Client::connect(&broker).await;
    let (rid, prefix) = record_until_ready(&mut c).await;
    let objects = |s3: &S3Server| s3.keys().iter().filter(|k| k.starts_with(&prefix)).count();
    assert!(
        objects(&s3) >= 4,
        "segments, playlist, manifest: {:?}",
        s3.keys()
    );

    s3.kill();
    let r = c
        .cmd(json!({"actor": "u-1", "action": "share", "recording_id": rid, "shared": true}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(device.stop(), Some(0));
    s3.restart();
    c.restart(&mut device).await;
    assert!(
        wait_until(Duration::from_secs(30), || manifest(&s3, &prefix)["shared"]
            == true),
        "the share queued before the restart rewrote the manifest: {}",
        manifest(&s3, &prefix)
    );

    s3.kill();
    let r = c
        .cmd(json!({"actor": "u-1", "action": "delete", "recording_id": rid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(device.stop(), Some(0));
    s3.restart();
    c.restart(&mut device).await;
    assert!(
        wait_until(Duration::from_secs(30), || objects(&s3) == 0),
        "the delete queued before the restart removed every object: {:?}",
        s3.keys()
    );
    let catalog = Catalog::open(&device.storage().join("catalog.sqlite3")).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || catalog
            .pending_ops()
            .map(|ops| ops.is_empty())
            .unwrap_or(false)),
        "done work leaves the catalog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_store_shows_in_status_and_the_queue_catches_up_when_it_returns() {
    let broker = Broker::start();
    let mut s3 = S3Server::start();
    // The whole uplink for uploads, although the meeting is live: with the default share
    // and no link measured yet, the floor (32 kB/s) only about matches the recording's
    // rate, and the backlog would drain only once the meeting ends.
    let section = format!("{}live_share_percent = 100\n", s3.upload_toml(""));
    let mut device = Device::start(&broker, &section);
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    s3.kill();
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "cloud"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    // The store is probed from the start, so the problem may be named before anything waits.
    let status = c
        .wait(
            "status naming the upload problem with segments waiting",
            |m| {
                m.topic.ends_with("/status")
                    && m.json["uploads"]["last_error"].is_string()
                    && m.json["uploads"]["pending"].as_u64().unwrap_or(0) >= 1
            },
        )
        .await;
    assert!(
        status.json["uploads"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach the store")),
        "{}",
        status.json
    );
    c.wait_state("recording goes on", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 3000
    })
    .await;
    c.seen.clear();
    s3.restart();
    let caught_up = c
        .wait("backlog uploaded", |m| {
            m.topic.ends_with("/status")
                && m.json["uploads"]["pending"] == 0
                && m.json["uploads"]["last_error"].is_null()
        })
        .await;
    assert_eq!(caught_up.json["uploads"]["pending_bytes"], 0);
    assert!(s3.keys().iter().filter(|k| k.ends_with(".ts")).count() >= 3);
    assert_eq!(device.stop(), Some(0));
}

/// The disk budget gets back the bytes of a cloud recording its host deleted, at once: the
/// upload actor removes the local segments only that recording needed, and the budget's
/// running total must drop with them (before, it dropped only on eviction, so it over-counted
/// until a restart and could refuse recordings on a disk with room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cloud_recording_gives_its_local_bytes_back_to_the_disk_budget() {
    const MAX_BYTES: u64 = 50_000_000;
    let broker = Broker::start();
    let s3 = S3Server::start();
    let device = Device::start_custom(|dir| {
        common::device::config_text(broker.port, dir, &s3.upload_toml(""))
            .replace("[media]", &format!("max_bytes = {MAX_BYTES}\n\n[media]"))
    });
    let mut c = Client::connect(&broker).await;
    let (rid, _) = record_until_ready(&mut c).await;

    // Every segment sealed in this run is the recording's: the engine's bitrate is theirs.
    let (catalog, segments) = catalogued(&device, &rid);
    let (bytes, ms) = segments
        .iter()
        .fold((0u64, 0u64), |(b, d), s| (b + s.bytes, d + s.duration_ms));
    assert_eq!(
        catalog.used_bytes().unwrap(),
        bytes,
        "only this recording's media"
    );
    let bitrate = (bytes * 1000 / ms).max(1);
    let (counted, freed) = ((MAX_BYTES - bytes) / bitrate, MAX_BYTES / bitrate);
    assert!(freed > counted, "the recording is worth seconds of budget");

    let r = c
        .cmd(json!({"actor": "u-1", "action": "delete", "recording_id": rid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let files_gone = || {
        segments
            .iter()
            .all(|s| !device.storage().join(&s.path).exists())
            && catalog.pending_ops().is_ok_and(|ops| ops.is_empty())
            && catalog.used_bytes().is_ok_and(|b| b == 0)
    };
    assert!(
        wait_until(Duration::from_secs(30), files_gone),
        "the local segments are deleted and released"
    );
    // The next status (every 30 s) is computed after the daemon heard of the deletion.
    c.drain_for(Duration::from_secs(1)).await;
    c.seen.clear();
    let status = c
        .wait("the next status", |m| {
            m.topic.ends_with("/status") && m.json["storage"]["remaining_record_s"].is_u64()
        })
        .await;
    assert_eq!(
        status.json["storage"]["remaining_record_s"].as_u64(),
        Some(freed),
        "the budget is {MAX_BYTES} bytes again at {bitrate} B/s ({counted} s if the deleted \
         recording's {bytes} bytes were still counted): {}",
        status.json
    );
}
