//! The confidence picture (issue 14): a small JPEG of exactly what is being recorded, every
//! [`PREVIEW_INTERVAL`] while capturing and at once on an admin's `preview`, for the admin
//! console (`<p>/preview`); and while nothing captures, on `preview`, one picture of the
//! camera ([`snapshot`]).
//!
//! Owns: taking a frame of the recorded video stream after its watermark (the composite
//! with picture-in-picture: what the encoder gets), scaling and encoding it in a pipeline of
//! its own, and posting the JPEG on the capture's bus; the snapshot pipeline. Must not touch:
//! the recording's chain (it only takes a reference to a frame), MQTT.
//!
//! Why a pipeline of its own and not a tee in the capture: whatever happens to the preview
//! (a missing JPEG encoder, an error, a stall) stays in it. The capture's probe hands it a
//! frame by reference every few seconds through an `appsrc` that drops rather than waits, so
//! the recording never waits for the preview nor fails with it. Scaling and encoding one
//! frame in 5 s costs almost nothing; `benches/preview.rs` measures it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;

use super::pipeline::make;
use super::MediaError;

/// How often a picture is taken while capturing.
pub const PREVIEW_INTERVAL: Duration = Duration::from_secs(5);
/// The largest picture published (issue 14: at most 30 kB); a larger one is dropped.
pub const PREVIEW_MAX_BYTES: usize = 30 * 1024;
/// The picture's width; the height keeps the stream's aspect ratio.
pub const PREVIEW_WIDTH: u32 = 320;
/// JPEG quality: 320×180 of a busy picture is 10–20 kB at this setting.
const JPEG_QUALITY: i32 = 70;
/// The element message that carries a picture on the capture's bus.
const MESSAGE: &str = "roomrec-preview";

/// The preview of one capture; its pipeline stops when this is dropped.
pub struct Preview {
    encoder: gst::Pipeline,
    /// The running time from which the next frame is taken.
    next_due: Arc<Mutex<u64>>,
}

impl Drop for Preview {
    fn drop(&mut self) {
        let _ = self.encoder.set_state(gst::State::Null);
    }
}

impl Preview {
    /// Takes a frame every [`PREVIEW_INTERVAL`] from what leaves `after` (raw I420 of
    /// `width` × `height`) and posts its JPEG on `capture`'s bus.
    pub fn attach(
        after: &gst::Element,
        capture: &gst::Pipeline,
        width: u32,
        height: u32,
    ) -> Result<Preview, MediaError> {
        let (encoder, src) = encoder(capture, width, height)?;
        let pad = after
            .static_pad("src")
            .ok_or_else(|| MediaError::Pipeline("the watermark has no src pad".into()))?;
        let next_due = Arc::new(Mutex::new(0u64));
        let due = next_due.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(running) = super::buffer_running_time_ns(pad, info) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut due = due.lock().unwrap_or_else(PoisonError::into_inner);
            if running >= *due {
                *due = running + PREVIEW_INTERVAL.as_nanos() as u64;
                if let Some(frame) = info.buffer() {
                    // A reference, not a copy; appsrc drops it if the preview is behind.
                    let _ =
                        src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&frame.to_owned()]);
                }
            }
            gst::PadProbeReturn::Ok
        });
        encoder
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Pipeline("the preview encoder refused to start".into()))?;
        Ok(Preview { encoder, next_due })
    }

    /// Take the next frame that comes (an admin's `preview`), then every interval again.
    pub fn take_now(&self) {
        *self.next_due.lock().unwrap_or_else(PoisonError::into_inner) = 0;
    }
}

/// appsrc → videoscale → I420 320×h → jpegenc → fakesink, whose probe posts each JPEG on
/// `capture`'s bus.
fn encoder(
    capture: &gst::Pipeline,
    width: u32,
    height: u32,
) -> Result<(gst::Pipeline, gst::Element), MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("preview: {e}"));
    let src = make("appsrc")?;
    let raw = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(0, 1))
        .build();
    src.set_property("caps", &raw);
    src.set_property_from_str("format", "time");
    src.set_property("max-buffers", 1u64);
    src.set_property_from_str("leaky-type", "downstream");
    let scale = make("videoscale")?;
    let small = make("capsfilter")?;
    small.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("width", PREVIEW_WIDTH as i32)
            .field("height", preview_height(width, height) as i32)
            .build(),
    );
    let jpeg = make("jpegenc")?;
    jpeg.set_property("quality", JPEG_QUALITY);
    let sink = make("fakesink")?;
    sink.set_property("sync", false);
    let pipeline = gst::Pipeline::with_name("preview");
    let chain = [&src, &scale, &small, &jpeg, &sink];
    pipeline.add_many(chain).map_err(|e| err(&e))?;
    gst::Element::link_many(chain).map_err(|e| err(&e))?;
    post_pictures(&sink, capture)?;
    // Its own bus: an error here is logged and stays here.
    if let Some(bus) = pipeline.bus() {
        bus.set_sync_handler(|_, msg| {
            if let gst::MessageView::Error(e) = msg.view() {
                tracing::warn!(error = %e.error(), "preview encoder failed; recording goes on without a preview");
            }
            gst::BusSyncReply::Drop
        });
    }
    Ok((pipeline, src))
}

