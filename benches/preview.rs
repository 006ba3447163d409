//! The CPU cost of the confidence picture (issue 14, goal ≤ 2 % of one core at 720p30): the
//! device's raw 720p30 video on a non-live test source for N frames (N / 30 seconds of
//! running time, so a picture every 5 s of it), without and with the preview attached (a
//! frame by reference every 5 s, scaled to 320 px and JPEG-encoded in its own pipeline),
//! alternately, the least CPU time of three runs each; prints the pictures' sizes too.
//!
//!   cargo bench --bench preview -- [FRAMES]        (default 1800: a minute, 12 pictures)

mod common;

use std::time::Duration;

use common::{element, i420_caps, play_to_end};
use gst::prelude::*;
use gstreamer as gst;
use roomrec::media::{MediaSettings, Preview};

const RUNS: usize = 3;

/// Plays test source → I420 720p30 → identity → fakesink, with the preview on the identity
/// or not; returns the CPU time and the pictures' sizes.
fn run(frames: u32, with_preview: bool) -> anyhow::Result<(Duration, Vec<usize>)> {
    let (w, h) = (1280u32, 720u32);
    let pipeline = gst::Pipeline::new();
    let src = element("videotestsrc")?;
    src.set_property("num-buffers", frames as i32);
    src.set_property("is-live", false);
    src.set_property_from_str("pattern", "smpte75");
    let filter = element("capsfilter")?;
    filter.set_property("caps", i420_caps(w, h));
    let tap = element("identity")?;
    let sink = element("fakesink")?;
    sink.set_property("sync", false);
    let chain = [src, filter, tap.clone(), sink];
    // Attached before playing, as the capture does; kept until the run ends.
    let preview = if with_preview {
        Some(Preview::attach(&tap, &pipeline, w, h)?)
    } else {
        None
    };
    let mut sizes = Vec::new();
    let spent = play_to_end(&pipeline, &chain, |s| {
        if let Ok(jpeg) = s.get::<gst::glib::Bytes>("jpeg") {
            sizes.push(jpeg.len());
        }
    })?;
    drop(preview);
    Ok((spent, sizes))
}

fn main() -> anyhow::Result<()> {
    gst::init()?;
    let frames = common::count_arg(1800);
    let fps = f64::from(MediaSettings::default().framerate);
    let (none, with, sizes) = common::least_without_and_with(RUNS, |with| run(frames, with))?;
    let sizes = sizes.unwrap_or_default();
    let (none, with) = (none.as_secs_f64(), with.as_secs_f64());
    let extra_ms = (with - none) * 1000.0 / f64::from(frames);
    println!("preview CPU, 1280x720@30 test source, {frames} frames, least of {RUNS} runs");
    println!("  without   {none:.3} CPU s");
    println!(
        "  with      {with:.3} CPU s = {:.3}x; {extra_ms:+.3} ms/frame = {:+.2} % of one core at {fps} fps (goal <= 2 %)",
        with / none,
        extra_ms * fps / 10.0
    );
    let max = sizes.iter().max().copied().unwrap_or(0);
    println!(
        "  {} pictures, largest {max} bytes (limit {})",
        sizes.len(),
        roomrec::media::PREVIEW_MAX_BYTES
    );
    Ok(())
}
