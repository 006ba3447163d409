//! The audio watermark end to end (issue 11): recordings from the test source through the real
//! capture pipeline (voaacenc into MPEG-TS segments), one marked and one not, read back by
//! `roomrecctl watermark read` from a segment, the MP4 and a local HLS playlist.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::media::{finish, sealed, small, FACTS};
use roomrec::audiomark::{self, Reading};
use roomrec::media::{self, Marks, MediaCommand, MediaSettings, VideoMark};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PAYLOAD: u64 = 0x0123_4567_89ab;

/// Record `seconds` of the test source into 16 s segments, marked with `mark` or not.
async fn record(dir: &Path, mark: Option<u64>, seconds: u64) -> Vec<PathBuf> {
    let settings = MediaSettings {
        // One segment holds a whole 15 s excerpt.
        segment_ms: 16_000,
        ..small(dir)
    };
    let (tx, rx) = mpsc::channel(FACTS);
    let handle = media::spawn(settings, 0, tx).expect("media starts");
    // The rules' marks, as the daemon sends them (W3: the audio payload).
    handle.send(MediaCommand::SetCapture {
        recordings: vec![common::records::id("A")],
        marks: Marks {
            video: VideoMark::Off,
            audio: mark,
        },
    });
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let facts = finish(handle, rx).await;
    sealed(&facts)
        .iter()
        // A sealed file's path is relative to the segments folder's parent.
        .map(|s| dir.join(&s.path))
        .collect()
}

fn ctl_read(source: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roomrecctl"))
        .args(["watermark", "read", source])
        .output()
        .expect("roomrecctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn playlist(dir: &Path, segments: &[PathBuf]) -> PathBuf {
    let mut text = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:17\n#EXT-X-PLAYLIST-TYPE:VOD\n",
    );
    for s in segments {
        text += &format!("#EXTINF:16.0,\n{}\n", s.display());
    }
    text += "#EXT-X-ENDLIST\n";
    let path = dir.join("index.m3u8");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marked_recording_reads_back_from_segment_mp4_and_hls_and_an_unmarked_one_does_not() {
    let marked_dir = tempfile::tempdir().unwrap();
    let plain_dir = tempfile::tempdir().unwrap();
    let (marked, plain) = tokio::join!(
        record(marked_dir.path(), Some(PAYLOAD), 20),
        record(plain_dir.path(), None, 20)
    );
    assert!(
        marked.len() >= 2 && plain.len() >= 2,
        "{marked:?} {plain:?}"
    );
    let expected = format!("watermark {PAYLOAD:012x}");

    // The first segment (16 s) on its own, through the command line.
    let (code, text) = ctl_read(marked[0].to_str().unwrap());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&expected), "{text}");

    // The MP4 the daemon makes of the segments.
    let mp4 = marked_dir.path().join("rec.mp4");
    let segments = marked.clone();
    let out = mp4.clone();
    tokio::task::spawn_blocking(move || media::convert(&segments, &out, &CancellationToken::new()))
        .await
        .unwrap()
        .expect("the MP4 is made");
    let (code, text) = ctl_read(mp4.to_str().unwrap());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&expected), "{text}");

    // An HLS playlist of the segments, read by the library's reader (hlsdemux).
    let list = playlist(marked_dir.path(), &marked);
    let pcm = audiomark::read_source(list.to_str().unwrap(), 600).expect("the playlist decodes");
    // Both segments, about 20 s.
    assert!(pcm.len() >= 18 * 16_000, "{} samples", pcm.len());
    assert!(
        matches!(audiomark::scan(&pcm, 4), Reading::Mark { payload, .. } if payload == PAYLOAD)
    );

    // Unmarked: "no watermark", exit code 5, never an id.
    let (code, text) = ctl_read(plain[0].to_str().unwrap());
    assert_eq!(code, 5, "{text}");
    assert!(
        text.contains("no watermark") && !text.contains("watermark 0"),
        "{text}"
    );

    // Bad input: a clear error and the usage exit code.
    let (code, text) = ctl_read("/nonexistent/rec.mp4");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

/// W4 for the sound: the payload switched on at a cut (the rules' marks changed while the
/// capture runs) marks the segments from that cut on, without a new pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_switched_on_at_a_cut_marks_the_segments_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        segment_ms: 16_000,
        ..small(dir.path())
    };
    let (tx, rx) = mpsc::channel(FACTS);
    let handle = media::spawn(settings, 0, tx).expect("media starts");
    let marks = |audio| MediaCommand::SetCapture {
        recordings: vec![common::records::id("A")],
        marks: Marks {
            video: VideoMark::Off,
            audio,
        },
    };
    handle.send(marks(None));
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle.send(marks(Some(PAYLOAD)));
    tokio::time::sleep(Duration::from_secs(17)).await;
    let facts = finish(handle, rx).await;
    let segments: Vec<PathBuf> = sealed(&facts)
        .iter()
        .map(|s| dir.path().join(&s.path))
        .collect();
    // The cut at the switch: the unmarked first seconds, then a whole 16 s segment marked.
    assert!(segments.len() >= 2, "{segments:?}");
    let (code, text) = ctl_read(segments[1].to_str().unwrap());
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("watermark {PAYLOAD:012x}")),
        "{text}"
    );
}
