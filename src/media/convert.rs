//! Conversion (L5): remux a recording's segments, in order, into one MP4 without re-encoding.
//!
//! Owns: the remux pipeline (`splitmuxsrc` → parsers → `mp4mux faststart=true` → `filesink`),
//! its temp file, the playability check and the atomic rename. Must not touch: the capture
//! pipeline, SQLite, MQTT, the rules. Paused time needs no work here: it has no segments.
//!
//! The MP4 is written as `.<name>.part` next to `out`, fsynced, checked, renamed onto `out` and
//! the folder fsynced: `out` either does not exist or is a complete, playable file.
//!
//! The check: the MP4 plays, has video, holds every video frame of the segments (sample count
//! against the segments' video packets), and lasts as long as they do. splitmuxsrc starts
//! each part where tsdemux says the previous one ended, which is measured from the part's first
//! PCR (the muxer sends it ~125 ms ahead of the first frame), so every join may add a little
//! time: the upper bound grows with the number of joins; the frame count may fall short by at
//! most one frame per segment (see `check`).
//!
//! A segment of a frame or two (capture stopped just after a cut: no audio yet, 4 TS packets)
//! is too short for the MPEG-TS typefinder, and splitmuxsrc fails the whole remux on a part it
//! cannot type. Such a segment is read from a copy padded with null packets (PID 0x1FFF, which
//! demuxers skip by definition) in a hidden folder next to the output; sealed files are never
//! modified.
//!
//! At a join, splitmuxsrc (1.22) sometimes pushes a part's first buffer twice on one stream
//! (same PTS, same bytes; about one conversion in twelve with two video streams). h264parse
//! strips the repeated timestamp and mp4mux then fails the whole file with "Buffer has no PTS".
//! Each stream therefore drops a buffer that repeats the one before it exactly ([`Repeats`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use tokio_util::sync::CancellationToken;

use super::pipeline::make;
use super::seal::sync_parent;
use super::{MediaError, MediaInfo};

/// How often a running conversion looks at its cancel token.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(100);
/// The MP4 may differ from the sum of its segments by rounding, plus [`JOIN_SLACK_MS`] a join.
const DURATION_TOLERANCE_MS: u64 = 1_000;
/// What one join between segments may add (see the module header): above the muxer's PCR lead.
const JOIN_SLACK_MS: u64 = 250;
/// Segments with fewer packets are padded for the typefinder (4 failed, 8 passed here).
const TYPEFIND_MIN_PACKETS: usize = 16;
const TS_PACKET: usize = 188;
/// A TS null packet: PID 0x1FFF, payload only, stuffing bytes.
const NULL_PACKET_HEAD: [u8; 4] = [0x47, 0x1F, 0xFF, 0x10];

/// What the segments hold, for the check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Expected {
    duration_ms: u64,
    /// `None` when a segment is not MPEG-TS (its frames are not counted then).
    video_frames: Option<u64>,
    joins: u64,
}

/// Remux `segments` (in order) into the MP4 `out` and return what it plays. Blocking: run it
/// under `spawn_blocking`. Cancelled: the temp file is removed and `Cancelled` returned.
pub fn convert(
    segments: &[PathBuf],
    out: &Path,
    cancel: &CancellationToken,
) -> Result<MediaInfo, MediaError> {
    super::init()?;
    if segments.is_empty() {
        return Err(MediaError::Settings("no segments to convert".into()));
    }
    let expected = expected(segments)?;
    let tmp = temp_path(out, ".part")?;
    let parts_dir = temp_path(out, ".parts")?;
    let result = remux_inputs(segments, &parts_dir)
        .and_then(|inputs| convert_via(&inputs, &tmp, out, expected, cancel));
    if result.is_err() {
        remove_if_present(&tmp);
    }
    if let Err(e) = std::fs::remove_dir_all(&parts_dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %parts_dir.display(), error = %e, "cannot remove padded copies");
        }
    }
    result
}

/// What the segments hold. TS segments are read packet by packet (exact, and works for a
/// segment of two frames, which the Discoverer cannot type); anything else is probed. A
/// segment that does not play is named before any work.
fn expected(segments: &[PathBuf]) -> Result<Expected, MediaError> {
    let mut total = Expected {
        video_frames: Some(0),
        joins: segments.len().saturating_sub(1) as u64,
        ..Expected::default()
    };
    for segment in segments {
        let ts = super::tsscan::ts_content(segment)?;
        match ts.duration_ms {
            Some(ms) => {
                total.duration_ms += ms;
                total.video_frames = total.video_frames.map(|n| n + ts.video_frames);
            }
            None => {
                total.duration_ms += super::probe(segment)?.duration_ms;
                total.video_frames = None;
            }
        }
    }
    Ok(total)
}

