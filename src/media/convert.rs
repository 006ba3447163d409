//! Conversion (L5): remux a recording's segments, in order, into one MP4 without re-encoding.
//!
//! Owns: the remux pipeline (`splitmuxsrc` → parsers → `mp4mux faststart=true` → `filesink`),
//! its temp file, the playability check and the atomic rename. Must not touch: the capture
//! pipeline, SQLite, MQTT, the rules. Paused time needs no work here: it has no segments.
//!
//! The MP4 is written as `.<name>.part` next to `out`, fsynced, probed, renamed onto `out` and
//! the folder fsynced: `out` either does not exist or is a complete, playable file.

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
/// The MP4 may differ from the sum of its segments by rounding only.
const DURATION_TOLERANCE_MS: u64 = 1_000;

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
    let expected_ms = total_duration(segments)?;
    let tmp = temp_path(out)?;
    let result = convert_via(segments, &tmp, out, expected_ms, cancel);
    if result.is_err() {
        remove_if_present(&tmp);
    }
    result
}

/// The segments' total, probing each: a segment that does not play is named before any work.
fn total_duration(segments: &[PathBuf]) -> Result<u64, MediaError> {
    segments
        .iter()
        .map(|s| super::probe(s).map(|i| i.duration_ms))
        .sum()
}

fn temp_path(out: &Path) -> Result<PathBuf, MediaError> {
    let name = out.file_name().ok_or_else(|| {
        MediaError::Settings(format!("output {} must name a file", out.display()))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".part");
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
    expected_ms: u64,
    cancel: &CancellationToken,
) -> Result<MediaInfo, MediaError> {
    // Remuxing reads and writes at disk speed; the bound only catches a stuck pipeline.
    let limit = Duration::from_secs(120) + Duration::from_millis(expected_ms / 10);
    remux(segments, tmp, cancel, limit)?;
    let file = std::fs::File::open(tmp).map_err(|e| MediaError::io(tmp, e))?;
    file.sync_all().map_err(|e| MediaError::io(tmp, e))?;
    let info = check(tmp, expected_ms)?;
    if cancel.is_cancelled() {
        return Err(MediaError::Cancelled);
    }
    std::fs::rename(tmp, out).map_err(|e| MediaError::io(out, e))?;
    sync_parent(out)?;
    tracing::info!(out = %out.display(), duration_ms = info.duration_ms, "conversion done");
    Ok(info)
}

/// The MP4 must play, hold video, and last as long as its segments (within a second).
fn check(path: &Path, expected_ms: u64) -> Result<MediaInfo, MediaError> {
    let info = super::probe(path)?;
    if info.video.is_none() {
        return Err(MediaError::Check("the MP4 has no video stream".into()));
    }
    if info.duration_ms.abs_diff(expected_ms) > DURATION_TOLERANCE_MS {
        return Err(MediaError::Check(format!(
            "the MP4 plays {} ms but its segments hold {} ms",
            info.duration_ms, expected_ms
        )));
    }
    Ok(info)
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
        let t = temp_path(Path::new("/save/rec-1.mp4")).unwrap();
        assert_eq!(t, Path::new("/save/.rec-1.mp4.part"));
    }

    #[test]
    fn nothing_to_convert_is_an_error() {
        let e = convert(&[], Path::new("/tmp/x.mp4"), &CancellationToken::new()).unwrap_err();
        assert!(matches!(e, MediaError::Settings(_)), "{e}");
    }
}
