//! The embedder: adds the mark to PCM as it streams through, in place, one buffer of any size
//! at a time. Causal: each frame's mark is shaped by the 40 ms of programme before the frame,
//! so it needs no look-ahead and adds no latency (forward masking covers the lag: a sound
//! masks what follows it for ~100 ms).

use std::f32::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::code::{codeword, CODEWORD_BITS, PAYLOAD_MASK};
use super::layout::{cells, Role, BINS, FIRST_BIN, FRAME_PER_SECOND, HOPS_PER_SECOND, PERIOD};
use super::MarkError;

/// The mark in each bin, relative to the programme's smoothed spectrum there: 20 dB below.
/// Strong enough to survive AAC at 64 kbit/s plus white noise 20 dB below the programme in
/// 15 s; see docs/watermark.md for the measured levels.
pub const MARK_RELATIVE_DB: f32 = -20.0;
/// The mark's floor, as the level of the whole band (500 Hz–3.5 kHz) in dB relative to a full
/// scale sine: what it keeps in silence, about a quiet room's own noise at usual gains.
pub const MARK_FLOOR_DBFS: f32 = -60.0;
/// The floor also stays this far under the programme's whole level (all frequencies), when
/// that is higher: a programme loud outside the band (a pure 440 Hz tone) leaves the band empty,
/// and voaacenc drops a band 50 dB under the loudest sound (measured: a floor 48 dB under the
/// test tone read back from no excerpt, 40 dB under it from all; docs/watermark.md).
pub const MARK_FLOOR_UNDER_PROGRAMME_DB: f32 = -40.0;
/// Bins on each side averaged into the programme's level at a bin (±75 Hz): the mark follows
/// the spectral envelope, not each harmonic.
const SMOOTH_BINS: usize = 3;

