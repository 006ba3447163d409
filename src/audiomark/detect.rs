//! The detector: finds the pattern in 16 kHz mono PCM and reads the codeword from it.
//!
//! Synchronisation searches every sample offset within a 20 ms hop (320 at 16 kHz) and every
//! frame of the 512-frame period. For one offset, the frames' spectra are whitened (each bin
//! divided by its magnitude, so loud programme does not drown quiet cells), folded modulo the
//! period and correlated with the sync cells for all 512 period positions at once by FFT along
//! time. The best candidate's score is compared with the spread of all 163 840 candidates'
//! scores (a constant-false-alarm normalisation: the programme's own structure raises every
//! candidate alike), then each bit is the sign of its cells' correlation.

use std::sync::{Arc, OnceLock};

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::code::{payload_of, CODEWORD_BITS};
use super::embed::sine_window;
use super::layout::{cells, Role, BINS, FIRST_BIN, FRAME_PER_SECOND, PERIOD};

/// The rate the detector works at: every reading is resampled to it, mono.
pub const DETECT_RATE: u32 = 16_000;
const FRAME: usize = (DETECT_RATE / FRAME_PER_SECOND) as usize;
const HOP: usize = FRAME / 2;

/// The synchronisation score (in standard deviations of all candidates' scores) a reading
/// needs before its bits are believed. Unmarked speech, tone and noise measured 2.5–5.0 over
/// 163 840 candidates each (`null_scores_stay_below_the_threshold`, benches/audiomark.sh);
/// marked excerpts after every tested degradation 18 or more (docs/watermark.md).
pub const SYNC_THRESHOLD: f32 = 7.0;
/// With synchronisation found, the weakest bits tried flipped when the CRC fails (Chase
/// decoding): 2³ candidates, so a random word passes the CRC with odds 8/65 536 at most,
/// and only after a synchronisation that chance alone does not produce.
const CHASE_BITS: usize = 3;

/// What the detector saw at its best synchronisation candidate.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Sample offset (at 16 kHz) of the first analysed frame in the excerpt.
    pub offset: usize,
    /// The pattern frame the first analysed frame is.
    pub phase: usize,
    /// The best candidate's score in standard deviations of all candidates' scores.
    pub sync_z: f32,
    /// Each codeword bit's correlation in standard deviations (positive: a 1).
    pub soft: [f32; CODEWORD_BITS],
}

impl Analysis {
    pub fn hard_bits(&self) -> [bool; CODEWORD_BITS] {
        std::array::from_fn(|i| self.soft[i] > 0.0)
    }
}

/// The verdict on an excerpt.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    Mark {
        payload: u64,
        /// Synchronisation score (see [`SYNC_THRESHOLD`]).
        sync_z: f32,
        /// Bits the CRC needed flipped (0 to 3).
        corrected: u8,
    },
    NoMark {
        sync_z: f32,
    },
}

/// Read the mark from `samples` (16 kHz mono, full scale ±1).
pub fn detect(samples: &[f32]) -> Reading {
    match analyse(samples) {
        Some(a) => decide(&a),
        None => Reading::NoMark { sync_z: 0.0 },
    }
}

/// The verdict on an analysis: a payload only with synchronisation above the threshold and a
/// codeword that passes the CRC (after at most three of its weakest bits are flipped).
pub fn decide(a: &Analysis) -> Reading {
    if a.sync_z < SYNC_THRESHOLD {
        return Reading::NoMark { sync_z: a.sync_z };
    }
    match chase(a) {
        Some((payload, corrected)) => Reading::Mark {
            payload,
            sync_z: a.sync_z,
            corrected,
        },
        None => Reading::NoMark { sync_z: a.sync_z },
    }
}

/// The excerpt length the mark is made to be read from.
pub const EXCERPT_SECONDS: usize = 15;

