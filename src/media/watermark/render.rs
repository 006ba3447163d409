//! Drawing a mark's rows once into a [`Stamp`]: Pango, through GStreamer's `textoverlay`,
//! draws them on a black frame of the stream's size, once for the fill and once for the
//! outline, and the two coverages make the stamp.
//!
//! Owns: the one-frame drawing pipeline and reading coverage back from it. Must not touch:
//! the layout (it draws the rows it is given), the live stream.
//!
//! Why textoverlay: it is the text renderer the product already ships (pango plugin) and it
//! reads fontconfig's "Sans Bold" exactly as before; it is only no longer in the live chain.
//! A frame drawn with an opaque white fill (no outline) gives the fill's coverage as luma
//! from 16 (none) to 235 (whole); one drawn with an opaque white outline (no fill) gives the
//! outline's. Drawing each apart keeps the colours and opacities out of the coverage, so the
//! stamp applies them exactly (the fill over the outline, as Pango draws them).

use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;

use super::stamp::{Coverage, Opacity, Stamp};
use super::Row;
use crate::media::pipeline::make;
use crate::media::MediaError;

/// The family the product ships; fontconfig picks the face (DejaVu Sans on Debian).
const FONT: &str = "Sans Bold";
/// Luma of black and of white in a limited-range frame.
const BLACK_Y: u32 = 16;
const WHITE_Y: u32 = 235;
/// A one-frame pipeline takes milliseconds; this only bounds a broken one.
const LIMIT: Duration = Duration::from_secs(20);

/// Which part of the text one drawing shows.
#[derive(Clone, Copy, Debug)]
enum Part {
    Fill,
    Outline,
}

/// The stamp of `rows` on a `width` × `height` frame at `opacity`; empty without rows.
pub(super) fn render(
    rows: &[Row],
    width: u32,
    height: u32,
    opacity: Opacity,
) -> Result<Stamp, MediaError> {
    if rows.is_empty() {
        return Ok(Stamp::default());
    }
    let fill = coverage(rows, width, height, Part::Fill)?;
    let outline = coverage(rows, width, height, Part::Outline)?;
    let coverage = Coverage {
        width: width as usize,
        height: height as usize,
        fill: &fill,
        outline: &outline,
    };
    Ok(Stamp::new(&coverage, opacity))
}

/// Draws `part` of `rows` on black and returns its coverage, 0–255 a pixel, line by line.
fn coverage(rows: &[Row], width: u32, height: u32, part: Part) -> Result<Vec<u8>, MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::Pipeline(format!("watermark drawing: {e}"));
    let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height)
        .build()
        .map_err(|e| err(&e))?;
    let src = make("videotestsrc")?;
    src.set_property("num-buffers", 1i32);
    src.set_property_from_str("pattern", "black");
    let filter = make("capsfilter")?;
    filter.set_property("caps", caps.to_caps().map_err(|e| err(&e))?);
    let sink = make("fakesink")?;
    let mut chain = vec![src, filter];
    for row in rows {
        chain.push(overlay(row, part)?);
    }
    chain.push(sink.clone());
    let pipeline = gst::Pipeline::new();
    pipeline.add_many(&chain).map_err(|e| err(&e))?;
    gst::Element::link_many(&chain).map_err(|e| err(&e))?;
    let drawn = std::sync::Arc::new(std::sync::Mutex::new(None::<gst::Buffer>));
    let keep = std::sync::Arc::clone(&drawn);
    let pad = sink
        .static_pad("sink")
        .ok_or_else(|| MediaError::Pipeline("fakesink without sink pad".into()))?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let (Some(buffer), Ok(mut slot)) = (info.buffer(), keep.lock()) {
            *slot = Some(buffer.clone());
        }
        gst::PadProbeReturn::Ok
    });
    let played = play(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    played?;
    let buffer = drawn
        .lock()
        .ok()
        .and_then(|mut b| b.take())
        .ok_or_else(|| MediaError::Pipeline("watermark drawing gave no frame".into()))?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &caps)
        .map_err(|e| err(&e))?;
    let luma = frame.plane_data(0).map_err(|e| err(&e))?;
    let stride = frame.plane_stride()[0] as usize;
    let (w, h) = (width as usize, height as usize);
    let mut out = Vec::with_capacity(w * h);
    for line in luma.chunks(stride).take(h) {
        out.extend(line.iter().take(w).map(|&y| luma_to_coverage(y)));
    }
    Ok(out)
}

/// One row as a textoverlay drawing `part` of its text, opaque white.
fn overlay(row: &Row, part: Part) -> Result<gst::Element, MediaError> {
    let e = make("textoverlay")?;
    e.set_property("auto-resize", false);
    e.set_property_from_str("wrap-mode", "none");
    e.set_property("draw-shadow", false);
    e.set_property_from_str("valignment", "position");
    e.set_property("xpad", 0i32);
    e.set_property("font-desc", format!("{FONT} {}px", row.font_px));
    e.set_property_from_str("halignment", if row.centred { "center" } else { "left" });
    e.set_property("ypos", row.ypos);
    let (fill, outline) = match part {
        Part::Fill => (0xFFFF_FFFFu32, 0u32),
        Part::Outline => (0u32, 0xFFFF_FFFFu32),
    };
    e.set_property("color", fill);
    e.set_property("outline-color", outline);
    e.set_property("text", row.markup.as_str());
    Ok(e)
}

/// How much white covers a pixel drawn on black, from its limited-range luma.
fn luma_to_coverage(y: u8) -> u8 {
    let above = u32::from(y).saturating_sub(BLACK_Y);
    let span = WHITE_Y - BLACK_Y;
    ((above * 255 + span / 2) / span).min(255) as u8
}

/// Runs the one-frame pipeline to its end.
fn play(pipeline: &gst::Pipeline) -> Result<(), MediaError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Pipeline("pipeline has no bus".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| MediaError::Pipeline("the watermark drawing refused to start".into()))?;
    let deadline = Instant::now() + LIMIT;
    let types = [gst::MessageType::Eos, gst::MessageType::Error];
    while Instant::now() < deadline {
        let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(100), &types) else {
            continue;
        };
        return match msg.view() {
            gst::MessageView::Error(e) => Err(MediaError::Pipeline(format!(
                "watermark drawing: {} ({})",
                e.error(),
                e.debug().unwrap_or_default()
            ))),
            _ => Ok(()),
        };
    }
    Err(MediaError::Timeout {
        seconds: LIMIT.as_secs(),
        doing: "drawing the watermark",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_is_no_coverage_and_white_is_whole() {
        assert_eq!(luma_to_coverage(16), 0);
        assert_eq!(luma_to_coverage(0), 0);
        assert_eq!(luma_to_coverage(235), 255);
        assert_eq!(luma_to_coverage(255), 255);
        assert_eq!(luma_to_coverage(126), 128);
    }
}
