//! The CPU cost of the video watermark (W1, W2): the device's 720p30 encode chain on a
//! non-live test source for N frames, without the watermark element (`none`, the reference),
//! with it but no mark (`off`), with one row and with the multi-row tiling, each run
//! several times alternately; prints the CPU time of each (the least of its
//! runs), the watermark's extra CPU per frame and what that is in % of one core at 30 frames/s.
//! The same are measured without the encoder too, where the mark's own cost stands out from
//! the encoder's noise; and how many pixels each mark burns into a frame.
//!
//!   cargo bench --bench watermark -- [FRAMES [WIDTH HEIGHT [SNAPSHOT_DIR]]]
//!
//! With SNAPSHOT_DIR, also writes one PNG per mode at 640x360, 1280x720 and 1920x1080 there,
//! to look at.

use std::path::PathBuf;
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use roomrec::media::{MediaSettings, VideoMark, Watermark};

mod common;
use common::{element, i420_caps, play_to_end};

const TEXT: &str = "Acme · Room 101";
const RUNS: usize = 3;

/// `None`: no watermark element at all (the chain before issue 11), the reference.
fn modes() -> [(&'static str, Option<VideoMark>); 4] {
    [
        ("none", None),
        ("off", Some(VideoMark::Off)),
        ("single", Some(VideoMark::Single(TEXT.into()))),
        ("multi", Some(VideoMark::Multi(TEXT.into()))),
    ]
}

/// Runs test source → I420 → mark → [x264 as the device sets it] → sink to the end; returns
/// the CPU time it took.
fn run(
    mark: Option<&VideoMark>,
    frames: u32,
    (w, h): (u32, u32),
    encode: bool,
    png: Option<PathBuf>,
) -> anyhow::Result<Duration> {
    let settings = MediaSettings::default();
    let pipeline = gst::Pipeline::new();
    let src = element("videotestsrc")?;
    src.set_property("num-buffers", frames as i32);
    src.set_property("is-live", false);
    src.set_property_from_str("pattern", "ball");
    let caps = i420_caps(w, h);
    let filter = element("capsfilter")?;
    filter.set_property("caps", &caps);
    let mut chain = vec![src, filter];
    if let Some(mark) = mark {
        chain.push(Watermark::new(mark, w, h)?.element().clone());
    }
    if let Some(path) = &png {
        chain.extend([element("videoconvert")?, element("pngenc")?]);
        let sink = element("filesink")?;
        sink.set_property("location", path.to_string_lossy().as_ref());
        chain.push(sink);
    } else {
        if encode {
            let enc = element("x264enc")?;
            enc.set_property_from_str("tune", "zerolatency");
            enc.set_property_from_str("speed-preset", "veryfast");
            enc.set_property("key-int-max", (settings.framerate / 2).max(1));
            enc.set_property("bitrate", settings.video_bitrate_kbps);
            chain.extend([element("queue")?, enc, element("h264parse")?]);
        }
        let sink = element("fakesink")?;
        sink.set_property("sync", false);
        chain.push(sink);
    }
    play_to_end(&pipeline, &chain, |_| {})
}

fn main() -> anyhow::Result<()> {
    gst::init()?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let num = |i: usize, d: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let frames = num(0, 900);
    let size = (num(1, 1280), num(2, 720));
    if let Some(dir) = args.get(3) {
        std::fs::create_dir_all(dir)?;
        for (name, mark) in modes() {
            for (w, h) in [(640, 360), (1280, 720), (1920, 1080)] {
                let path = PathBuf::from(dir).join(format!("{name}-{h}p.png"));
                run(mark.as_ref(), 1, (w, h), false, Some(path))?;
            }
        }
        println!("snapshots in {dir}");
    }
    let fps = f64::from(MediaSettings::default().framerate);
    println!(
        "watermark CPU, {}x{} test source, {frames} frames, least of {RUNS} runs",
        size.0, size.1
    );
    for (name, mark) in modes() {
        if let Some(mark) = mark {
            let marked = Watermark::new(&mark, size.0, size.1)?.marked_pixels();
            let share = 100.0 * marked as f64 / f64::from(size.0 * size.1);
            println!("  {name:6} burns {marked} pixels a frame ({share:.1} % of the frame)");
        }
    }
    for encode in [false, true] {
        let mut best = [Duration::MAX; 4];
        for _ in 0..RUNS {
            for (i, (_, mark)) in modes().iter().enumerate() {
                best[i] = best[i].min(run(mark.as_ref(), frames, size, encode, None)?);
            }
        }
        let what = if encode {
            "with x264 (the device's chain)"
        } else {
            "overlay only (no encoder)"
        };
        println!("  {what}:");
        let none = best[0].as_secs_f64();
        for (i, (name, _)) in modes().iter().enumerate() {
            let t = best[i].as_secs_f64();
            let extra_ms = (t - none) * 1000.0 / f64::from(frames);
            println!(
                "    {name:6} {t:7.3} CPU s = {:.3}x none; {extra_ms:+.3} ms/frame = {:+.2} % of one core at {fps} fps",
                t / none,
                extra_ms * fps / 10.0,
            );
        }
    }
    Ok(())
}
