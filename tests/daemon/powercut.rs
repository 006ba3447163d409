//! Power-cut campaign: roomrecd records cloud and local at once while it uploads to a real S3
//! server (s3s-fs), and is killed with SIGKILL at random moments. After every cut and restart:
//! the catalog passes `integrity_check`; every sealed segment is on disk with its checksum and
//! plays; none goes missing; the local recording is `needs_finalize` and the cloud one is
//! resumable (L5, restore); the media lost per cut stays within the RPO (1 s beyond the last
//! sealed segment). At the end every cloud segment is in the bucket, byte for byte, and no
//! object was stored twice. It prints the figures.
//!
//! `cargo test` runs a short campaign (`ROOMREC_CUTS`, default 12); `scripts/powercut` runs the
//! full one (100 cuts). `ROOMREC_CUT_SEED` replays a campaign: the seed is printed.
use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::device::{config_text, Client, Device};
use common::s3::{S3Server, SECRET_KEY};
use common::{wait_until, Broker};
use roomrec::catalog::{Catalog, SegmentRecord};
use roomrec::protocol::Id;
use serde_json::{json, Value};
use sha2::Digest;

/// The README's recovery point objective: media beyond the last sealed segment lost at a cut.
const RPO_MS: u64 = 1000;
/// Long enough that the once-a-second fsync of the open segment, not the segment length,
/// is what bounds the loss.
const SEGMENT_SECONDS: u64 = 4;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Default)]
struct Figures {
    cuts: u64,
    segments_checked: usize,
    adopted: u64,
    lost_ms: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_campaign() {
    let cuts = env_u64("ROOMREC_CUTS", 12);
    let seed = env_u64("ROOMREC_CUT_SEED", fastrand::u64(..));
    println!("power-cut campaign: {cuts} cuts, seed {seed} (ROOMREC_CUT_SEED={seed} replays it)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let broker = Broker::start();
    let s3 = S3Server::start();
    // A cap that keeps an upload running most of the time while the meeting is live (25 %
    // of it: ~60 kB/s against ~38 kB/s of media), so most cuts land mid-upload.
    let upload = s3.upload_toml("rate_cap = 240000\n");
    let port = broker.port;
    let mut device = Device::start_custom(|dir| {
        config_text(port, dir, &upload).replace(
            "segment_seconds = 1",
            &format!("segment_seconds = {SEGMENT_SECONDS}"),
        )
    });
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    // The co-host records to the cloud, the host locally (one person cannot do both).
    for (actor, kind) in [("u-2", "cloud"), ("u-1", "local")] {
        let r = c
            .cmd(json!({"actor": actor, "action": "start", "kind": kind}))
            .await;
        assert_eq!(r["ok"], true, "start {kind}: {r}");
    }

    let catalog_path = device.storage().join("catalog.sqlite3");
    let mut checked: BTreeMap<u64, String> = BTreeMap::new();
    let mut figures = Figures::default();
    for cut in 1..=cuts {
        c.wait_state("both recordings running", |s| {
            s["cloud"]["state"] == "recording"
                && s["local"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|r| r["state"] == "recording"))
        })
        .await;
        let running_since = now_ms();
        tokio::time::sleep(Duration::from_millis(rng.u64(200..6000))).await;
        let killed_at = now_ms();
        device.kill9();

        let before = check_catalog(&device, &catalog_path, &mut checked, &mut figures);
        c.restart(&mut device).await;
        // The restart adopts the segment the cut left open, if it plays.
        let after = settle_catalog(&catalog_path, before.len());
        for seg in &before {
            assert!(
                after.iter().any(|s| s == seg),
                "cut {cut}: sealed segment {} changed or vanished after the restart",
                seg.seq
            );
        }
        check_catalog(&device, &catalog_path, &mut checked, &mut figures);
        let lost = lost_ms(&before, &after, running_since, killed_at);
        figures.adopted += u64::from(after.len() > before.len());
        figures.lost_ms.push(lost);
        assert!(
            lost <= RPO_MS,
            "cut {cut}: {lost} ms of media lost beyond the last sealed segment (RPO {RPO_MS} ms)"
        );
        check_restored_and_resume(&mut c, cut).await;
        figures.cuts += 1;
    }

    finish_and_check_bucket(&mut c, &device, &s3, &catalog_path).await;
    print_figures(&figures, &s3, &device.log());
}

/// Opens the catalog (the daemon is dead or running; WAL lets both read), checks its
/// integrity and that every sealed segment is on disk with its checksum and plays. Segments
/// already probed are only re-hashed. Returns the segments, by sequence number.
fn check_catalog(
    device: &Device,
    path: &std::path::Path,
    checked: &mut BTreeMap<u64, String>,
    figures: &mut Figures,
) -> Vec<SegmentRecord> {
    let catalog = Catalog::open(path).expect("catalog opens after the cut");
    catalog
        .integrity_check()
        .expect("integrity_check is ok after the cut");
    let segments = all_segments(&catalog);
    for seg in &segments {
        let file = device.storage().join(&seg.path);
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("sealed segment {} missing: {e}", seg.seq));
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            seg.sha256,
            "segment {} changed after it was sealed",
            seg.seq
        );
        if checked.get(&seg.seq) != Some(&seg.sha256) {
            let info = roomrec::media::probe(&file)
                .unwrap_or_else(|e| panic!("sealed segment {} does not play: {e}", seg.seq));
            // (Discoverer often cannot tell an MPEG-TS file's duration; the catalog's is
            // the muxer's.)
            assert!(
                info.video.is_some() && seg.duration_ms > 0,
                "segment {}: {info:?}, catalogued {} ms",
                seg.seq,
                seg.duration_ms
            );
            checked.insert(seg.seq, seg.sha256.clone());
            figures.segments_checked += 1;
        }
    }
    for (seq, _) in checked.iter() {
        assert!(
            segments.iter().any(|s| s.seq == *seq),
            "segment {seq}, checked earlier, is gone from the catalog"
        );
    }
    segments
}

