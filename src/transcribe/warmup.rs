//! The recogniser's warm-up: it hears the room for a moment before the recording starts, and
//! never hears exact digital silence.
//!
//! Owns: the primer (sound made from the recording's first 100 ms), the probe that plays it
//! to the recogniser ahead of the recording's sound, and the dither on all it hears. Must not
//! touch: the recording's timestamps (its sound reaches the recogniser at its own times), the
//! hypotheses (the recogniser's caller drops those finished during the primer, told by
//! [`Priming`]), anything outside the recogniser's pipeline (the files are only read).
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
//!
//! Dither: a recording that starts muted is exact zeros, which the AAC round trip gives back
//! with faint ±1 LSB sound; against a floor of zeros that set the detector off ("up" at 0.02 s
//! of a silenced cloud recording, in two console runs out of two). ±2 LSB of triangular
//! dither on everything the recogniser hears gives it a steady floor instead (no stray word
//! in three runs out of three). It costs the bench's digital-silence case: 61.9 % WER, from
//! 50.8 %, a case no microphone produces between words.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gst::prelude::*;
use gstreamer as gst;

/// The recogniser's sample rate (mono S16LE, set by the caps before it).
pub const RATE: usize = 16_000;
/// How much of the recording the primer is made of.
const HEAD_MS: usize = 100;
/// How long the primer plays at least.
pub const PRIMER_MS: usize = 3_000;
/// How much longer it may play while the recogniser is still inside an utterance it began in
/// the primer (near-silence can hold its detector open): an utterance still open when the
/// recording's sound starts would carry the primer's words onto the recording's first second.
const MAX_EXTRA_MS: usize = 10_000;
/// Primer buffers of this many samples: the element looks at its voice detector once a
/// buffer, so one big buffer would hide the onset's utterance inside the next one.
const CHUNK: usize = 1_024;
/// Peak of the dither added to every sample the recogniser hears, in LSB of S16.
const DITHER_LSB: i32 = 2;

/// What the recogniser's caller and the warm-up share while the primer plays.
#[derive(Debug, Default)]
pub struct Priming {
    /// Set while the primer is being recognised: a final hypothesis then is the onset's.
    active: AtomicBool,
    /// Set when the recogniser posted a partial hypothesis in the primer and no final one
    /// since: it is inside an utterance.
    open: AtomicBool,
}

impl Priming {
    /// Whether the primer is playing: hypotheses now are the primer's, to be dropped.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// The recogniser posted a hypothesis during the primer (`finished`: its final one).
    pub fn heard(&self, finished: bool) {
        self.open.store(!finished, Ordering::SeqCst);
    }
}

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
/// the recording's first buffer, holding `priming` active while it does.
pub fn attach(pad: &gst::Pad, priming: Arc<Priming>) {
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

/// Pushes the primer made of `head` (S16LE bytes) through `pad` in untimed buffers: at least
/// [`PRIMER_MS`], then whole periods of it (the head forward and back, so it still ends where
/// the recording starts) while the recogniser is inside an utterance, up to [`MAX_EXTRA_MS`].
fn play_primer(pad: &gst::Pad, head: &[u8], priming: &Priming) {
    let samples: Vec<i16> = head
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let period = primer(&samples, 2 * samples.len());
    priming.active.store(true, Ordering::SeqCst);
    let mut pushed = push_chunks(pad, &primer(&samples, PRIMER_MS * RATE / 1000));
    let limit = (PRIMER_MS + MAX_EXTRA_MS) * RATE / 1000;
    while pushed.is_some_and(|n| n < limit) && priming.open.load(Ordering::SeqCst) {
        pushed = pushed.zip(push_chunks(pad, &period)).map(|(a, b)| a + b);
    }
    if priming.open.load(Ordering::SeqCst) {
        tracing::debug!("the recogniser was still inside an utterance when the warm-up ended");
    }
    priming.active.store(false, Ordering::SeqCst);
}

/// Pushes `sound` through `pad` in untimed buffers of [`CHUNK`] samples; how many samples
/// went, or `None` once the pad refused one (flushing, or the pipeline stopped).
fn push_chunks(pad: &gst::Pad, sound: &[i16]) -> Option<usize> {
    for chunk in sound.chunks(CHUNK) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        pad.push(gst::Buffer::from_mut_slice(bytes)).ok()?;
    }
    Some(sound.len())
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

/// Adds a faint triangular dither (±[`DITHER_LSB`]) to every buffer through `pad`, so digital
/// silence (a muted or silenced microphone) reaches the recogniser as a steady floor: against
/// exact zeros the ±1 LSB a decoder leaves, or any first sound, sets off its voice detector.
pub fn dither(pad: &gst::Pad) {
    let state = Mutex::new(0x2545_F491u32);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(mut map) = buffer.make_mut().map_writable() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut x = state.lock().unwrap_or_else(PoisonError::into_inner);
        for sample in map.as_mut_slice().chunks_exact_mut(2) {
            let v = i32::from(i16::from_le_bytes([sample[0], sample[1]]));
            let noise = tri(&mut x);
            let out = (v + noise).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            sample.copy_from_slice(&out.to_le_bytes());
        }
        gst::PadProbeReturn::Ok
    });
}

/// A triangular value in −[`DITHER_LSB`]..=[`DITHER_LSB`] from a xorshift state.
fn tri(x: &mut u32) -> i32 {
    let mut next = || {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        (*x % (DITHER_LSB as u32 + 1)) as i32
    };
    next() - next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dither_is_triangular_within_its_peak_and_centred() {
        let mut x = 0x2545_F491u32;
        let mut counts = [0usize; 5];
        for _ in 0..30_000 {
            let v = tri(&mut x);
            assert!((-DITHER_LSB..=DITHER_LSB).contains(&v), "{v}");
            counts[(v + DITHER_LSB) as usize] += 1;
        }
        // 1:2:3:2:1 for two uniform draws of 0..=2 subtracted.
        let expected = [1.0, 2.0, 3.0, 2.0, 1.0].map(|w| w / 9.0 * 30_000.0);
        for (got, want) in counts.iter().zip(expected) {
            assert!((*got as f64 - want).abs() < want * 0.1, "{counts:?}");
        }
    }

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
