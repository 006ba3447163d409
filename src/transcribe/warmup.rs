//! The recogniser's warm-up: it hears the room for a moment before the recording starts.
//!
//! Owns: the primer (sound made from the recording's first 100 ms) and the probe that plays it
//! to the recogniser ahead of the recording's sound. Must not touch: the recording's own
//! samples and timestamps (they reach the recogniser as they were), the hypotheses (the
//! recogniser's caller drops those finished during the primer, told by [`Priming`]).
//!
//! Why: pocketsphinx's voice detector fires once on the onset of any sound after nothing, so
//! the microphone's noise floor at the very start of a recording came out as a stray word
//! ("if" at 0.4–1.0 s in every transcript of a room) or as garbage glued to the first
//! sentence ("woodward in you read one" for "good morning everyone"). Played first, a primer
//! at the room's own level takes that onset, and the recording then starts mid-room, as a
//! microphone that was already listening would hear it. The primer is the first 100 ms
//! mirrored back and forth (so it joins the recording without a click) for [`PRIMER_MS`]:
//! long enough for the detector to fire and close again (it closed within 1.4 s, measured;
//! 1 s was too short). Its buffers carry no timestamp, so no partial hypothesis is placed in
//! it. If the recording starts with speech, the primer is 100 ms of that speech repeated.
//! Measured (`benches/transcribe.sh`, docs/transcription.md): over a room's noise floor the
//! stray word is gone and every sentence is as before; in a quieter room the first sentence
//! came out worse, which no primer length tried (1–3 s) fixed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gst::prelude::*;
use gstreamer as gst;

/// The recogniser's sample rate (mono S16LE, set by the caps before it).
pub const RATE: usize = 16_000;
/// How much of the recording the primer is made of.
const HEAD_MS: usize = 100;
/// How long the primer plays.
pub const PRIMER_MS: usize = 3_000;
/// Primer buffers of this many samples: the element looks at its voice detector once a
/// buffer, so one big buffer would hide the onset's utterance inside the next one.
const CHUNK: usize = 1_024;

/// Set while the primer is being recognised: a final hypothesis then is the onset's.
pub type Priming = Arc<AtomicBool>;

/// `len` samples that end in `head` reversed (so the recording's first sample follows the
/// primer's last one), mirrored back and forth before that; silence if `head` is empty.
pub fn primer(head: &[i16], len: usize) -> Vec<i16> {
    let n = head.len();
    if n == 0 {
        return vec![0; len];
    }
    (0..len)
        .map(|i| {
            let from_end = (len - 1 - i) % (2 * n);
            if from_end < n {
                head[from_end]
            } else {
                head[2 * n - 1 - from_end]
            }
        })
        .collect()
}

enum Stage {
    /// The recording's first buffers, held until there are [`HEAD_MS`] of them.
    Collecting {
        bytes: Vec<u8>,
        pts: Option<gst::ClockTime>,
    },
    /// Playing the primer (the probe sees its own buffers go by).
    Priming,
    Done,
}

/// Plays the primer through `pad` (the 16 kHz mono S16LE pad before the recogniser) ahead of
/// the recording's first buffer, holding `priming` set while it does.
pub fn attach(pad: &gst::Pad, priming: Priming) {
    let stage = Mutex::new(Stage::Collecting {
        bytes: Vec::new(),
        pts: None,
    });
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            let mut now = stage.lock().unwrap_or_else(PoisonError::into_inner);
            let Stage::Collecting { bytes, pts } = &mut *now else {
                return match *now {
                    Stage::Done => gst::PadProbeReturn::Remove,
                    _ => gst::PadProbeReturn::Ok,
                };
            };
            let Some(buffer) = info.buffer() else {
                let eos = info
                    .event()
                    .is_some_and(|e| e.type_() == gst::EventType::Eos);
                if eos && !bytes.is_empty() {
                    // A recording shorter than the head: no primer, its sound as it is.
                    let head = held(std::mem::take(bytes), *pts);
                    *now = Stage::Done;
                    drop(now);
                    let _ = pad.push(head);
                }
                return gst::PadProbeReturn::Ok;
            };
            *pts = pts.or(buffer.pts());
            if let Ok(map) = buffer.map_readable() {
                bytes.extend_from_slice(&map);
            }
            if bytes.len() < HEAD_MS * RATE / 1000 * 2 {
                return gst::PadProbeReturn::Drop;
            }
            let (bytes, pts) = (std::mem::take(bytes), *pts);
            *now = Stage::Priming;
            drop(now);
            play_primer(pad, &bytes, &priming);
            *stage.lock().unwrap_or_else(PoisonError::into_inner) = Stage::Done;
            info.data = Some(gst::PadProbeData::Buffer(held(bytes, pts)));
            gst::PadProbeReturn::Ok
        },
    );
}

/// Pushes the primer made of `head` (S16LE bytes) through `pad` in untimed buffers.
fn play_primer(pad: &gst::Pad, head: &[u8], priming: &AtomicBool) {
    let samples: Vec<i16> = head
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let sound = primer(&samples, PRIMER_MS * RATE / 1000);
    priming.store(true, Ordering::SeqCst);
    for chunk in sound.chunks(CHUNK) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        if pad.push(gst::Buffer::from_mut_slice(bytes)).is_err() {
            break;
        }
    }
    priming.store(false, Ordering::SeqCst);
}

/// The held head of the recording as one buffer, at its first buffer's time.
fn held(bytes: Vec<u8>, pts: Option<gst::ClockTime>) -> gst::Buffer {
    let samples = (bytes.len() / 2) as u64;
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    if let Some(b) = buffer.get_mut() {
        b.set_pts(pts);
        b.set_duration(gst::ClockTime::from_nseconds(
            samples * 1_000_000_000 / RATE as u64,
        ));
    }
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primer_ends_in_the_head_reversed_and_mirrors_back_and_forth() {
        let head = [1i16, 2, 3];
        // Read forward: ... 3 2 1 | 1 2 3 | 3 2 1, then the recording's 1 2 3.
        assert_eq!(primer(&head, 8), vec![2, 1, 1, 2, 3, 3, 2, 1]);
        assert_eq!(primer(&head, 3), vec![3, 2, 1]);
        assert_eq!(primer(&head, 0), Vec::<i16>::new());
        assert_eq!(primer(&[], 4), vec![0; 4]);
    }
}
