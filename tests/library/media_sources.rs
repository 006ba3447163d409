//! Media sources and layouts against real GStreamer: picture-in-picture (D2), multi-stream
//! (D3), encoder choice, and V4L2/ALSA devices that are absent (real devices run in QEMU:
//! `tests/qemu/`).
//!
//! Pictures are checked by decoding frames and measuring colours; streams with the Discoverer.
//! Run with `cargo test --test library media_sources:: -- --test-threads=1`.

use crate::common;

use common::ffprobe;
use common::media::{capture, finish, sealed, small, FACTS, FACT_TIMEOUT};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use roomrec::media::{
    self, MediaCommand, MediaError, MediaFact, MediaSettings, Source, VideoEncoder,
};
use roomrec::protocol::DeviceHealth;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn no_failures(facts: &[MediaFact]) {
    let bad: Vec<_> = facts
        .iter()
        .filter(|f| matches!(f, MediaFact::Failed { .. } | MediaFact::DiskFull { .. }))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

/// An RGB frame: width, height, pixels.
struct Frame {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Frame {
    /// The mean colour of the box centred at (`cx`, `cy`) with half-size `r` pixels.
    fn mean(&self, cx: usize, cy: usize, r: usize) -> [f64; 3] {
        let mut sum = [0f64; 3];
        let mut n = 0f64;
        for y in cy - r..cy + r {
            for x in cx - r..cx + r {
                let at = (y * self.width + x) * 3;
                for (c, s) in sum.iter_mut().enumerate() {
                    *s += f64::from(self.rgb[at + c]);
                }
                n += 1.0;
            }
        }
        sum.map(|s| s / n)
    }
}

/// Decode the `nth` video frame of a TS segment to RGB (bounded; a hang fails the test).
fn frame_of(path: &Path, nth: usize) -> Frame {
    gst::init().unwrap();
    let description = format!(
        "filesrc location={} ! tsdemux ! h264parse ! avdec_h264 ! videoconvert \
         ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frame = None;
    for _ in 0..=nth {
        let sample = sink.emit_by_name::<Option<gst::Sample>>(
            "try-pull-sample",
            &[&gst::ClockTime::from_seconds(30)],
        );
        let Some(sample) = sample else { break };
        frame = Some(sample);
    }
    let sample = frame.expect("the segment decodes to frames");
    let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
    let width = caps.get::<i32>("width").unwrap() as usize;
    let height = caps.get::<i32>("height").unwrap() as usize;
    let buffer = sample.buffer().unwrap().map_readable().unwrap();
    // RGB rows are padded to 4 bytes; 320 * 3 is a multiple already.
    let rgb = buffer.as_slice().to_vec();
    pipeline.set_state(gst::State::Null).unwrap();
    Frame { width, height, rgb }
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The test content's colour as RGB.
fn content_rgb() -> [f64; 3] {
    let c = media::CONTENT_TEST_ARGB;
    [(c >> 16) & 0xff, (c >> 8) & 0xff, c & 0xff].map(|v| f64::from(v as u8))
}

/// D2: while sharing, the content fills the frame and the camera sits small in the bottom-right
/// corner; before the share and after it, the camera alone. One video stream at the size set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_shows_content_with_the_camera_in_a_corner_while_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        content: Some(PathBuf::from("test")),
        pip: true,
        ..small(dir.path())
    };
    let (tx, rx) = mpsc::channel(256);
    let handle = media::spawn(settings.clone(), 0, tx).expect("media starts");
    handle.send(MediaCommand::SetSharing(true));
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    handle.send(MediaCommand::SetSharing(false));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    handle.send(capture(&[]));
    let facts = finish(handle, rx).await;
    no_failures(&facts);
    let all = sealed(&facts);
    assert!(all.len() >= 4, "{all:?}");

    for s in &all {
        let info = media::probe(&s.abs_path).expect("segment plays");
        assert_eq!(info.video_streams, 1, "segment {}", s.seq);
        let v = info.video.expect("video");
        assert_eq!((v.width, v.height), (320, 240));
    }
    let blue = content_rgb();
    // The first segment was written while sharing: content centre, camera corner.
    let shared = frame_of(&all[0].abs_path, 10);
    assert_eq!((shared.width, shared.height), (320, 240));
    let (w, h) = (shared.width, shared.height);
    let centre = shared.mean(w / 2, h / 2, 8);
    let corner = shared.mean(w - w / 32 - w / 8, h - h / 32 - h / 8, 8);
    let background = shared.mean(w / 8, h / 8, 8);
    eprintln!("sharing: centre {centre:?} corner {corner:?} background {background:?}");
    assert!(distance(centre, blue) < 40.0, "content fills the frame");
    assert!(distance(background, blue) < 40.0, "content fills the frame");
    assert!(
        distance(corner, blue) > 80.0,
        "the camera covers the corner"
    );
    // The last segment was written after sharing stopped: no content anywhere.
    let alone = frame_of(&all[all.len() - 1].abs_path, 10);
    let centre = alone.mean(w / 2, h / 2, 8);
    let background = alone.mean(w / 8, h / 8, 8);
    eprintln!("camera alone: centre {centre:?} background {background:?}");
    assert!(
        distance(background, blue) > 80.0,
        "no content after sharing"
    );
    // The MP4 runs through the layout switches without a hole.
    let paths: Vec<PathBuf> = all.iter().map(|s| s.abs_path.clone()).collect();
    let out = dir.path().join("A.mp4");
    media::convert(&paths, &out, &CancellationToken::new()).expect("converts");
    ffprobe::assert_gapless(&out, ffprobe::recorded(&paths));
}

/// D3: camera and content as two video streams of the same segments, and of the MP4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multistream_records_camera_and_content_as_two_video_streams() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        content: Some(PathBuf::from("test")),
        multistream: true,
        pip: true, // multi-stream wins
        ..small(dir.path())
    };
    let (tx, rx) = mpsc::channel(256);
    let handle = media::spawn(settings, 0, tx).expect("media starts");
    // With a pause: the second capture's two video streams are placed after the first's.
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    handle.send(capture(&[]));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    handle.send(capture(&["A"]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    handle.send(capture(&[]));
    let facts = finish(handle, rx).await;
    no_failures(&facts);
    let all = sealed(&facts);
    assert!(all.len() >= 3, "{all:?}");
    // A capture stopped just after a cut may leave a last segment of a frame or two, which
    // the Discoverer cannot type (the conversion reads it packet by packet).
    for s in all.iter().filter(|s| s.duration_ms >= 1_000) {
        let info = media::probe(&s.abs_path).expect("segment plays");
        assert_eq!(info.video_streams, 2, "segment {}: {info:?}", s.seq);
        assert!(info.audio.is_some());
    }
    let paths: Vec<PathBuf> = all.iter().map(|s| s.abs_path.clone()).collect();
    let out = dir.path().join("A.mp4");
    let info = media::convert(&paths, &out, &CancellationToken::new()).expect("converts");
    assert_eq!(info.video_streams, 2, "{info:?}");
    ffprobe::assert_gapless(&out, ffprobe::recorded(&paths));
}

/// A configured encoder that is not installed fails at spawn, naming the element and package;
/// `Auto` falls back to one that is.
#[test]
fn a_missing_encoder_is_named_and_auto_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    for (encoder, factory, package) in [
        (VideoEncoder::Vaapi, "vaapih264enc", "gstreamer1.0-vaapi"),
        (VideoEncoder::V4l2, "v4l2h264enc", "m2m"),
    ] {
        let (tx, _rx) = mpsc::channel(1);
        let settings = MediaSettings {
            encoder,
            ..small(dir.path())
        };
        // Only where that encoder really is absent (no VA-API / m2m device on CI machines).
        if gst::init().is_ok() && gst::ElementFactory::find(factory).is_some() {
            eprintln!("{factory} is installed here; its absence cannot be tested");
            continue;
        }
        let e = media::spawn(settings, 0, tx).err().expect("refused");
        assert!(matches!(e, MediaError::MissingElement { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains(factory) && text.contains(package), "{text}");
    }
    let (tx, _rx) = mpsc::channel(1);
    let auto = media::spawn(small(dir.path()), 0, tx);
    assert!(auto.is_ok(), "Auto finds an encoder");
}

/// The next fact but level readings and pictures (they come twice a second and every 5 s
/// while capturing).
async fn next_fact(rx: &mut mpsc::Receiver<MediaFact>) -> MediaFact {
    loop {
        let fact = tokio::time::timeout(FACT_TIMEOUT, rx.recv())
            .await
            .expect("a fact in time")
            .expect("media still running");
        if !matches!(fact, MediaFact::Levels(_) | MediaFact::Preview(_)) {
            return fact;
        }
    }
}

/// No camera: health says missing at start, and a capture fails naming the device and what to
/// check; media keeps running. The ALSA `null` device stands in for a working microphone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_camera_is_reported_and_refuses_capture_without_stopping_media() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        source: Source::V4l2,
        camera: Some(PathBuf::from("/dev/video-roomrec-missing")),
        microphone: Some("null".into()),
        ..small(dir.path())
    };
    let (tx, mut rx) = mpsc::channel(FACTS);
    let handle = media::spawn(settings, 0, tx).expect("media starts without a camera");
    assert_eq!(
        next_fact(&mut rx).await,
        MediaFact::Devices {
            camera: DeviceHealth::Missing,
            microphone: DeviceHealth::Ok
        }
    );
    handle.send(capture(&["A"]));
    match next_fact(&mut rx).await {
        MediaFact::Failed { message } => {
            assert!(message.contains("/dev/video-roomrec-missing"), "{message}");
            assert!(message.contains("plugged in"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // Still alive: mute works, and shutdown is clean.
    handle.send(MediaCommand::SetMuted(true));
    assert_eq!(next_fact(&mut rx).await, MediaFact::Muted(true));
    let rest = finish(handle, rx).await;
    assert!(sealed(&rest).is_empty(), "{rest:?}");
}

/// A microphone that does not exist is reported missing, with its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_microphone_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        source: Source::V4l2,
        camera: Some(PathBuf::from("/dev/video-roomrec-missing")),
        microphone: Some("hw:RoomrecNoSuchCard,0".into()),
        ..small(dir.path())
    };
    let (tx, mut rx) = mpsc::channel(FACTS);
    let handle = media::spawn(settings, 0, tx).expect("media starts");
    match next_fact(&mut rx).await {
        MediaFact::Devices { microphone, .. } => {
            assert_ne!(microphone, DeviceHealth::Ok)
        }
        other => panic!("expected Devices, got {other:?}"),
    }
    finish(handle, rx).await;
}