/// Marks one stream. Feed it every sample, in order; it keeps its place across calls.
pub struct Embedder {
    /// Samples per frame (40 ms) and per hop (20 ms) at the stream's rate.
    frame: usize,
    hop: usize,
    /// Chip multiplier per bit: +1 or −1.
    bits: [f32; CODEWORD_BITS],
    window: Vec<f32>,
    /// The last `frame` input samples (mono), oldest first, as a ring.
    history: Vec<f32>,
    history_at: usize,
    /// Mark samples still to add, `pending[pos..]` being the next ones.
    pending: Vec<f32>,
    /// Position in the current hop.
    pos: usize,
    /// Frames generated so far (their index in the pattern is this modulo the period).
    frames: u64,
    relative: f32,
    /// Per-bin sinusoid amplitude of the absolute floor, and the factor from the programme's
    /// RMS to the relative floor's.
    floor: f32,
    floor_per_rms: f32,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl Embedder {
    /// An embedder for `payload` (at most 48 bits) at `rate` Hz, at the shipped levels.
    pub fn new(payload: u64, rate: u32) -> Result<Embedder, MarkError> {
        Embedder::with_levels(payload, rate, MARK_RELATIVE_DB, MARK_FLOOR_DBFS)
    }

    /// As [`Embedder::new`] with other levels: for the bench's trade-off between
    /// inaudibility and robustness, not for recordings.
    pub fn with_levels(
        payload: u64,
        rate: u32,
        relative_db: f32,
        floor_dbfs: f32,
    ) -> Result<Embedder, MarkError> {
        if payload & !PAYLOAD_MASK != 0 {
            return Err(MarkError::Payload(payload));
        }
        if rate < 8_000 || !rate.is_multiple_of(HOPS_PER_SECOND) {
            return Err(MarkError::Rate(rate));
        }
        let frame = (rate / FRAME_PER_SECOND) as usize;
        let word = codeword(payload);
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(frame);
        let inverse = planner.plan_fft_inverse(frame);
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        Ok(Embedder {
            frame,
            hop: frame / 2,
            bits: std::array::from_fn(|i| if word[i] { 1.0 } else { -1.0 }),
            window: sine_window(frame),
            history: vec![0.0; frame],
            history_at: 0,
            pending: vec![0.0; frame],
            pos: 0,
            frames: 0,
            relative: db_to_amplitude(relative_db),
            floor: floor_amplitude(floor_dbfs),
            // A full-scale sine has RMS 1/√2, i.e. 0 dBFS.
            floor_per_rms: floor_amplitude(MARK_FLOOR_UNDER_PROGRAMME_DB) * 2f32.sqrt(),
            forward,
            inverse,
            spectrum: vec![Complex32::default(); frame],
            scratch: vec![Complex32::default(); scratch_len],
        })
    }

    /// Mark interleaved samples in place (full scale ±1.0); the same mark goes to every
    /// channel, shaped by their mix.
    pub fn process_f32(&mut self, samples: &mut [f32], channels: usize) {
        let channels = channels.max(1);
        for frame in samples.chunks_mut(channels) {
            let mono = frame.iter().sum::<f32>() / channels as f32;
            let mark = self.next(mono);
            for s in frame {
                *s = (*s + mark).clamp(-1.0, 1.0);
            }
        }
    }

    /// As [`Embedder::process_f32`] for signed 16-bit samples (saturating).
    pub fn process_i16(&mut self, samples: &mut [i16], channels: usize) {
        const SCALE: f32 = 32_768.0;
        let channels = channels.max(1);
        for frame in samples.chunks_mut(channels) {
            let mono = frame.iter().map(|s| f32::from(*s)).sum::<f32>() / channels as f32;
            let mark = self.next(mono / SCALE) * SCALE;
            for s in frame {
                // Round, then saturate (`as` saturates float to int).
                *s = (f32::from(*s) + mark).round() as i16;
            }
        }
    }

    /// The mark for the next sample, given that sample's (mono) programme value.
    fn next(&mut self, x: f32) -> f32 {
        if self.pos == 0 {
            self.add_frame();
        }
        let mark = self.pending[self.pos];
        self.history[self.history_at] = x;
        self.history_at = (self.history_at + 1) % self.frame;
        self.pos += 1;
        if self.pos == self.hop {
            self.pending.copy_within(self.hop.., 0);
            let n = self.pending.len();
            self.pending[n - self.hop..].fill(0.0);
            self.pos = 0;
        }
        mark
    }

    /// Generate the next frame's mark (40 ms) into `pending`, starting at the current sample.
    fn add_frame(&mut self) {
        let n = self.frame;
        let rms = (self.history.iter().map(|x| x * x).sum::<f32>() / n as f32).sqrt();
        let floor = self.floor.max(rms * self.floor_per_rms);
        // The programme's spectrum over the last frame.
        for i in 0..n {
            let x = self.history[(self.history_at + i) % n];
            self.spectrum[i] = Complex32::new(x * self.window[i], 0.0);
        }
        self.forward
            .process_with_scratch(&mut self.spectrum, &mut self.scratch);
        // A windowed sinusoid of amplitude a shows |X| = a·n/π at its bin (sine window).
        let to_amplitude = PI / n as f32;
        let power: Vec<f32> = (FIRST_BIN - SMOOTH_BINS..FIRST_BIN + BINS + SMOOTH_BINS)
            .map(|k| self.spectrum[k].norm_sqr())
            .collect();
        let row = (self.frames % PERIOD as u64) as usize * BINS;
        let pattern = &cells()[row..row + BINS];
        self.spectrum.fill(Complex32::default());
        for (b, cell) in pattern.iter().enumerate() {
            let around = &power[b..b + 2 * SMOOTH_BINS + 1];
            let level = (around.iter().sum::<f32>() / around.len() as f32).sqrt() * to_amplitude;
            let amplitude = (self.relative * level).max(floor);
            let sign = match cell.role {
                Role::Sync => 1.0,
                Role::Bit(i) => self.bits[i as usize],
            };
            let a = amplitude * sign;
            self.spectrum[FIRST_BIN + b] = Complex32::new(a * cell.chip.0, a * cell.chip.1);
        }
        // Σ_k a_k·e^{i(2πkt/n + φ_k)}: its real part is the sum of the chips' sinusoids.
        self.inverse
            .process_with_scratch(&mut self.spectrum, &mut self.scratch);
        for i in 0..n {
            self.pending[i] += self.spectrum[i].re * self.window[i];
        }
        self.frames += 1;
    }
}

/// sin(π(i+½)/n): its square overlap-adds to 1 at half-frame hops, so the mark's power is
/// steady across frames, and it is the detector's analysis window (a matched filter).
pub(super) fn sine_window(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (PI * (i as f32 + 0.5) / n as f32).sin())
        .collect()
}

