//! The CPU cost of the audio level meter (`<p>/levels`): the device's audio chain (48 kHz
//! stereo S16, as the microphone's inter channel carries it, → audioconvert → audioresample →
//! volume → [level] → the AAC encoder) on a non-live test tone for N seconds of sound, without
//! `level` (the reference) and with it (interval 0.5 s, as the device sets it), run
//! alternately several times; prints the CPU time of each (the least of its runs), the
//! meter's extra CPU per second of sound and what that is in % of one core. The same pair is
//! measured without the encoder too, where the meter's own cost stands out of its noise.
//!
//!   cargo bench --bench levels -- [SECONDS]

use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;

mod common;
use common::{element, play_to_end};

const RUNS: usize = 5;
const RATE: i32 = 48_000;
/// Samples per buffer: 10 ms, about what ALSA delivers.
const BUFFER_SAMPLES: i32 = 480;

/// Runs the chain over `seconds` of sound to the end; returns the CPU time it took and the
/// number of level messages posted.
fn run(level: bool, encode: bool, seconds: u32) -> anyhow::Result<(Duration, usize)> {
    let pipeline = gst::Pipeline::new();
    let src = element("audiotestsrc")?;
    src.set_property("is-live", false);
    src.set_property("samplesperbuffer", BUFFER_SAMPLES);
    src.set_property("num-buffers", seconds as i32 * RATE / BUFFER_SAMPLES);
    src.set_property("volume", roomrec::media::TEST_TONE_VOLUME);
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", RATE)
        .field("channels", 2i32)
        .build();
    let filter = element("capsfilter")?;
    filter.set_property("caps", &caps);
    let mut chain = vec![
        src,
        filter,
        element("audioconvert")?,
        element("audioresample")?,
        element("volume")?,
    ];
    if level {
        let meter = element("level")?;
        meter.set_property("interval", roomrec::media::LEVEL_INTERVAL.as_nanos() as u64);
        meter.set_property("post-messages", true);
        chain.push(meter);
    }
    if encode {
        chain.extend([element("queue")?, element("voaacenc")?]);
    }
    let sink = element("fakesink")?;
    sink.set_property("sync", false);
    chain.push(sink);
    let mut readings = 0;
    let spent = play_to_end(&pipeline, &chain, |s| {
        readings += usize::from(s.name() == "level");
    })?;
    Ok((spent, readings))
}

fn main() -> anyhow::Result<()> {
    gst::init()?;
    let seconds: u32 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(600);
    println!("level meter CPU, {seconds} s of 48 kHz stereo S16 test tone, least of {RUNS} runs");
    for encode in [false, true] {
        let mut best = [Duration::MAX; 2];
        let mut readings = 0;
        for _ in 0..RUNS {
            for (i, level) in [false, true].into_iter().enumerate() {
                let (spent, n) = run(level, encode, seconds)?;
                best[i] = best[i].min(spent);
                if level {
                    readings = n;
                }
            }
        }
        let [without, with] = best.map(|d| d.as_secs_f64());
        let extra = with - without;
        println!(
            "  {}: without level {without:.3} s CPU, with level {with:.3} s ({:.3}x, {readings} \
             readings); the meter: {:.1} µs CPU per second of sound = {:.4} % of one core",
            if encode {
                "convert, resample, volume, AAC"
            } else {
                "convert, resample, volume"
            },
            with / without,
            extra / f64::from(seconds) * 1e6,
            extra / f64::from(seconds) * 100.0,
        );
    }
    Ok(())
}
