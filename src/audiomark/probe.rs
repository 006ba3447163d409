//! The GStreamer insertion point: a buffer probe that marks raw audio in place on its way to
//! the encoder. Takes interleaved S16LE or F32LE at any rate the embedder supports; other
//! formats pass unmarked with a warning (the pipeline never stops for the mark). Its payload
//! changes at a segment cut's running time through [`MarkSwitch`] (W4), like the picture's.

use std::sync::{Arc, Mutex, PoisonError};

use gst::prelude::*;
use gstreamer as gst;

use super::{Embedder, MARK_FLOOR_DBFS, MARK_RELATIVE_DB};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    S16,
    F32,
}

struct Marking {
    embedder: Embedder,
    format: Format,
    channels: usize,
}

/// A payload change not yet applied: the running time (ns) from which it applies, and the
/// payload (`None`: no mark).
type PendingSwitch = Option<(u64, Option<u64>)>;

/// Changes the payload a probe marks with from a running time on (W4: at a segment cut).
#[derive(Clone, Default)]
pub struct MarkSwitch {
    pending: Arc<Mutex<PendingSwitch>>,
}

impl MarkSwitch {
    /// `payload` from the first buffer whose running time is at or after `at_ns`, so the
    /// segment before the cut keeps its mark whole and the next has the new one.
    pub fn switch_at(&self, at_ns: u64, payload: Option<u64>) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some((at_ns, payload));
    }

    /// The payload due at running time `running_ns`, once.
    fn due(&self, running_ns: u64) -> Option<Option<u64>> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match *pending {
            Some((at, payload)) if running_ns >= at => {
                *pending = None;
                Some(payload)
            }
            _ => None,
        }
    }
}

/// What the probe knows: the payload in force, the caps' sample layout and the embedder.
#[derive(Default)]
struct ProbeState {
    payload: Option<u64>,
    caps: Option<gst::Caps>,
    marking: Option<Marking>,
}

/// Mark every buffer of raw audio that flows through `pad` with `payload` (48 bits; `None`:
/// pass it unmarked until the returned switch says otherwise).
///
/// Put it before the `volume` element that mutes, so that muted audio stays silence, and
/// after the resampler, so the mark is made at the rate the encoder codes. The mark restarts
/// its pattern with each new caps (a new capture) and each new payload; the detector does not
/// need continuity beyond one 15 s excerpt.
pub fn attach(pad: &gst::Pad, payload: Option<u64>) -> MarkSwitch {
    attach_with_levels(pad, payload, MARK_RELATIVE_DB, MARK_FLOOR_DBFS)
}

/// As [`attach`] with other levels ([`Embedder::with_levels`]): for the bench only.
#[doc(hidden)]
pub fn attach_with_levels(
    pad: &gst::Pad,
    payload: Option<u64>,
    relative_db: f32,
    floor_dbfs: f32,
) -> MarkSwitch {
    let levels = (relative_db, floor_dbfs);
    let switch = MarkSwitch::default();
    let switched = switch.clone();
    let state = Mutex::new(ProbeState {
        payload,
        ..ProbeState::default()
    });
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(gst::PadProbeData::Event(event)) = &info.data {
                if let gst::EventView::Caps(caps) = event.view() {
                    state.caps = Some(caps.caps_owned());
                    state.marking = new_marking(&state, levels, pad);
                }
                return gst::PadProbeReturn::Ok;
            }
            if let Some(payload) =
                crate::media::buffer_running_time_ns(pad, info).and_then(|t| switched.due(t))
            {
                state.payload = payload;
                state.marking = new_marking(&state, levels, pad);
            }
            let (Some(marking), Some(buffer)) = (state.marking.as_mut(), info.buffer_mut()) else {
                return gst::PadProbeReturn::Ok;
            };
            let buffer = buffer.make_mut();
            let Ok(mut map) = buffer.map_writable() else {
                tracing::warn!(pad = %pad.name(), "audio watermark: a buffer was not writable");
                return gst::PadProbeReturn::Ok;
            };
            mark(marking, map.as_mut_slice());
            gst::PadProbeReturn::Ok
        },
    );
    switch
}

/// An embedder for the state's payload and caps, or `None` (no payload, no caps yet, or
/// caps that cannot be marked).
fn new_marking(state: &ProbeState, levels: (f32, f32), pad: &gst::Pad) -> Option<Marking> {
    marking_for(state.caps.as_ref()?, state.payload?, levels, pad)
}

fn mark(m: &mut Marking, bytes: &mut [u8]) {
    match m.format {
        Format::S16 => {
            let mut samples: Vec<i16> = bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            m.embedder.process_i16(&mut samples, m.channels);
            for (b, s) in bytes.chunks_exact_mut(2).zip(samples) {
                b.copy_from_slice(&s.to_le_bytes());
            }
        }
        Format::F32 => {
            let mut samples: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            m.embedder.process_f32(&mut samples, m.channels);
            for (b, s) in bytes.chunks_exact_mut(4).zip(samples) {
                b.copy_from_slice(&s.to_le_bytes());
            }
        }
    }
}

/// A new embedder for these caps, or `None` (with a warning) when they cannot be marked.
fn marking_for(
    caps: &gst::CapsRef,
    payload: u64,
    (relative_db, floor_dbfs): (f32, f32),
    pad: &gst::Pad,
) -> Option<Marking> {
    let s = caps.structure(0)?;
    let format = match s.get::<&str>("format").ok()? {
        "S16LE" => Format::S16,
        "F32LE" => Format::F32,
        other => {
            tracing::warn!(pad = %pad.name(), format = other,
                "audio watermark: this sample format is not marked (S16LE and F32LE are)");
            return None;
        }
    };
    if s.get::<&str>("layout").ok() == Some("non-interleaved") {
        tracing::warn!(pad = %pad.name(), "audio watermark: non-interleaved audio is not marked");
        return None;
    }
    let rate = u32::try_from(s.get::<i32>("rate").ok()?).ok()?;
    let channels = usize::try_from(s.get::<i32>("channels").ok()?).ok()?;
    match Embedder::with_levels(payload, rate, relative_db, floor_dbfs) {
        Ok(embedder) => {
            tracing::info!(pad = %pad.name(), rate, channels, "audio watermark on");
            Some(Marking {
                embedder,
                format,
                channels,
            })
        }
        Err(e) => {
            tracing::warn!(pad = %pad.name(), error = %e, "audio watermark off");
            None
        }
    }
}
