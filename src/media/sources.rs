//! Where pictures and sound enter the encode pipeline: test sources, or devices behind
//! inter channels.
//!
//! Owns: the input elements of the encode pipeline per [`Source`], and for real devices the
//! small per-device pipelines (`v4l2src`/`alsasrc` → convert → `intervideosink`/
//! `interaudiosink`). Must not touch: encoding, segments, the actor's bookkeeping.
//!
//! Why devices run in pipelines of their own: a camera that is unplugged makes `v4l2src` fail,
//! and an error inside the encode pipeline would stop the recording. Across an inter channel
//! the encode pipeline never sees the device: `intervideosrc` repeats the last frame and after
//! a second sends black ("no signal"), `interaudiosrc` sends silence, timestamps run on, and
//! when the device is back a fresh device pipeline feeds the same channel: capture resumes
//! inside the same segments and recording. The test source stays in the encode pipeline
//! itself (nothing to lose; one pipeline is what the benchmark compares with gst-launch).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gst::prelude::*;
use gstreamer as gst;

use super::devices::CameraChoice;
use super::pipeline::make;
use super::{MediaError, MediaSettings, Source, TestPicture};

/// What the inter channels carry; both ends fix it so neither renegotiates.
fn audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", 48_000i32)
        .field("channels", 2i32)
        .build()
}

/// I420 at the configured size and rate: what the encoders (and the compositor) take.
pub(crate) fn video_caps(settings: &MediaSettings) -> gst::Caps {
    // I420: x264enc fed anything else may pick High 4:4:4, which few players decode.
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", settings.width as i32)
        .field("height", settings.height as i32)
        .field(
            "framerate",
            gst::Fraction::new(settings.framerate as i32, 1),
        )
        .build()
}

pub(crate) fn capsfilter(caps: &gst::Caps) -> Result<gst::Element, MediaError> {
    let filter = make("capsfilter")?;
    filter.set_property("caps", caps);
    Ok(filter)
}

/// The inter channel names of one capture; unique in the process (channels are global).
#[derive(Clone, Debug)]
pub(crate) struct Channels {
    pub camera: String,
    pub content: String,
    pub microphone: String,
    /// [`TestPicture::Sync`]: the running time (ns) of the test camera's first frame, from
    /// which flashes and clicks are counted; [`NO_EPOCH`] until that frame.
    pub sync_epoch: Arc<AtomicU64>,
}

/// No frame seen yet.
const NO_EPOCH: u64 = u64::MAX;

impl Channels {
    pub fn new() -> Channels {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Channels {
            camera: format!("roomrec-{n}-camera"),
            content: format!("roomrec-{n}-content"),
            microphone: format!("roomrec-{n}-microphone"),
            sync_epoch: Arc::new(AtomicU64::new(NO_EPOCH)),
        }
    }
}

/// The camera picture inside the encode pipeline (raw, any format), first to last.
pub(crate) fn camera_input(
    settings: &MediaSettings,
    ch: &Channels,
) -> Result<Vec<gst::Element>, MediaError> {
    match settings.source {
        Source::Test => {
            let src = make("videotestsrc")?;
            src.set_property("is-live", true);
            // A moving picture, so the encoder does real work and frames differ.
            match settings.test_picture {
                TestPicture::Ball => {
                    src.set_property_from_str("pattern", "ball");
                    // Named, so the fault triggers find it (`media::fault`).
                    src.set_property("name", TEST_CAMERA);
                }
                TestPicture::Bars => {
                    src.set_property_from_str("pattern", "smpte75");
                    src.set_property("horizontal-speed", 4i32);
                }
                TestPicture::Sync => return sync_picture(src, settings, ch),
            }
            Ok(vec![src])
        }
        Source::V4l2 => inter_video(&ch.camera),
    }
}

/// The shared content inside the encode pipeline, when a content source is configured.
pub(crate) fn content_input(
    settings: &MediaSettings,
    ch: &Channels,
) -> Result<Option<Vec<gst::Element>>, MediaError> {
    if settings.content.is_none() {
        return Ok(None);
    }
    match settings.source {
        Source::Test => {
            let src = make("videotestsrc")?;
            src.set_property("is-live", true);
            // One flat colour, unlike the camera's ball on black: tests tell them apart.
            src.set_property_from_str("pattern", "solid-color");
            src.set_property("foreground-color", CONTENT_TEST_ARGB);
            Ok(Some(vec![src]))
        }
        Source::V4l2 => inter_video(&ch.content).map(Some),
    }
}

/// The name of the test camera's `videotestsrc` (with the daemon's [`TestPicture::Ball`]).
pub(crate) const TEST_CAMERA: &str = "test-camera";

