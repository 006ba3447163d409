//! The CPU cost of the picture check (issue 14: `picture_black`, `picture_frozen`): the
//! device's raw 720p30 video on a non-live test source (moving bars) for N frames, without
//! and with the check attached (a 128 × 72 grid of luma samples once a second of running
//! time, judged against the last), alternately, the least CPU time of three runs each; then
//! the cost of one sample alone, timed over many frames, where it stands out of the noise.
//!
//!   cargo bench --bench picture_check -- [FRAMES]    (default 1800: a minute, 60 samples)

mod common;

use std::time::{Duration, Instant};

use common::{element, i420_caps, play_to_end};
use gst::prelude::*;
use gstreamer as gst;
use roomrec::media::{MediaSettings, PictureCheck, PictureGrid};

const RUNS: usize = 3;
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;

/// Plays test source → I420 720p30 → identity → fakesink, with the check on the identity's
/// output or not; returns the CPU time and the number of looks posted.
fn run(frames: u32, with_check: bool) -> anyhow::Result<(Duration, usize)> {
    let pipeline = gst::Pipeline::new();
    let src = element("videotestsrc")?;
    src.set_property("num-buffers", frames as i32);
    src.set_property("is-live", false);
    src.set_property_from_str("pattern", "smpte75");
    src.set_property("horizontal-speed", 4i32);
    let filter = element("capsfilter")?;
    filter.set_property("caps", i420_caps(WIDTH, HEIGHT));
    let tap = element("identity")?;
    let sink = element("fakesink")?;
    sink.set_property("sync", false);
    if with_check {
        let pad = tap.static_pad("src").expect("identity has a src pad");
        PictureCheck::attach(&pad, &pipeline, WIDTH, HEIGHT)?;
    }
    let mut looks = 0;
    let spent = play_to_end(&pipeline, &[src, filter, tap, sink], |s| {
        looks += usize::from(s.name() == "roomrec-picture");
    })?;
    Ok((spent, looks))
}

/// The wall time of one sample of a 720p luma plane, over `n` samples.
fn one_sample(n: u32) -> Duration {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let plane: Vec<u8> = (0..w * h).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    let mut black = 0;
    for _ in 0..n {
        let grid = PictureGrid::sample(std::hint::black_box(&plane), w, w, h);
        black += usize::from(grid.is_black());
    }
    std::hint::black_box(black);
    started.elapsed() / n
}

fn main() -> anyhow::Result<()> {
    gst::init()?;
    let frames = common::count_arg(1800);
    let fps = f64::from(MediaSettings::default().framerate);
    let (none, with, looks) = common::least_without_and_with(RUNS, |with| run(frames, with))?;
    let looks = looks.unwrap_or(0);
    let (none, with) = (none.as_secs_f64(), with.as_secs_f64());
    let extra_ms = (with - none) * 1000.0 / f64::from(frames);
    println!("picture check CPU, {WIDTH}x{HEIGHT}@{fps} test source, {frames} frames, least of {RUNS} runs");
    println!("  without   {none:.3} CPU s");
    println!(
        "  with      {with:.3} CPU s = {:.3}x; {extra_ms:+.4} ms/frame = {:+.3} % of one core at {fps} fps; {looks} looks",
        with / none,
        extra_ms * fps / 10.0
    );
    let sample = one_sample(20_000);
    println!(
        "  one sample (128x72 grid) {:.1} us: {:.4} % of one core at one a second",
        sample.as_secs_f64() * 1e6,
        sample.as_secs_f64() * 100.0
    );
    Ok(())
}