/// The files splitmuxsrc reads: the segments, except that one too short to be typed is
/// replaced by a padded copy in `parts_dir`.
fn remux_inputs(segments: &[PathBuf], parts_dir: &Path) -> Result<Vec<PathBuf>, MediaError> {
    let min_bytes = (TYPEFIND_MIN_PACKETS * TS_PACKET) as u64;
    segments
        .iter()
        .map(|segment| {
            let bytes = std::fs::metadata(segment)
                .map_err(|e| MediaError::io(segment, e))?
                .len();
            if bytes >= min_bytes || !is_ts(segment) {
                return Ok(segment.clone());
            }
            padded_copy(segment, parts_dir)
        })
        .collect()
}

fn is_ts(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "ts")
}

/// A copy of `segment` (cut to whole packets) followed by null packets up to the typefinder's
/// minimum.
fn padded_copy(segment: &Path, parts_dir: &Path) -> Result<PathBuf, MediaError> {
    let mut data = std::fs::read(segment).map_err(|e| MediaError::io(segment, e))?;
    data.truncate(data.len() / TS_PACKET * TS_PACKET);
    let mut null = NULL_PACKET_HEAD.to_vec();
    null.resize(TS_PACKET, 0xFF);
    while data.len() < TYPEFIND_MIN_PACKETS * TS_PACKET {
        data.extend_from_slice(&null);
    }
    std::fs::create_dir_all(parts_dir).map_err(|e| MediaError::io(parts_dir, e))?;
    let name = segment.file_name().ok_or_else(|| {
        MediaError::Settings(format!("segment {} names no file", segment.display()))
    })?;
    let copy = parts_dir.join(name);
    std::fs::write(&copy, data).map_err(|e| MediaError::io(&copy, e))?;
    tracing::info!(segment = %segment.display(), "short segment read from a padded copy");
    Ok(copy)
}

/// `.<name><suffix>` next to `out`.
fn temp_path(out: &Path, suffix: &str) -> Result<PathBuf, MediaError> {
    let name = out.file_name().ok_or_else(|| {
        MediaError::Settings(format!("output {} must name a file", out.display()))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(suffix);
    Ok(out.with_file_name(tmp_name))
}

fn remove_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the temp file");
        }
        _ => {}
    }
}

fn convert_via(
    segments: &[PathBuf],
    tmp: &Path,
    out: &Path,
    expected: Expected,
    cancel: &CancellationToken,
) -> Result<MediaInfo, MediaError> {
    // Remuxing reads and writes at disk speed; the bound only catches a stuck pipeline.
    let limit = Duration::from_secs(120) + Duration::from_millis(expected.duration_ms / 10);
    remux(segments, tmp, cancel, limit)?;
    let file = std::fs::File::open(tmp).map_err(|e| MediaError::io(tmp, e))?;
    file.sync_all().map_err(|e| MediaError::io(tmp, e))?;
    let info = check(tmp, expected)?;
    if cancel.is_cancelled() {
        return Err(MediaError::Cancelled);
    }
    std::fs::rename(tmp, out).map_err(|e| MediaError::io(out, e))?;
    sync_parent(out)?;
    tracing::info!(out = %out.display(), duration_ms = info.duration_ms, "conversion done");
    Ok(info)
}

/// The MP4 must play, hold video, hold every video frame of its segments, and last as long
/// as they do (see the module header for the bounds).
fn check(path: &Path, expected: Expected) -> Result<MediaInfo, MediaError> {
    let info = super::probe(path)?;
    if info.video.is_none() {
        return Err(MediaError::Check("the MP4 has no video stream".into()));
    }
    if let Some(frames) = expected.video_frames {
        let got = super::mp4scan::video_samples(path)?;
        // One frame per segment may go: with two video streams (D3) splitmuxsrc can drop a
        // stream's last frame where the streams end unevenly at a cut (135 of 136 seen).
        // Failing the whole conversion for it would cost the user far more than the frame.
        let floor = frames.saturating_sub(expected.joins + 1);
        if got.is_none_or(|n| n < floor) {
            return Err(MediaError::Check(format!(
                "the MP4 holds {} video frames but its segments {frames}",
                got.map_or("no".into(), |n| n.to_string())
            )));
        }
    }
    if !duration_fits(info.duration_ms, expected) {
        return Err(MediaError::Check(format!(
            "the MP4 plays {} ms but its {} segments hold {} ms",
            info.duration_ms,
            expected.joins + 1,
            expected.duration_ms
        )));
    }
    Ok(info)
}

