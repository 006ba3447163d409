//! Fault injection for tests: freezes the capture pipeline on request, so that the watchdog's
//! stall detection can be tested on the real daemon; silences the test microphone, so that
//! the silent-microphone alarm can; and holds a conversion at its start, so that a signal is
//! sure to land while one runs. Compiled only with the Cargo feature `fault-injection` (off
//! by default; the tests turn it on): release builds have no trigger.
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