/// The preview's height for a `width` × `height` stream: the same aspect, even.
fn preview_height(width: u32, height: u32) -> u32 {
    let h = u64::from(PREVIEW_WIDTH) * u64::from(height) / u64::from(width.max(1));
    ((h as u32) & !1).max(2)
}

/// Each JPEG reaching `sink` goes to `capture`'s bus as a [`MESSAGE`], unless over the limit.
fn post_pictures(sink: &gst::Element, capture: &gst::Pipeline) -> Result<(), MediaError> {
    let pad = sink
        .static_pad("sink")
        .ok_or_else(|| MediaError::Pipeline("fakesink without sink pad".into()))?;
    let capture = capture.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let (Some(buffer), Some(capture)) = (info.buffer(), capture.upgrade()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(map) = buffer.map_readable() else {
            return gst::PadProbeReturn::Ok;
        };
        if map.len() > PREVIEW_MAX_BYTES {
            tracing::warn!(
                bytes = map.len(),
                limit = PREVIEW_MAX_BYTES,
                "preview picture over the limit; not published"
            );
            return gst::PadProbeReturn::Ok;
        }
        let picture = gst::Structure::builder(MESSAGE)
            .field("jpeg", gst::glib::Bytes::from(map.as_slice()))
            .build();
        let _ = capture.post_message(
            gst::message::Element::builder(picture)
                .src(&capture)
                .build(),
        );
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Frames let through before the snapshot's picture: a camera just opened adjusts its
/// exposure over its first frames.
const SNAPSHOT_SKIP_FRAMES: u64 = 10;
/// How long a snapshot may take before it is given up (a camera that sends nothing).
const SNAPSHOT_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(5);

/// One picture of the camera while nothing captures (an admin's `preview`), as a JPEG of
/// the preview's size. Blocking, up to [`SNAPSHOT_TIMEOUT`]: the camera is open only for it,
/// and closed when it returns, so a capture started after it finds the camera free.
pub fn snapshot(settings: &super::MediaSettings) -> Result<Vec<u8>, MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("snapshot: {e}"));
    let mut chain = super::sources::camera_snapshot_chain(settings)?;
    for factory in ["videoconvert", "videoscale"] {
        chain.push(make(factory)?);
    }
    let small = make("capsfilter")?;
    small.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", PREVIEW_WIDTH as i32)
            .field(
                "height",
                preview_height(settings.width, settings.height) as i32,
            )
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    chain.push(small);
    let jpeg = make("jpegenc")?;
    jpeg.set_property("quality", JPEG_QUALITY);
    chain.push(jpeg);
    let sink = make("appsink")?;
    sink.set_property("sync", false);
    sink.set_property("max-buffers", 1u32);
    chain.push(sink.clone());
    let pipeline = gst::Pipeline::with_name("snapshot");
    pipeline.add_many(&chain).map_err(|e| err(&e))?;
    gst::Element::link_many(&chain).map_err(|e| err(&e))?;
    let result = run_snapshot(&pipeline, &sink);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Play `pipeline` until `sink` has the JPEG of the frame after [`SNAPSHOT_SKIP_FRAMES`].
fn run_snapshot(pipeline: &gst::Pipeline, sink: &gst::Element) -> Result<Vec<u8>, MediaError> {
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        MediaError::Pipeline("snapshot: the camera pipeline refused to start".into())
    })?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Pipeline("snapshot: no bus".into()))?;
    let deadline = std::time::Instant::now() + Duration::from(SNAPSHOT_TIMEOUT);
    let mut frames = 0u64;
    while std::time::Instant::now() < deadline {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
            return Err(MediaError::Pipeline(match msg.view() {
                gst::MessageView::Error(e) => format!("snapshot: {}", e.error()),
                _ => "snapshot: the camera ended before giving a picture".into(),
            }));
        }
        let sample = sink.emit_by_name::<Option<gst::Sample>>(
            "try-pull-sample",
            &[&gst::ClockTime::from_mseconds(100)],
        );
        let Some(sample) = sample else {
            continue;
        };
        frames += 1;
        if frames <= SNAPSHOT_SKIP_FRAMES {
            continue;
        }
        let buffer = sample
            .buffer()
            .ok_or_else(|| MediaError::Pipeline("snapshot: a sample without a buffer".into()))?;
        let map = buffer
            .map_readable()
            .map_err(|e| MediaError::Pipeline(format!("snapshot: {e}")))?;
        if map.len() > PREVIEW_MAX_BYTES {
            return Err(MediaError::Pipeline(format!(
                "snapshot: the picture is {} bytes, over the {PREVIEW_MAX_BYTES} limit",
                map.len()
            )));
        }
        return Ok(map.to_vec());
    }
    Err(MediaError::Timeout {
        seconds: SNAPSHOT_TIMEOUT.seconds(),
        doing: "taking a picture of the camera",
    })
}

/// The JPEG in an element message of the preview; `None` for any other message.
pub(crate) fn read_picture(s: &gst::StructureRef) -> Option<Vec<u8>> {
    if s.name() != MESSAGE {
        return None;
    }
    let jpeg = s.get::<gst::glib::Bytes>("jpeg").ok()?;
    Some(jpeg.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_keeps_the_aspect_with_an_even_height() {
        assert_eq!(preview_height(1280, 720), 180);
        assert_eq!(preview_height(1920, 1080), 180);
        assert_eq!(preview_height(640, 480), 240);
        assert_eq!(preview_height(1366, 768), 178);
    }
}