fn duration_fits(mp4_ms: u64, expected: Expected) -> bool {
    let low = expected.duration_ms.saturating_sub(DURATION_TOLERANCE_MS);
    let high = expected.duration_ms + DURATION_TOLERANCE_MS + expected.joins * JOIN_SLACK_MS;
    (low..=high).contains(&mp4_ms)
}

/// Run the remux pipeline to EOS, an error, cancellation or `limit`.
fn remux(
    segments: &[PathBuf],
    tmp: &Path,
    cancel: &CancellationToken,
    limit: Duration,
) -> Result<(), MediaError> {
    let pipeline = build_remux(segments, tmp)?;
    let result = run_to_eos(&pipeline, cancel, limit);
    // Null closes the file whatever happened, so it can be removed or renamed.
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn build_remux(segments: &[PathBuf], tmp: &Path) -> Result<gst::Pipeline, MediaError> {
    let perr = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
    let pipeline = gst::Pipeline::with_name("convert");
    let src = make("splitmuxsrc")?;
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    // moov first, so the file starts playing before it is fully downloaded.
    mux.set_property("faststart", true);
    sink.set_property("location", tmp.to_string_lossy().as_ref());
    pipeline
        .add_many([&src, &mux, &sink])
        .map_err(|e| perr(&e))?;
    mux.link(&sink).map_err(|e| perr(&e))?;

    // Exactly these files, in this order (the `location` glob would take every segment).
    let files: Vec<String> = segments
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    src.connect("format-location", false, move |_| {
        Some(gst::glib::StrV::from(files.clone()).to_value())
    });
    let weak_pipeline = pipeline.downgrade();
    src.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak_pipeline.upgrade() else {
            return;
        };
        if let Err(e) = link_stream(&pipeline, pad, &mux) {
            // Posted on the bus, so `run_to_eos` reports it.
            tracing::error!(error = %e, "cannot link a stream of the segments");
            let msg =
                gst::message::Error::builder(gst::CoreError::Negotiation, &e.to_string()).build();
            let _ = pipeline.post_message(msg);
        }
    });
    Ok(pipeline)
}

/// splitmuxsrc → parser (so mp4mux gets the stream format it needs) → a new mp4mux pad.
fn link_stream(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    mux: &gst::Element,
) -> Result<(), MediaError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let kind = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let (parser, mux_pad) = match kind.as_str() {
        "video/x-h264" => ("h264parse", "video_%u"),
        "audio/x-opus" => ("opusparse", "audio_%u"),
        "audio/mpeg" => ("aacparse", "audio_%u"),
        other => {
            return Err(MediaError::Pipeline(format!(
                "segments hold a {other:?} stream ({}), which conversion does not handle",
                pad.name()
            )))
        }
    };
    let parser = make(parser)?;
    let perr = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
    drop_repeats(pad);
    pipeline.add(&parser).map_err(|e| perr(&e))?;
    parser.sync_state_with_parent().map_err(|e| perr(&e))?;
    let sink_pad = parser
        .static_pad("sink")
        .ok_or_else(|| MediaError::Pipeline("parser without sink pad".into()))?;
    pad.link(&sink_pad).map_err(|e| perr(&e))?;
    parser
        .link_pads(Some("src"), mux, Some(mux_pad))
        .map_err(|e| perr(&e))
}

/// Drop, on `pad`, every buffer that repeats the one before it (see the module header).
fn drop_repeats(pad: &gst::Pad) {
    // The probe runs on the pad's one streaming thread; the lock is never contended.
    let repeats = std::sync::Mutex::new(Repeats::default());
    let stream = pad.name();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let repeat = repeats
            .lock()
            .map(|mut r| r.is_repeat(buffer))
            .unwrap_or(false);
        if repeat {
            tracing::debug!(%stream, pts = ?buffer.pts(), "dropped a repeated buffer at a join");
            return gst::PadProbeReturn::Drop;
        }
        gst::PadProbeReturn::Ok
    });
}

/// Remembers a stream's last buffer (a reference, not a copy) to spot an exact repeat.
#[derive(Default)]
struct Repeats {
    last: Option<gst::Buffer>,
}

impl Repeats {
    /// True when `buffer` has the same timestamps and bytes as the buffer before it. The bytes
    /// are compared only when the timestamps match, which in a sound stream never happens.
    fn is_repeat(&mut self, buffer: &gst::Buffer) -> bool {
        let repeat = self.last.as_ref().is_some_and(|last| {
            last.pts().is_some()
                && last.pts() == buffer.pts()
                && last.dts() == buffer.dts()
                && same_bytes(last, buffer)
        });
        self.last = Some(buffer.clone());
        repeat
    }
}