/// Read a whole recording: 15 s windows side by side (at most `max_windows`, spread evenly
/// when there are more), the first that reads a mark wins; otherwise the strongest "no mark".
pub fn scan(samples: &[f32], max_windows: usize) -> Reading {
    let len = EXCERPT_SECONDS * DETECT_RATE as usize;
    let windows = samples.len().div_ceil(len).max(1);
    let step = windows.div_ceil(max_windows.max(1));
    let mut strongest = Reading::NoMark { sync_z: 0.0 };
    for w in (0..windows).step_by(step) {
        // The last window ends at the end, so it is as long as the others.
        let start = (w * len).min(samples.len().saturating_sub(len));
        let reading = detect(&samples[start..(start + len).min(samples.len())]);
        match (&reading, &strongest) {
            (Reading::Mark { .. }, _) => return reading,
            (Reading::NoMark { sync_z: z }, Reading::NoMark { sync_z: best }) if z > best => {
                strongest = reading
            }
            _ => {}
        }
    }
    strongest
}

/// The payload whose codeword is the hard decision with the fewest of its weakest bits
/// flipped, if any passes the CRC.
fn chase(a: &Analysis) -> Option<(u64, u8)> {
    let mut weakest: Vec<usize> = (0..CODEWORD_BITS).collect();
    weakest.sort_by(|x, y| a.soft[*x].abs().total_cmp(&a.soft[*y].abs()));
    let mut flips: Vec<u32> = (0..1u32 << CHASE_BITS).collect();
    flips.sort_by_key(|f| f.count_ones());
    flips.into_iter().find_map(|mask| {
        let mut bits = a.hard_bits();
        for (i, &bit) in weakest.iter().take(CHASE_BITS).enumerate() {
            if mask & (1 << i) != 0 {
                bits[bit] = !bits[bit];
            }
        }
        payload_of(&bits).map(|p| (p, mask.count_ones() as u8))
    })
}

struct Plans {
    frame: Arc<dyn Fft<f32>>,
    period: Arc<dyn Fft<f32>>,
    period_inverse: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// FFT along time of each bin's sync chips (zero elsewhere), bin-major.
    sync_spectra: Vec<Complex32>,
}

fn plans() -> &'static Plans {
    static PLANS: OnceLock<Plans> = OnceLock::new();
    PLANS.get_or_init(|| {
        let mut planner = FftPlanner::new();
        let period = planner.plan_fft_forward(PERIOD);
        let mut sync_spectra = vec![Complex32::default(); BINS * PERIOD];
        for (b, row) in sync_spectra.chunks_mut(PERIOD).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let cell = cells()[j * BINS + b];
                if cell.role == Role::Sync {
                    *v = Complex32::new(cell.chip.0, cell.chip.1);
                }
            }
            period.process(row);
        }
        Plans {
            frame: planner.plan_fft_forward(FRAME),
            period,
            period_inverse: planner.plan_fft_inverse(PERIOD),
            window: sine_window(FRAME),
            sync_spectra,
        }
    })
}

