//! What the GStreamer CPU benches share: this process's CPU time, elements that name what
//! is missing, the device's raw video caps, and playing a chain to its end. (A folder, so
//! Cargo does not take it for a bench of its own.)
// Each bench uses a part of this.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;

/// CPU time of this process (user + system).
pub fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

pub fn element(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("GStreamer element {factory} is missing"))
}

/// Links `chain` into `pipeline`, plays it to its end and returns the CPU time that took;
/// `on_element` sees every element message on the way.
pub fn play_to_end(
    pipeline: &gst::Pipeline,
    chain: &[gst::Element],
    mut on_element: impl FnMut(&gst::StructureRef),
) -> anyhow::Result<Duration> {
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    let before = cpu();
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("no bus")?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => anyhow::bail!("{}", e.error()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    on_element(s);
                }
            }
            _ => {}
        }
    }
    let spent = cpu() - before;
    pipeline.set_state(gst::State::Null)?;
    Ok(spent)
}

/// Raw I420 video of `width` × `height` at the device's frame rate (`MediaSettings`).
pub fn i420_caps(width: u32, height: u32) -> gst::Caps {
    let fps = roomrec::media::MediaSettings::default().framerate;
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(fps as i32, 1))
        .build()
}

/// The first number among the bench's arguments, else `default` (the frame count).
pub fn count_arg(default: u32) -> u32 {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// `run(false)` and `run(true)` in turn, `runs` times each: the least time of each (without,
/// with) and what the last `run(true)` reported besides.
pub fn least_without_and_with<T>(
    runs: usize,
    mut run: impl FnMut(bool) -> anyhow::Result<(Duration, T)>,
) -> anyhow::Result<(Duration, Duration, Option<T>)> {
    let mut best = [Duration::MAX; 2];
    let mut reported = None;
    for _ in 0..runs {
        for (i, with) in [false, true].into_iter().enumerate() {
            let (t, r) = run(with)?;
            best[i] = best[i].min(t);
            if with {
                reported = Some(r);
            }
        }
    }
    Ok((best[0], best[1], reported))
}