fn db_to_amplitude(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// The per-bin sinusoid amplitude whose BINS sinusoids add up to `dbfs` relative to a full
/// scale sine (power ½): BINS · a²/2 = ½ · 10^(dbfs/10).
fn floor_amplitude(dbfs: f32) -> f32 {
    db_to_amplitude(dbfs) / (BINS as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Band power of `x` between 500 Hz and 3.5 kHz, by DFT of the whole signal.
    fn band_rms(x: &[f32], rate: u32) -> f32 {
        rms_between(x, rate, 500.0, 3500.0)
    }

    fn rms_between(x: &[f32], rate: u32, lo: f32, hi: f32) -> f32 {
        let mut planner = FftPlanner::new();
        let fft = planner.plan_fft_forward(x.len());
        let mut buf: Vec<Complex32> = x.iter().map(|v| Complex32::new(*v, 0.0)).collect();
        fft.process(&mut buf);
        let hz = rate as f32 / x.len() as f32;
        let power: f32 = buf[..x.len() / 2]
            .iter()
            .enumerate()
            .filter(|(k, _)| (lo..hi).contains(&(*k as f32 * hz)))
            .map(|(_, c)| 2.0 * c.norm_sqr())
            .sum();
        (power / (x.len() as f32).powi(2)).sqrt()
    }

    #[test]
    fn buffer_sizes_do_not_change_the_output() {
        let rate = 48_000;
        let input: Vec<f32> = (0..rate as usize)
            .map(|i| 0.3 * (i as f32 * 0.05).sin() + 0.1 * (i as f32 * 0.31).sin())
            .collect();
        let mut one = input.clone();
        Embedder::new(0xabc, rate).unwrap().process_f32(&mut one, 1);
        let mut pieces = input.clone();
        let mut e = Embedder::new(0xabc, rate).unwrap();
        let mut at = 0;
        for size in [1usize, 7, 960, 1000, 13, 4096].iter().cycle() {
            if at >= pieces.len() {
                break;
            }
            let end = (at + size).min(pieces.len());
            e.process_f32(&mut pieces[at..end], 1);
            at = end;
        }
        assert_eq!(one, pieces);
        assert_ne!(one, input, "the mark changed nothing");
    }

    #[test]
    fn the_floor_is_the_level_in_silence_and_follows_the_programme_above_it() {
        let rate = 48_000;
        let mut silence = vec![0.0f32; 4 * rate as usize];
        Embedder::new(1, rate).unwrap().process_f32(&mut silence, 1);
        let floor_db = 20.0 * (band_rms(&silence[rate as usize..], rate) / 0.5f32.sqrt()).log10();
        assert!((floor_db - MARK_FLOOR_DBFS).abs() < 1.5, "{floor_db}");

        // White noise at −20 dBFS: the mark 20 dB below it in the band.
        let mut rng = fastrand::Rng::with_seed(7);
        let noise: Vec<f32> = (0..4 * rate as usize)
            .map(|_| (rng.f32() - 0.5) * 0.35)
            .collect();
        let mut marked = noise.clone();
        Embedder::new(1, rate).unwrap().process_f32(&mut marked, 1);
        let mark: Vec<f32> = marked.iter().zip(&noise).map(|(m, x)| m - x).collect();
        let skip = rate as usize;
        let rel = 20.0 * (band_rms(&mark[skip..], rate) / band_rms(&noise[skip..], rate)).log10();
        assert!((rel - MARK_RELATIVE_DB).abs() < 1.5, "{rel}");

        // A 440 Hz tone at −2 dBFS leaves the band empty: the floor follows it 40 dB under.
        // (Measured from 1 kHz: near 500 Hz the mark follows the tone's own skirt.)
        let tone: Vec<f32> = (0..4 * rate as usize)
            .map(|i| 0.8 * (i as f32 * std::f32::consts::TAU * 440.0 / rate as f32).sin())
            .collect();
        let mut marked = tone.clone();
        Embedder::new(1, rate).unwrap().process_f32(&mut marked, 1);
        let mark: Vec<f32> = marked.iter().zip(&tone).map(|(m, x)| m - x).collect();
        let upper = rms_between(&mark[skip..], rate, 1000.0, 3500.0);
        // 100 of the band's 120 bins.
        let mark_db = 20.0 * (upper / 0.5f32.sqrt()).log10() - 10.0 * (100f32 / 120.0).log10();
        let tone_db = 20.0 * 0.8f32.log10();
        assert!(
            (mark_db - tone_db - MARK_FLOOR_UNDER_PROGRAMME_DB).abs() < 1.5,
            "{mark_db}"
        );
    }

    #[test]
    fn bad_rates_and_payloads_are_refused() {
        assert_eq!(
            Embedder::new(1, 11_025).err(),
            Some(MarkError::Rate(11_025))
        );
        assert_eq!(Embedder::new(1, 4_000).err(), Some(MarkError::Rate(4_000)));
        assert_eq!(
            Embedder::new(1 << 48, 48_000).err(),
            Some(MarkError::Payload(1 << 48))
        );
        for rate in [8_000, 16_000, 22_050, 44_100, 48_000, 96_000] {
            assert!(Embedder::new(1, rate).is_ok(), "{rate}");
        }
    }
}