/// The excerpt's whitened band spectra at `offset`, folded modulo the period: bin-major
/// `folded[bin * PERIOD + j]`, and how many frames fell on each j.
fn fold(samples: &[f32], offset: usize, p: &Plans) -> (Vec<Complex32>, Vec<u32>) {
    let mut folded = vec![Complex32::default(); BINS * PERIOD];
    let mut counts = vec![0u32; PERIOD];
    let frames = match samples.len().checked_sub(offset + FRAME) {
        Some(rest) => rest / HOP + 1,
        None => 0,
    };
    let mut buf = vec![Complex32::default(); FRAME];
    let mut scratch = vec![Complex32::default(); p.frame.get_inplace_scratch_len()];
    // Two real frames per complex FFT: one as the real part, the next as the imaginary.
    for pair in (0..frames).step_by(2) {
        let second = pair + 1 < frames;
        for (i, v) in buf.iter_mut().enumerate() {
            let a = samples[offset + pair * HOP + i] * p.window[i];
            let b = if second {
                samples[offset + (pair + 1) * HOP + i] * p.window[i]
            } else {
                0.0
            };
            *v = Complex32::new(a, b);
        }
        p.frame.process_with_scratch(&mut buf, &mut scratch);
        for (m, take) in [(pair, true), (pair + 1, second)] {
            if !take {
                continue;
            }
            let j = m % PERIOD;
            counts[j] += 1;
            for b in 0..BINS {
                let k = FIRST_BIN + b;
                let (z, zc) = (buf[k], buf[FRAME - k].conj());
                let y = if m == pair {
                    (z + zc) * 0.5
                } else {
                    (z - zc) * Complex32::new(0.0, -0.5)
                };
                // sqrt of norm_sqr, not norm(): that is libm's hypotf, which needs glibc
                // 2.35 on arm64 (the package promises glibc 2.34); no overflow at these levels.
                let norm = y.norm_sqr().sqrt();
                if norm > 1e-9 {
                    folded[b * PERIOD + j] += y / norm;
                }
            }
        }
    }
    (folded, counts)
}

/// The synchronisation score of every period position at `offset`.
fn sync_scores(folded: &mut [Complex32], p: &Plans) -> Vec<f32> {
    let mut acc = vec![Complex32::default(); PERIOD];
    let mut scratch = vec![Complex32::default(); p.period.get_inplace_scratch_len()];
    for (row, sync) in folded.chunks_mut(PERIOD).zip(p.sync_spectra.chunks(PERIOD)) {
        p.period.process_with_scratch(row, &mut scratch);
        for ((a, s), f) in acc.iter_mut().zip(sync).zip(row.iter()) {
            *a += s * f.conj();
        }
    }
    let mut scratch = vec![Complex32::default(); p.period_inverse.get_inplace_scratch_len()];
    p.period_inverse
        .process_with_scratch(&mut acc, &mut scratch);
    acc.iter().map(|c| c.re / PERIOD as f32).collect()
}

/// Search `samples` (16 kHz mono) for the pattern; `None` if shorter than one frame.
pub fn analyse(samples: &[f32]) -> Option<Analysis> {
    if samples.len() < FRAME {
        return None;
    }
    let p = plans();
    let (mut sum, mut sumsq, mut n) = (0f64, 0f64, 0f64);
    let mut best = (f32::MIN, 0usize, 0usize);
    for offset in 0..HOP.min(samples.len() - FRAME + 1) {
        let (mut folded, _) = fold(samples, offset, p);
        for (phase, s) in sync_scores(&mut folded, p).into_iter().enumerate() {
            sum += f64::from(s);
            sumsq += f64::from(s) * f64::from(s);
            n += 1.0;
            if s > best.0 {
                best = (s, offset, phase);
            }
        }
    }
    let mean = sum / n;
    let sd = (sumsq / n - mean * mean).max(1e-30).sqrt();
    let (score, offset, phase) = best;
    let sync_z = ((f64::from(score) - mean) / sd) as f32;
    Some(Analysis {
        offset,
        phase,
        sync_z,
        soft: bit_scores(samples, offset, phase, p),
    })
}

/// Each bit's correlation over its cells, in standard deviations of the whitened noise
/// (a unit phasor's real part has variance ½).
fn bit_scores(samples: &[f32], offset: usize, phase: usize, p: &Plans) -> [f32; CODEWORD_BITS] {
    let (folded, counts) = fold(samples, offset, p);
    let mut sum = [0f32; CODEWORD_BITS];
    let mut var = [0f32; CODEWORD_BITS];
    for (j, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let row = (j + phase) % PERIOD * BINS;
        for (b, cell) in cells()[row..row + BINS].iter().enumerate() {
            let Role::Bit(bit) = cell.role else { continue };
            let f = folded[b * PERIOD + j];
            sum[bit as usize] += f.re * cell.chip.0 + f.im * cell.chip.1;
            var[bit as usize] += count as f32 / 2.0;
        }
    }
    std::array::from_fn(|i| sum[i] / var[i].max(1e-9).sqrt())
}