/// The name of the test microphone's `audiotestsrc` (its tone, not the sync clicks).
pub(crate) const TEST_MICROPHONE: &str = "test-microphone";

/// The test microphone's sine amplitude (of full scale; audiotestsrc's default, which the
/// audio watermark's tests also assume): peak 20·log10(0.8) = -1.9 dBFS, RMS 3 dB lower.
pub const TEST_TONE_VOLUME: f64 = 0.8;

/// The test content's colour (ARGB): a mid blue.
pub const CONTENT_TEST_ARGB: u32 = 0xff20_40c0;

/// The microphone inside the encode pipeline (raw audio), first to last.
pub(crate) fn audio_input(
    settings: &MediaSettings,
    ch: &Channels,
) -> Result<Vec<gst::Element>, MediaError> {
    match settings.source {
        Source::Test if settings.test_picture == TestPicture::Sync => sync_sound(ch),
        Source::Test => {
            let src = make("audiotestsrc")?;
            src.set_property("is-live", true);
            src.set_property_from_str("wave", "sine");
            // Named, so the fault triggers find it (`media::fault`).
            src.set_property("name", TEST_MICROPHONE);
            src.set_property("volume", TEST_TONE_VOLUME);
            Ok(vec![src])
        }
        Source::V4l2 => {
            let src = make("interaudiosrc")?;
            src.set_property("channel", &ch.microphone);
            Ok(vec![src, capsfilter(&audio_caps())?])
        }
    }
}

/// The sync signal's period: one flash and one click a second.
const SYNC_PERIOD_NS: u64 = 1_000_000_000;
/// How long a click lasts, and its tone.
const CLICK_NS: u64 = 10_000_000;
const CLICK_HZ: f64 = 1_000.0;
const SYNC_RATE: i32 = 48_000;
/// Luma of a flash frame (video range white); the rest is black (16).
const FLASH_LUMA: u8 = 235;

