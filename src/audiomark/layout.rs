//! The time–frequency pattern shared by the embedder and the detector: which cell (frame of
//! the period, bin of the band) is synchronisation and which carries which codeword bit, with
//! its chip (pseudo-random sign and phase). Fixed by a seed: every device and every reader
//! derive the same pattern, so nothing but the payload travels.

use std::f32::consts::TAU;
use std::sync::OnceLock;

use super::code::CODEWORD_BITS;

/// Frames are 40 ms long (a 25 Hz bin spacing at any rate) and advance by half of that.
pub const FRAME_PER_SECOND: u32 = 25;
pub const HOPS_PER_SECOND: u32 = 50;
/// The band: bins 20..140 of 25 Hz, 500 Hz to 3.5 kHz. Below 16 kHz resampling's 8 kHz
/// Nyquist, above the hum and rumble of a room, where speech has its energy (so the mark can
/// hide under it) and where AAC at 64 kbit/s still codes the spectrum finely.
pub const FIRST_BIN: usize = 20;
pub const BINS: usize = 120;
/// Frames in one repetition of the pattern: 10.24 s, so any 15 s excerpt holds a whole one.
pub const PERIOD: usize = 512;
/// One cell in this many is synchronisation.
const SYNC_ONE_IN: usize = 4;
/// The pattern's seed ("roomrec1"): changing it makes every existing mark unreadable.
const SEED: u64 = 0x726f_6f6d_7265_6331;

/// What a cell carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Sync,
    Bit(u8),
}

/// One cell of the pattern: its role and its chip `sign · e^{i·phase}` as (re, im).
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    pub role: Role,
    pub chip: (f32, f32),
}

/// The cells, frame-major: `cells()[frame * BINS + bin]`.
pub fn cells() -> &'static [Cell] {
    static CELLS: OnceLock<Vec<Cell>> = OnceLock::new();
    CELLS.get_or_init(build)
}

/// splitmix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn build() -> Vec<Cell> {
    let mut rng = Rng(SEED);
    let total = PERIOD * BINS;
    // A shuffled order of the cells: the first quarter sync, the rest dealt to the bits in
    // turn, so every bit has the same number of cells, spread over time and frequency.
    let mut order: Vec<usize> = (0..total).collect();
    for i in (1..total).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut roles = vec![Role::Sync; total];
    let sync = total / SYNC_ONE_IN;
    for (n, &cell) in order.iter().enumerate().skip(sync) {
        roles[cell] = Role::Bit(((n - sync) % CODEWORD_BITS) as u8);
    }
    roles
        .into_iter()
        .map(|role| {
            let sign = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
            let phase = rng.unit() * TAU;
            Cell {
                role,
                chip: (sign * phase.cos(), sign * phase.sin()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bit_has_the_same_share_and_sync_a_quarter() {
        let mut counts = [0usize; CODEWORD_BITS];
        let mut sync = 0;
        for c in cells() {
            match c.role {
                Role::Sync => sync += 1,
                Role::Bit(b) => counts[b as usize] += 1,
            }
            let norm = c.chip.0.hypot(c.chip.1);
            assert!((norm - 1.0).abs() < 1e-5);
        }
        assert_eq!(sync, PERIOD * BINS / 4);
        assert!(counts.iter().all(|n| *n == counts[0]), "{counts:?}");
        assert_eq!(counts[0], 720);
        // Spread in time: 720 cells dealt at random over 512 frames land in ~387 of them.
        for bit in 0..CODEWORD_BITS as u8 {
            let frames = (0..PERIOD)
                .filter(|f| {
                    cells()[f * BINS..(f + 1) * BINS]
                        .iter()
                        .any(|c| c.role == Role::Bit(bit))
                })
                .count();
            assert!(frames >= 350, "bit {bit} in {frames} frames");
        }
    }
}