#[cfg(test)]
mod tests {
    use super::super::{codeword, Embedder};
    use super::*;

    fn speechlike(rate: u32, seconds: f32, seed: u64) -> Vec<f32> {
        // Harmonics of a gliding 120–220 Hz voice, syllables of 200 ms with pauses, plus a
        // little noise: enough structure to fool a detector that trusts programme statistics.
        let mut rng = fastrand::Rng::with_seed(seed);
        let n = (rate as f32 * seconds) as usize;
        let mut phase = 0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let f0 = 170.0 + 50.0 * (t * 1.3).sin();
                phase += std::f32::consts::TAU * f0 / rate as f32;
                let syllable = ((t * 5.0).sin()).max(0.0);
                let voice: f32 = (1..20)
                    .map(|h| (phase * h as f32).sin() / h as f32)
                    .sum::<f32>();
                0.2 * syllable * voice + 0.002 * (rng.f32() - 0.5)
            })
            .collect()
    }

    #[test]
    fn a_marked_excerpt_reads_back_and_bits_are_clean() {
        let payload = 0x0000_1234_5678_9abc & super::super::PAYLOAD_MASK;
        let mut x = speechlike(DETECT_RATE, 20.0, 1);
        Embedder::new(payload, DETECT_RATE)
            .unwrap()
            .process_f32(&mut x, 1);
        // An excerpt starting at an odd sample, 15 s long.
        let excerpt = &x[37_123..37_123 + 15 * DETECT_RATE as usize];
        let a = analyse(excerpt).unwrap();
        let errors = a
            .hard_bits()
            .iter()
            .zip(codeword(payload))
            .filter(|(a, b)| **a != *b)
            .count();
        assert!(a.sync_z > SYNC_THRESHOLD + 3.0, "{a:?}");
        assert_eq!(errors, 0, "{a:?}");
        assert!(matches!(detect(excerpt), Reading::Mark { payload: p, .. } if p == payload));
    }

    #[test]
    fn null_scores_stay_below_the_threshold() {
        let rate = DETECT_RATE as usize;
        let mut rng = fastrand::Rng::with_seed(3);
        let noise: Vec<f32> = (0..15 * rate).map(|_| rng.f32() - 0.5).collect();
        let tone: Vec<f32> = (0..15 * rate)
            .map(|i| 0.8 * (i as f32 * std::f32::consts::TAU * 440.0 / rate as f32).sin())
            .collect();
        for (name, x) in [
            ("speech", speechlike(DETECT_RATE, 15.0, 9)),
            ("noise", noise),
            ("tone", tone),
        ] {
            let a = analyse(&x).unwrap();
            eprintln!("null {name}: sync_z {:.2}", a.sync_z);
            assert!(a.sync_z < SYNC_THRESHOLD - 1.0, "{name}: {a:?}");
            assert!(matches!(detect(&x), Reading::NoMark { .. }), "{name}");
        }
        assert_eq!(detect(&[0.0; 100]), Reading::NoMark { sync_z: 0.0 });
    }

    #[test]
    fn chase_repairs_up_to_three_weak_bits_and_no_more() {
        let payload = 0xdead_beef_0042;
        let word = codeword(payload);
        let mut a = Analysis {
            offset: 0,
            phase: 0,
            sync_z: 20.0,
            soft: std::array::from_fn(|i| if word[i] { 5.0 } else { -5.0 }),
        };
        for bit in [3, 40, 63] {
            a.soft[bit] = -a.soft[bit].signum() * 0.5;
        }
        assert_eq!(chase(&a), Some((payload, 3)));
        a.soft[10] = -a.soft[10].signum() * 4.0;
        assert_eq!(chase(&a), None);
    }
}