/// [`TestPicture::Sync`] video: black, and one white frame a second, counted from the first
/// frame's timestamp (second 1 on: by then the sound side knows the epoch).
fn sync_picture(
    src: gst::Element,
    settings: &MediaSettings,
    ch: &Channels,
) -> Result<Vec<gst::Element>, MediaError> {
    src.set_property_from_str("pattern", "black");
    let filter = capsfilter(&video_caps(settings))?;
    let pad = filter
        .static_pad("src")
        .ok_or_else(|| MediaError::Pipeline("capsfilter without src pad".into()))?;
    let epoch = ch.sync_epoch.clone();
    let frame_ns = 1_000_000_000 / u64::from(settings.framerate.max(1));
    let luma_bytes = (settings.width as usize).next_multiple_of(4) * settings.height as usize;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts().map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        let _ = epoch.compare_exchange(NO_EPOCH, pts, Ordering::AcqRel, Ordering::Acquire);
        let since = pts.saturating_sub(epoch.load(Ordering::Acquire));
        // The frame nearest a whole second since the epoch (frames land on it exactly).
        let nearest = (since + frame_ns / 2) / SYNC_PERIOD_NS * SYNC_PERIOD_NS;
        if nearest == 0 || since.abs_diff(nearest) >= frame_ns / 2 {
            return gst::PadProbeReturn::Ok;
        }
        let buffer = buffer.make_mut();
        if let Ok(mut map) = buffer.map_writable() {
            let n = luma_bytes.min(map.len());
            map[..n].fill(FLASH_LUMA);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(vec![src, filter])
}

/// [`TestPicture::Sync`] sound: silence, and a 10 ms 1 kHz click at each flash's timestamp
/// (the epoch plus whole seconds), written sample by sample from the buffers' timestamps.
fn sync_sound(ch: &Channels) -> Result<Vec<gst::Element>, MediaError> {
    let src = make("audiotestsrc")?;
    src.set_property("is-live", true);
    src.set_property_from_str("wave", "silence");
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", SYNC_RATE)
        .field("channels", 1i32)
        .build();
    let filter = capsfilter(&caps)?;
    let pad = filter
        .static_pad("src")
        .ok_or_else(|| MediaError::Pipeline("capsfilter without src pad".into()))?;
    let epoch = ch.sync_epoch.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let start = epoch.load(Ordering::Acquire);
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts().map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        if start == NO_EPOCH {
            return gst::PadProbeReturn::Ok;
        }
        let buffer = buffer.make_mut();
        let Ok(mut map) = buffer.map_writable() else {
            return gst::PadProbeReturn::Ok;
        };
        for (i, sample) in map.chunks_exact_mut(2).enumerate() {
            let t = pts + i as u64 * 1_000_000_000 / SYNC_RATE as u64;
            let Some(since) = t.checked_sub(start) else {
                continue;
            };
            let phase = since % SYNC_PERIOD_NS;
            if since >= SYNC_PERIOD_NS && phase < CLICK_NS {
                let x = (phase as f64 / 1e9 * CLICK_HZ * std::f64::consts::TAU).sin();
                sample.copy_from_slice(&((x * 26_000.0) as i16).to_le_bytes());
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(vec![src, filter])
}

fn inter_video(channel: &str) -> Result<Vec<gst::Element>, MediaError> {
    let src = make("intervideosrc")?;
    src.set_property("channel", channel);
    Ok(vec![src])
}

/// A device pipeline: `v4l2src` → (`jpegdec`) → convert, scale, rate → `intervideosink`.
/// Scaling happens here, once, so the encode pipeline always gets the configured picture.
pub(crate) fn camera_pipeline(
    choice: &CameraChoice,
    settings: &MediaSettings,
    channel: &str,
    name: &str,
) -> Result<gst::Pipeline, MediaError> {
    let mut chain = v4l2_chain(choice)?;
    for factory in ["videoconvert", "videoscale", "videorate"] {
        chain.push(make(factory)?);
    }
    chain.push(capsfilter(&video_caps(settings))?);
    let sink = make("intervideosink")?;
    sink.set_property("channel", channel);
    chain.push(sink);
    device_pipeline(name, &chain)
}

/// The camera alone, for one picture while nothing captures (an admin's `preview`): the
/// test picture, or the configured (else first usable) V4L2 camera opened as capture opens
/// it. Ends in raw video of the camera's own size; the caller scales and encodes.
pub(crate) fn camera_snapshot_chain(
    settings: &MediaSettings,
) -> Result<Vec<gst::Element>, MediaError> {
    match settings.source {
        Source::Test => {
            let src = make("videotestsrc")?;
            let pattern = match settings.test_picture {
                TestPicture::Bars => "smpte75",
                TestPicture::Ball | TestPicture::Sync => "ball",
            };
            src.set_property_from_str("pattern", pattern);
            Ok(vec![src, capsfilter(&video_caps(settings))?])
        }
        Source::V4l2 => {
            let choice = super::devices::choose_camera(
                settings.camera.as_deref(),
                super::inputs::camera_match(settings),
                settings.content.as_deref(),
                super::inputs::limits(settings),
            )
            .map_err(|e| MediaError::Pipeline(e.to_string()))?;
            v4l2_chain(&choice)
        }
    }
}

/// `v4l2src` opening the chosen camera in its chosen format, then `jpegdec` for MJPEG: raw
/// frames of the camera's own size.
fn v4l2_chain(choice: &CameraChoice) -> Result<Vec<gst::Element>, MediaError> {
    let src = make("v4l2src")?;
    src.set_property("device", choice.path.to_string_lossy().as_ref());
    // mmap rather than exported dmabufs: frames are converted right after, so nothing gains
    // from dmabuf, and it is the mode every capture driver (UVC included) supports. (It does
    // not, alone, release the node after an unplug: see `inputs::release`.)
    src.set_property_from_str("io-mode", "mmap");
    let mut chain = vec![src, capsfilter(&choice.caps())?];
    if choice.is_mjpeg() {
        chain.push(make("jpegdec")?);
    }
    Ok(chain)
}

/// A device pipeline: `alsasrc` → convert, resample → `interaudiosink`.
pub(crate) fn microphone_pipeline(
    device: &str,
    channel: &str,
    name: &str,
) -> Result<gst::Pipeline, MediaError> {
    let src = make("alsasrc")?;
    src.set_property("device", device);
    let sink = make("interaudiosink")?;
    sink.set_property("channel", channel);
    let chain = [
        src,
        make("audioconvert")?,
        make("audioresample")?,
        capsfilter(&audio_caps())?,
        sink,
    ];
    device_pipeline(name, &chain)
}

fn device_pipeline(name: &str, chain: &[gst::Element]) -> Result<gst::Pipeline, MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
    let pipeline = gst::Pipeline::with_name(name);
    // The system clock, like the encode pipeline: no drift between the two sides.
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    pipeline.add_many(chain).map_err(|e| err(&e))?;
    gst::Element::link_many(chain).map_err(|e| err(&e))?;
    Ok(pipeline)
}

/// The sink pad of a device pipeline's last element, where a probe sees frames arrive.
pub(crate) fn sink_pad_of(pipeline: &gst::Pipeline) -> Option<gst::Pad> {
    let sink = pipeline.iterate_sinks().into_iter().flatten().next()?;
    sink.static_pad("sink")
}
