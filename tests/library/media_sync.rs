//! A/V sync, measured (issue 10): the test source's sync signal (a white frame and a click
//! together once a second) recorded into segments, converted to an MP4 and listed in an HLS
//! playlist; ffmpeg decodes each and `media::measure_sync` pairs flashes with clicks.
//!
//! Run with `cargo test --test library media_sync::`; the hour is `benches/sync.sh`.

use crate::common;

use common::media::{capture, finish, sealed, small};
use std::path::{Path, PathBuf};
use std::time::Duration;

use roomrec::media::{self, MediaSettings, SyncReport, TestPicture};
use roomrec::upload::manifest::{hls_playlist, ManifestSegment};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// ±1 frame at 30 fps.
const MAX_OFFSET_MS: f64 = 33.3;

fn measured(path: &Path) -> SyncReport {
    let report = media::measure_sync(path).expect("ffmpeg reads the file");
    eprintln!(
        "{}: {} {:?}",
        path.display(),
        report.summary(),
        report.offsets_ms()
    );
    report
}

/// Every flash has its click within a frame, none is unpaired, and there are `at_least` pairs.
fn assert_in_sync(report: &SyncReport, at_least: usize, what: &str) {
    assert_pairs_in_sync(report, at_least, what);
    assert_eq!(
        report.flashes.len(),
        report.pairs.len(),
        "{what}: {report:?}"
    );
    assert_eq!(
        report.clicks.len(),
        report.pairs.len(),
        "{what}: {report:?}"
    );
}

/// Every pair within a frame, no drift, and at least `at_least` pairs. (In a segment a flash
/// or click at either end may have its partner in the next or previous segment.)
fn assert_pairs_in_sync(report: &SyncReport, at_least: usize, what: &str) {
    assert!(
        report.pairs.len() >= at_least,
        "{what}: {} pairs, expected at least {at_least}: {report:?}",
        report.pairs.len()
    );
    for (at, offset) in &report.pairs {
        assert!(
            offset.abs() * 1e3 <= MAX_OFFSET_MS,
            "{what}: the click of the flash at {at:.3} s is {:+.1} ms off",
            offset * 1e3
        );
    }
    assert!(
        report.drift_ms().abs() <= MAX_OFFSET_MS,
        "{what}: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_and_click_stay_within_a_frame_in_segments_mp4_and_hls() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        framerate: 30,
        test_picture: TestPicture::Sync,
        ..small(dir.path())
    };
    // The facts are read only at the end, and media waits when the channel is full: room for
    // an hour of them (levels twice a second, the picture check once, a segment every 2 s:
    // about 14 000), or the capture would stall after half a minute (it did).
    let (tx, rx) = mpsc::channel(1 << 15);
    let handle = media::spawn(settings, 0, tx).unwrap();
    handle.send(capture(&["A"]));
    // benches/sync.sh runs this for an hour.
    let seconds: f64 = std::env::var("ROOMREC_SYNC_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7.5);
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    handle.send(capture(&[]));
    let all = sealed(&finish(handle, rx).await);
    let paths: Vec<PathBuf> = all.iter().map(|s| s.abs_path.clone()).collect();
    let recorded_s = all.iter().map(|s| s.duration_ms).sum::<u64>() / 1000;

    // Segments: each whole second from the first frame on is a flash (the first at 1 s). A
    // flash at the end of a segment may have its click in the next one (cut with the audio).
    let mut flashes = 0;
    for s in all.iter().filter(|s| s.duration_ms >= 1_000) {
        let report = measured(&s.abs_path);
        let at_least = report.flashes.len().saturating_sub(1);
        assert_pairs_in_sync(&report, at_least, &s.path);
        flashes += report.flashes.len();
    }
    assert!(
        flashes >= recorded_s as usize - 2,
        "{flashes} flashes in segments for {recorded_s} s"
    );

    let mp4 = dir.path().join("A.mp4");
    media::convert(&paths, &mp4, &CancellationToken::new()).expect("converts");
    assert_in_sync(&measured(&mp4), recorded_s as usize - 1, "MP4");

    let listed: Vec<ManifestSegment> = all
        .iter()
        .map(|s| ManifestSegment {
            seq: s.seq,
            name: s
                .abs_path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            bytes: s.bytes,
            duration_ms: s.duration_ms,
            sha256: s.sha256.clone(),
            etag: None,
        })
        .collect();
    let playlist = dir.path().join("segments").join("index.m3u8");
    std::fs::write(&playlist, hls_playlist(&listed)).unwrap();
    assert_in_sync(&measured(&playlist), recorded_s as usize - 1, "HLS");
}