/// Every segment of every recording, once, in sequence order.
fn all_segments(catalog: &Catalog) -> Vec<SegmentRecord> {
    let mut by_seq = BTreeMap::new();
    for r in catalog.recordings(None).expect("recordings") {
        for seg in catalog.segments_of(&r.recording_id).expect("segments") {
            by_seq.insert(seg.seq, seg);
        }
    }
    by_seq.into_values().collect()
}

/// The catalog once the restart's adoption is done: reconcile runs before the daemon comes
/// online, so one read suffices; the wait only covers a slow disk.
fn settle_catalog(path: &std::path::Path, at_least: usize) -> Vec<SegmentRecord> {
    let mut segments = Vec::new();
    wait_until(Duration::from_secs(10), || {
        segments = Catalog::open(path)
            .map(|c| all_segments(&c))
            .unwrap_or_default();
        segments.len() >= at_least
    });
    segments
}

/// Media the cut took: the time the open segment had been recording (since the last seal, or
/// since recording restarted after the previous cut) less what was adopted from it. An
/// over-estimate: the seal is stamped a little after the boundary, capture starts a little
/// after the state says so, and the encoder holds a few frames.
fn lost_ms(
    before: &[SegmentRecord],
    after: &[SegmentRecord],
    running_since: i64,
    killed_at: i64,
) -> u64 {
    let last_seq = before.last().map_or(0, |s| s.seq);
    let open_since = before
        .last()
        .map_or(running_since, |s| s.sealed_at.0.max(running_since));
    let open_for = (killed_at - open_since).max(0) as u64;
    let adopted: u64 = after
        .iter()
        .filter(|s| s.seq > last_seq)
        .map(|s| s.duration_ms)
        .sum();
    let lost = open_for.saturating_sub(adopted);
    println!(
        "  cut: open segment recording for {open_for} ms, {adopted} ms adopted, {lost} ms lost"
    );
    lost
}

/// After a restart, as the rules say: the local recording cut short is `needs_finalize` (L5);
/// the cloud one is paused and resumable. Then both record again.
async fn check_restored_and_resume(c: &mut Client, cut: u64) {
    let r = c
        .cmd(json!({"actor": "admin:ops", "action": "list_recordings"}))
        .await;
    let recordings = r["recordings"].as_array().cloned().unwrap_or_default();
    let locals: Vec<&Value> = recordings.iter().filter(|r| r["kind"] == "local").collect();
    assert_eq!(locals.len() as u64, cut, "cut {cut}: {r}");
    assert!(
        locals.iter().all(|r| r["state"] == "needs_finalize"),
        "cut {cut}: every local recording a cut interrupted needs finalize: {r}"
    );
    let state = c
        .wait_state("the cloud recording restored", |s| {
            s["cloud"]["state"] == "paused"
        })
        .await;
    assert!(state["cloud"]["recording_id"].is_string(), "{state}");
    let resumed = c
        .cmd(json!({"actor": "u-1", "action": "resume", "target": "cloud"}))
        .await;
    assert_eq!(resumed["ok"], true, "cut {cut}: resume cloud: {resumed}");
    let started = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(started["ok"], true, "cut {cut}: start local: {started}");
}

/// Ends the meeting and waits for the cloud recording to be complete; then every catalogued
/// cloud segment must be in the bucket byte for byte, and stored there exactly once.
async fn finish_and_check_bucket(
    c: &mut Client,
    device: &Device,
    s3: &S3Server,
    catalog_path: &std::path::Path,
) {
    c.end_meeting().await;
    let ready = c.wait_event("recording_ready").await;
    let rid = Id::parse(ready["recording_id"].as_str().expect("recording id")).expect("id");
    let catalog = Catalog::open(catalog_path).expect("catalog");
    let segments = catalog.segments_of(&rid).expect("segments");
    let prefix = format!("u-1/m-1/{rid}/");
    s3.assert_holds_once(&prefix, &segments);
    assert!(
        !device.log().contains(SECRET_KEY),
        "the secret never reaches the log"
    );
}

/// Uploads a cut interrupted, from the daemon's reconcile lines after each restart.
fn uploads_interrupted(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("catalog reconciled needs_finalize"))
        .filter_map(|l| l.split("uploads_requeued=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn print_figures(f: &Figures, s3: &S3Server, log: &str) {
    let mut lost = f.lost_ms.clone();
    lost.sort_unstable();
    let mean = lost.iter().sum::<u64>() / lost.len().max(1) as u64;
    let stores = s3.stores_per_key();
    let twice = stores.values().filter(|n| **n > 1).count();
    println!(
        "power-cut figures: cuts survived {}; segments sealed and checked {}; open segments \
         adopted {}; uploads cut mid-transfer {}; objects stored {} ({twice} of them more than \
         once, manifests included); media lost per cut: mean {mean} ms, max {} ms (RPO \
         {RPO_MS} ms)",
        f.cuts,
        f.segments_checked,
        f.adopted,
        uploads_interrupted(log),
        stores.len(),
        lost.last().copied().unwrap_or(0),
    );
}
