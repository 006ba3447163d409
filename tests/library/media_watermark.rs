//! W4 against real GStreamer through `media::spawn`: the video watermark is burned into every
//! encoded stream, each stream of a multi-stream recording and the picture-in-picture
//! composite, read back by OCR from the segments.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::media::{finish, id, sealed, small};
use common::ocr::Reader;
use roomrec::media::{self, Marks, MediaCommand, MediaSettings, VideoMark};
use tokio::sync::mpsc;

const TEXT: &str = "ACME ROOM";

/// Records ~3 s of `settings` with a single-row mark; returns the sealed segments of at
/// least a second.
async fn record_marked(settings: MediaSettings, sharing: bool) -> Vec<PathBuf> {
    let (tx, rx) = mpsc::channel(256);
    let handle = media::spawn(settings, 0, tx).expect("media starts");
    handle.send(MediaCommand::SetSharing(sharing));
    handle.send(MediaCommand::SetCapture {
        recordings: vec![id("A")],
        marks: Marks {
            video: VideoMark::Single(TEXT.into()),
            audio: None,
        },
    });
    tokio::time::sleep(Duration::from_millis(3000)).await;
    handle.send(common::media::capture(&[]));
    let facts = finish(handle, rx).await;
    sealed(&facts)
        .into_iter()
        .filter(|s| s.duration_ms >= 1_000)
        .map(|s| s.abs_path)
        .collect()
}

/// 360p: the size the watermark must be legible at.
fn at_360p(dir: &std::path::Path) -> MediaSettings {
    MediaSettings {
        width: 640,
        height: 360,
        content: Some(PathBuf::from("test")),
        ..small(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w4_each_stream_of_a_multistream_recording_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        multistream: true,
        ..at_360p(dir.path())
    };
    let segments = record_marked(settings, true).await;
    let first = segments.first().expect("a whole segment");
    let ocr = Reader::new(TEXT);
    // The content stream is one flat colour: nothing hides the row there.
    assert!(
        ocr.reads(first, 1, 0.5, None),
        "no watermark on the content stream"
    );
    let camera = [0.2, 0.5, 0.8]
        .iter()
        .filter(|at| ocr.reads(first, 0, **at, None));
    assert!(camera.count() >= 2, "no watermark on the camera stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w4_the_picture_in_picture_composite_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        pip: true,
        ..at_360p(dir.path())
    };
    let segments = record_marked(settings, true).await;
    let first = segments.first().expect("a whole segment");
    let ocr = Reader::new(TEXT);
    assert!(
        ocr.reads_mostly(first, &[0.2, 0.5, 0.8], None),
        "no watermark on the composite"
    );
}
