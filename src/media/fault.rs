//! Fault injection for tests: freezes the capture pipeline on request, so that the watchdog's
//! stall detection can be tested on the real daemon; silences the test microphone, so that
//! the silent-microphone alarm can; has it speak, so that transcription can; turns the test
//! camera black or freezes its picture, so that the picture alarms can; and holds a
//! conversion at its start, so that a signal is sure to land while one runs. Compiled only
//! with the Cargo feature `fault-injection` (off by default; the tests turn it on): release
//! builds have no trigger.
//!
//! Owns: the trigger files and the blocking probes. Must not touch: anything else.
//!
//! Trigger: create the file [`STALL_FILE`] in the storage folder (`storage.dir`, the state
//! directory `/var/lib/roomrec` under the unit), e.g. `touch /var/lib/roomrec/fault-stall-media`.
//! At its next tick (0.1 s) while capturing, the media actor removes the file (so the daemon
//! systemd restarts records normally) and blocks every sink pad of splitmuxsink: no buffer
//! reaches the segment writer any more, the pipeline's streaming threads wait there, and the
//! process, its core loop and the media thread go on running, as with a wedged driver.
//!
//! Silence: while the file [`SILENCE_FILE`] exists in the storage folder, the test tone
//! (`audiotestsrc`) plays at volume 0, digital silence, as from a microphone left unplugged
//! in its socket; once it is removed the tone comes back (looked at every tick, 0.1 s).
//!
//! Speech: if the file [`SPEECH_FILE`] (raw 48 kHz mono S16LE samples) is in the storage
//! folder when a capture starts, the test microphone plays it in place of the tone, over and
//! over from the capture's first sample, as a person talking in the room (the silence trigger
//! mutes it as it does the tone); the capture after the file is removed has the tone again.
//!
//! Black picture: while the file [`BLACK_PICTURE_FILE`] exists in the storage folder, the test
//! camera (`videotestsrc`) draws its `black` pattern, as a camera with its lens capped or a
//! grabber without signal; once it is removed the ball comes back (looked at every tick).
//!
//! Frozen picture: while the file [`FROZEN_PICTURE_FILE`] exists in the storage folder, the
//! test camera's output repeats the frame it made when the file was first seen, with fresh
//! timestamps, as a wedged camera driver that keeps handing out its last buffer; once it is
//! removed the live picture comes back (looked at five times a second of running time, on
//! the camera's streaming thread).
//!
//! Hold: while the file [`HOLD_CONVERSION_FILE`] exists in the storage folder, a conversion
//! that starts waits before reading its first segment, until the file goes or the conversion
//! is cancelled (shutdown): a conversion of a few seconds of media otherwise takes a few
//! milliseconds, too short for a test to catch it running.

use std::path::Path;

use gst::prelude::*;
use gstreamer as gst;

/// The trigger's file name in the storage folder.
pub const STALL_FILE: &str = "fault-stall-media";
/// While this file is in the storage folder, the test microphone is silent.
pub const SILENCE_FILE: &str = "fault-silent-microphone";
/// When a capture starts with this file in the storage folder, the test microphone plays it.
pub const SPEECH_FILE: &str = "fault-speech.s16";
/// The sample rate of [`SPEECH_FILE`] (mono, signed 16-bit little-endian).
pub const SPEECH_RATE: u64 = 48_000;
/// While this file is in the storage folder, the test camera shows black.
pub const BLACK_PICTURE_FILE: &str = "fault-black-picture";
/// While this file is in the storage folder, the test camera repeats one frame.
pub const FROZEN_PICTURE_FILE: &str = "fault-frozen-picture";
/// How often (in the camera's running time) the frozen-picture probe looks for its file.
const FREEZE_POLL_NS: u64 = 200_000_000;
/// While this file is in the storage folder, a starting conversion waits.
pub const HOLD_CONVERSION_FILE: &str = "fault-hold-conversion";
/// How often a held conversion looks at the file and its cancel token.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Blocks while [`HOLD_CONVERSION_FILE`] is in `storage_dir` and `cancel` is not cancelled.
/// Blocking: call it on the conversion's own blocking thread.
pub(crate) fn hold_conversion_if_asked(
    storage_dir: &Path,
    cancel: &tokio_util::sync::CancellationToken,
) {
    let trigger = storage_dir.join(HOLD_CONVERSION_FILE);
    if !trigger.exists() {
        return;
    }
    tracing::warn!(trigger = %trigger.display(), "fault injection: the conversion is held");
    while trigger.exists() && !cancel.is_cancelled() {
        std::thread::sleep(HOLD_POLL);
    }
    tracing::warn!(
        cancelled = cancel.is_cancelled(),
        "fault injection: the conversion goes on"
    );
}