fn same_bytes(a: &gst::Buffer, b: &gst::Buffer) -> bool {
    match (a.map_readable(), b.map_readable()) {
        (Ok(a), Ok(b)) => a.as_slice() == b.as_slice(),
        _ => false,
    }
}

fn run_to_eos(
    pipeline: &gst::Pipeline,
    cancel: &CancellationToken,
    limit: Duration,
) -> Result<(), MediaError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Pipeline("pipeline has no bus".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| MediaError::Pipeline("the conversion pipeline refused to start".into()))?;
    let deadline = Instant::now() + limit;
    loop {
        if cancel.is_cancelled() {
            return Err(MediaError::Cancelled);
        }
        if Instant::now() >= deadline {
            return Err(MediaError::Timeout {
                seconds: limit.as_secs(),
                doing: "converting segments to MP4",
            });
        }
        let types = [gst::MessageType::Eos, gst::MessageType::Error];
        let Some(msg) = bus.timed_pop_filtered(POLL, &types) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => {
                let text = format!("{} ({})", e.error(), e.debug().unwrap_or_default());
                if e.error().matches(gst::ResourceError::NoSpaceLeft) {
                    return Err(MediaError::DiskFull(text));
                }
                return Err(MediaError::Pipeline(text));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_file_is_hidden_next_to_the_output() {
        let t = temp_path(Path::new("/save/rec-1.mp4"), ".part").unwrap();
        assert_eq!(t, Path::new("/save/.rec-1.mp4.part"));
    }

    #[test]
    fn joins_widen_the_upper_bound_only() {
        let e = Expected {
            duration_ms: 41_000,
            video_frames: None,
            joins: 41,
        };
        // The camera-removed recording: 41 joins of ~55 ms each.
        assert!(duration_fits(43_333, e));
        assert!(
            !duration_fits(39_900, e),
            "a missing second is never excused"
        );
        assert!(!duration_fits(41_000 + 1_000 + 41 * 250 + 1, e));
        let one = Expected { joins: 0, ..e };
        assert!(!duration_fits(42_001, one));
    }

    #[test]
    fn a_short_segment_is_padded_to_whole_null_packets() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000042.ts");
        let mut data = vec![0x47u8; 4 * TS_PACKET];
        data.extend_from_slice(&[0x47, 1, 2]); // a torn tail is dropped
        std::fs::write(&seg, &data).unwrap();
        let parts = dir.path().join(".x.mp4.parts");
        let inputs = remux_inputs(std::slice::from_ref(&seg), &parts).unwrap();
        assert_eq!(inputs, vec![parts.join("00000042.ts")]);
        let copy = std::fs::read(&inputs[0]).unwrap();
        assert_eq!(copy.len(), TYPEFIND_MIN_PACKETS * TS_PACKET);
        assert_eq!(copy[..4 * TS_PACKET], data[..4 * TS_PACKET]);
        assert_eq!(copy[4 * TS_PACKET..4 * TS_PACKET + 4], NULL_PACKET_HEAD);
        assert_eq!(
            std::fs::read(&seg).unwrap(),
            data,
            "the sealed file is untouched"
        );
    }

    fn buffer(pts_ms: u64, bytes: &[u8]) -> gst::Buffer {
        let mut buffer = gst::Buffer::from_slice(bytes.to_vec());
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_dts(gst::ClockTime::from_mseconds(pts_ms));
        buffer
    }

    #[test]
    fn only_an_exact_repeat_of_the_previous_buffer_is_dropped() {
        gst::init().expect("gstreamer");
        let mut repeats = Repeats::default();
        let cases = [
            (buffer(0, b"idr"), false, "first buffer"),
            (buffer(0, b"idr"), true, "same time, same bytes"),
            (buffer(66, b"p1"), false, "next frame"),
            (
                buffer(66, b"p2"),
                false,
                "same time, other bytes: kept, the muxer judges",
            ),
            (buffer(133, b"p2"), false, "same bytes, later time"),
            (
                buffer(0, b"idr"),
                false,
                "an earlier buffer, not the previous one",
            ),
        ];
        for (buffer, dropped, why) in cases {
            assert_eq!(repeats.is_repeat(&buffer), dropped, "{why}");
        }
        let untimed = gst::Buffer::from_slice(b"x".to_vec());
        assert!(!repeats.is_repeat(&untimed));
        assert!(
            !repeats.is_repeat(&untimed),
            "untimed buffers are never taken as repeats"
        );
    }

    #[test]
    fn nothing_to_convert_is_an_error() {
        let e = convert(&[], Path::new("/tmp/x.mp4"), &CancellationToken::new()).unwrap_err();
        assert!(matches!(e, MediaError::Settings(_)), "{e}");
    }
}
