//! The audio watermark: an inaudible mark carrying a recording's 48-bit id in the microphone
//! audio, and the reader that finds it again in any 15 s of the recording.
//!
//! Owns: the codeword (48-bit payload + CRC-16), the time–frequency pattern that carries it
//! ([`layout`]), the embedder ([`Embedder`], causal and stateful across buffers of any size),
//! the detector ([`detect`]), the GStreamer insertion point ([`attach`]) and the decoding of a
//! file, segment or HLS playlist to the detector's PCM ([`read_source`]). The method, its
//! measured robustness and its limits are in docs/watermark.md.
//!
//! Must not touch: the recording rules (they decide whether a recording is marked and with
//! which payload), the pipeline's layout (media calls [`attach`] on its microphone branch),
//! segments, catalog, MQTT.
//!
//! The scheme in one paragraph: additive spread spectrum in the short-time Fourier domain.
//! Frames of 40 ms advance by 20 ms; in each frame every 25 Hz bin from 500 Hz to 3.5 kHz
//! (120 bins) carries one chip: a sinusoid of pseudo-random phase and sign whose amplitude is
//! a fixed fraction of the programme's smoothed spectrum in the 40 ms just before (with a floor:
//! −60 dBFS, or 40 dB under the programme's whole level when that is higher), so the mark
//! follows the programme 20 dB below it. The pattern repeats
//! every 512 frames (10.24 s): a quarter of its cells are a known synchronisation pattern, the
//! rest carry the 64 codeword bits, 720 cells each. The detector resamples to 16 kHz mono,
//! searches every sample offset within a hop and every frame of the period for the
//! synchronisation pattern (FFT correlation), then decides each bit from its cells.

mod code;
mod decode;
mod detect;
mod embed;
pub mod layout;
mod probe;

pub use code::{codeword, crc16, payload_of, CODEWORD_BITS, PAYLOAD_BITS, PAYLOAD_MASK};
pub use decode::{read_pcm, read_source, DecodeError};
pub use detect::{
    analyse, decide, detect, scan, Analysis, Reading, DETECT_RATE, EXCERPT_SECONDS, SYNC_THRESHOLD,
};
pub use embed::{Embedder, MARK_FLOOR_DBFS, MARK_FLOOR_UNDER_PROGRAMME_DB, MARK_RELATIVE_DB};
pub use probe::{attach, attach_with_levels, MarkSwitch};

/// Why the embedder cannot mark a stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MarkError {
    /// The frame grid (40 ms, 20 ms hops) needs a whole number of samples per hop, and the
    /// band up to 3.5 kHz needs at least 8 kHz.
    #[error(
        "cannot mark audio at {0} Hz: the rate must be a multiple of 50 Hz and at least 8000 Hz"
    )]
    Rate(u32),
    /// The payload is 48 bits.
    #[error("the payload {0:#x} does not fit in 48 bits")]
    Payload(u64),
}