/// Sets every test tone of `pipeline` to silence while [`SILENCE_FILE`] is in the storage
/// folder (the parent of `segments_dir`), and back to [`super::TEST_TONE_VOLUME`] after.
pub(crate) fn silence_if_asked(segments_dir: &Path, pipeline: &gst::Pipeline) {
    let Some(trigger) = segments_dir.parent().map(|d| d.join(SILENCE_FILE)) else {
        return;
    };
    let volume = if trigger.exists() {
        0.0
    } else {
        super::TEST_TONE_VOLUME
    };
    for tone in pipeline
        .iterate_all_by_element_factory_name("audiotestsrc")
        .into_iter()
        .flatten()
    {
        if tone.property::<f64>("volume") != volume {
            tone.set_property("volume", volume);
            tracing::warn!(
                volume,
                "fault injection: the test microphone's volume is set"
            );
        }
    }
}

/// If [`SPEECH_FILE`] is in the storage folder (the parent of `segments_dir`), a probe on the
/// test microphone writes its samples over the tone, by each sample's time since the first
/// buffer (so at the rate and channels negotiated, looping at the file's end). The tone is
/// S16LE or F32LE (audiotestsrc's choices downstream of audioconvert); other formats pass.
pub(crate) fn speak_when_asked(segments_dir: &Path, pipeline: &gst::Pipeline) {
    let Some(trigger) = segments_dir.parent().map(|d| d.join(SPEECH_FILE)) else {
        return;
    };
    let Ok(bytes) = std::fs::read(&trigger) else {
        return;
    };
    let speech: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let Some(pad) = pipeline
        .by_name(super::sources::TEST_MICROPHONE)
        .and_then(|m| m.static_pad("src"))
    else {
        return;
    };
    if speech.is_empty() {
        return;
    }
    tracing::warn!(
        seconds = speech.len() as f64 / SPEECH_RATE as f64,
        "fault injection: the test microphone plays recorded speech"
    );
    let first_pts = std::sync::Mutex::new(None::<u64>);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(layout) = pad.current_caps().as_ref().and_then(SampleLayout::of) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts().map(|t| t.nseconds()) else {
            return gst::PadProbeReturn::Ok;
        };
        let since = pts.saturating_sub(
            *first_pts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(pts),
        );
        // At the tone's volume: the silence trigger mutes the speech as it does the tone.
        let gain = pad.parent_element().map_or(1.0, |tone| {
            tone.property::<f64>("volume") / super::TEST_TONE_VOLUME
        });
        if let Ok(mut map) = buffer.make_mut().map_writable() {
            layout.write(map.as_mut_slice(), since, &speech, gain);
        }
        gst::PadProbeReturn::Ok
    });
}

/// How the test microphone's samples are laid out (from its caps).
struct SampleLayout {
    rate: u64,
    channels: usize,
    float: bool,
}

impl SampleLayout {
    fn of(caps: &gst::Caps) -> Option<SampleLayout> {
        let s = caps.structure(0)?;
        let float = match s.get::<&str>("format").ok()? {
            "S16LE" => false,
            "F32LE" => true,
            _ => return None,
        };
        Some(SampleLayout {
            rate: u64::try_from(s.get::<i32>("rate").ok()?).ok()?.max(1),
            channels: usize::try_from(s.get::<i32>("channels").ok()?).ok()?.max(1),
            float,
        })
    }

    /// Writes `speech` (at [`SPEECH_RATE`], looped) times `gain` over the frames of `bytes`,
    /// whose first frame is `since_ns` after the capture's first.
    fn write(&self, bytes: &mut [u8], since_ns: u64, speech: &[i16], gain: f64) {
        let width = if self.float { 4 } else { 2 };
        for (i, frame) in bytes.chunks_exact_mut(width * self.channels).enumerate() {
            let t_ns = since_ns + i as u64 * 1_000_000_000 / self.rate;
            let index = (u128::from(t_ns) * u128::from(SPEECH_RATE) / 1_000_000_000) as usize;
            let sample = f64::from(speech[index % speech.len()]) * gain;
            for out in frame.chunks_exact_mut(width) {
                if self.float {
                    out.copy_from_slice(&((sample / 32_768.0) as f32).to_le_bytes());
                } else {
                    out.copy_from_slice(&(sample as i16).to_le_bytes());
                }
            }
        }
    }
}

