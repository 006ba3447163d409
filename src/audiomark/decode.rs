//! Decoding what `roomrecctl watermark read` is given (an MP4, an MPEG-TS segment or an HLS
//! playlist, as a local path or an http(s) URL) to the detector's PCM: 16 kHz mono F32, with
//! GStreamer's `uridecodebin` (an HLS playlist goes through `hlsdemux`, which reads the
//! segments it lists). Video is parsed, never decoded.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use gst::prelude::*;
use gstreamer as gst;

use super::detect::DETECT_RATE;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} does not exist or cannot be read")]
    Missing(String),
    #[error("{0} is neither a local path nor an http(s) or file URL")]
    Scheme(String),
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
    #[error("{0} has no audio stream")]
    NoAudio(String),
}

/// The audio of `source`, 16 kHz mono, at most its first `max_seconds`.
pub fn read_source(source: &str, max_seconds: u32) -> Result<Vec<f32>, DecodeError> {
    read_pcm(source, DETECT_RATE, max_seconds)
}

/// The audio of `source`, mono at `rate`, at most its first `max_seconds`.
pub fn read_pcm(source: &str, rate: u32, max_seconds: u32) -> Result<Vec<f32>, DecodeError> {
    let uri = to_uri(source)?;
    let fail = |reason: String| DecodeError::Decode {
        what: source.to_owned(),
        reason,
    };
    gst::init().map_err(|e| fail(e.to_string()))?;
    let (pipeline, samples) = build(&uri, rate, max_seconds).map_err(fail)?;
    let result = run(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result.map_err(fail)?;
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    if samples.is_empty() {
        return Err(DecodeError::NoAudio(source.to_owned()));
    }
    Ok(samples)
}

fn to_uri(source: &str) -> Result<String, DecodeError> {
    if let Some((scheme, _)) = source.split_once("://") {
        return match scheme {
            "http" | "https" | "file" => Ok(source.to_owned()),
            _ => Err(DecodeError::Scheme(source.to_owned())),
        };
    }
    let path = Path::new(source)
        .canonicalize()
        .map_err(|_| DecodeError::Missing(source.to_owned()))?;
    gst::glib::filename_to_uri(&path, None)
        .map(|u| u.to_string())
        .map_err(|_| DecodeError::Missing(source.to_owned()))
}

type Samples = Arc<Mutex<Vec<f32>>>;

fn build(uri: &str, rate: u32, max_seconds: u32) -> Result<(gst::Pipeline, Samples), String> {
    let make = |f: &str| {
        gst::ElementFactory::make(f)
            .build()
            .map_err(|_| format!("the GStreamer element {f} is not installed"))
    };
    let pipeline = gst::Pipeline::new();
    let decode = make("uridecodebin")?;
    decode.set_property("uri", uri);
    // Stop at parsed video: only the sound is decoded.
    let stop_at: gst::Caps = ["audio/x-raw", "video/x-h264", "video/x-h265"]
        .into_iter()
        .map(gst::Structure::new_empty)
        .collect();
    decode.set_property("caps", stop_at);
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let filter = make("capsfilter")?;
    filter.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("rate", rate as i32)
            .field("channels", 1i32)
            .build(),
    );
    let sink = make("fakesink")?;
    sink.set_property("sync", false);
    let chain = [&convert, &resample, &filter, &sink];
    pipeline
        .add_many([&decode, &convert, &resample, &filter, &sink])
        .map_err(|e| e.to_string())?;
    gst::Element::link_many(chain).map_err(|e| e.to_string())?;
    let samples: Samples = Arc::default();
    collect(
        &filter,
        samples.clone(),
        max_seconds as usize * rate as usize,
    )?;
    let audio_in = convert
        .static_pad("sink")
        .ok_or("audioconvert without sink pad")?;
    let weak = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let is_audio = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("audio/")))
            .unwrap_or(false);
        if is_audio && !audio_in.is_linked() {
            let _ = pad.link(&audio_in);
            return;
        }
        // Anything else (video, a second audio stream) into a sink of its own, so the
        // demuxer does not stop on an unlinked stream.
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let Ok(sink) = gst::ElementFactory::make("fakesink").build() else {
            return;
        };
        sink.set_property("sync", false);
        if pipeline.add(&sink).is_ok() {
            let _ = sink.sync_state_with_parent();
            if let Some(sink_pad) = sink.static_pad("sink") {
                let _ = pad.link(&sink_pad);
            }
        }
    });
    Ok((pipeline, samples))
}

/// Copy the PCM leaving `filter` into `samples`, up to `limit` samples.
fn collect(filter: &gst::Element, samples: Samples, limit: usize) -> Result<(), String> {
    let pad = filter
        .static_pad("src")
        .ok_or("capsfilter without src pad")?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(map) = buffer.map_readable() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut out = samples.lock().unwrap_or_else(PoisonError::into_inner);
        let room = limit.saturating_sub(out.len());
        out.extend(
            map.chunks_exact(4)
                .take(room)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Play to the end (or the first error).
fn run(pipeline: &gst::Pipeline) -> Result<(), String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the decoding pipeline refused to start".to_owned())?;
    let bus = pipeline.bus().ok_or("pipeline without bus")?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => {
                return Err(format!(
                    "{} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}