/// Sets the test camera of `pipeline` to its `black` pattern while [`BLACK_PICTURE_FILE`] is
/// in the storage folder (the parent of `segments_dir`), and back to the ball after.
pub(crate) fn black_if_asked(segments_dir: &Path, pipeline: &gst::Pipeline) {
    let Some(trigger) = segments_dir.parent().map(|d| d.join(BLACK_PICTURE_FILE)) else {
        return;
    };
    let Some(camera) = pipeline.by_name(super::sources::TEST_CAMERA) else {
        return;
    };
    let pattern = if trigger.exists() { "black" } else { "ball" };
    let now = camera.property_value("pattern");
    let same = gst::glib::EnumValue::from_value(&now).is_some_and(|(_, v)| v.nick() == pattern);
    if !same {
        camera.set_property_from_str("pattern", pattern);
        tracing::warn!(pattern, "fault injection: the test camera's pattern is set");
    }
}

/// Makes the test camera of `pipeline` repeat one frame while [`FROZEN_PICTURE_FILE`] is in
/// the storage folder (the parent of `segments_dir`): a probe on its output that, once the
/// file is seen, hands on the first frame it held in place of every new one (a shallow copy
/// with the new frame's timestamps: later elements copy before they write).
pub(crate) fn freeze_when_asked(segments_dir: &Path, pipeline: &gst::Pipeline) {
    let Some(trigger) = segments_dir.parent().map(|d| d.join(FROZEN_PICTURE_FILE)) else {
        return;
    };
    let Some(pad) = pipeline
        .by_name(super::sources::TEST_CAMERA)
        .and_then(|c| c.static_pad("src"))
    else {
        return;
    };
    // (running time of the next look at the file, the frame held while frozen)
    let state = std::sync::Mutex::new((0u64, None::<gst::Buffer>));
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(running) = super::buffer_running_time_ns(pad, info) else {
            return gst::PadProbeReturn::Ok;
        };
        let mut state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if running >= state.0 {
            state.0 = running + FREEZE_POLL_NS;
            match (trigger.exists(), state.1.is_some()) {
                (true, false) => {
                    state.1 = info.buffer().map(|b| b.to_owned());
                    tracing::warn!("fault injection: the test camera repeats one frame");
                }
                (false, true) => {
                    state.1 = None;
                    tracing::warn!("fault injection: the test camera moves again");
                }
                _ => {}
            }
        }
        let (Some(held), Some(fresh)) = (&state.1, info.buffer()) else {
            return gst::PadProbeReturn::Ok;
        };
        let mut repeat = held.copy();
        {
            let out = repeat.make_mut();
            out.set_pts(fresh.pts());
            out.set_dts(fresh.dts());
            out.set_duration(fresh.duration());
            out.set_offset(fresh.offset());
            out.set_offset_end(fresh.offset_end());
        }
        info.data = Some(gst::PadProbeData::Buffer(repeat));
        gst::PadProbeReturn::Ok
    });
}

/// If the trigger file exists in the storage folder (the parent of `segments_dir`), removes
/// it and freezes `pipeline`.
pub(crate) fn stall_if_asked(segments_dir: &Path, pipeline: &gst::Pipeline) {
    let Some(trigger) = segments_dir.parent().map(|d| d.join(STALL_FILE)) else {
        return;
    };
    if std::fs::remove_file(&trigger).is_err() {
        return;
    }
    let mut blocked = 0;
    for writer in pipeline
        .iterate_all_by_element_factory_name("splitmuxsink")
        .into_iter()
        .flatten()
    {
        for pad in writer.sink_pads() {
            // Returning Ok from a blocking probe keeps the pad blocked for good.
            let probe = pad.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
                gst::PadProbeReturn::Ok
            });
            blocked += usize::from(probe.is_some());
        }
    }
    tracing::warn!(
        pads = blocked,
        trigger = %trigger.display(),
        "fault injection: the capture pipeline is frozen (no buffer reaches the segment writer)"
    );
}
