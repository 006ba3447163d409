//! The picture check (issue 14): whether the recorded picture is black or frozen, for the
//! health alarms `picture_black` and `picture_frozen`.
//!
//! Owns: sampling a coarse grid of luma values of the main video stream about once a
//! second ([`PICTURE_CHECK_INTERVAL`]) while capturing, judging each sample against the one
//! before ([`look`]) and posting the verdict ([`PictureLook`]) on the capture's bus. Must not
//! touch: the frames (it only reads them), how long a look must last before an alarm (the
//! daemon's alarm table decides), MQTT.
//!
//! Where: on the pad that feeds the main stream's watermark, so it sees the composed picture
//! (camera, or content with the camera in a corner) as it is encoded, but without our own
//! mark, which would otherwise make a black picture look lit and a frozen one look alike
//! anyway. A lost camera's placeholder (the last frame repeated, then black) is seen too.
//!
//! How: [`GRID_COLUMNS`] × [`GRID_ROWS`] single luma samples spread over the frame. Black is
//! a mean near video black (16) with hardly any spread; frozen is no sample moving by more
//! than [`FROZEN_TOLERANCE`] since the last sample a second earlier. Single samples rather
//! than block averages on purpose: a live camera's sensor noise moves single samples by
//! several levels from one second to the next even in a still room, so only a picture that
//! really stopped (a wedged driver or grabber repeating one frame) passes as frozen. A black
//! picture is never also called frozen. Reading 9 216 bytes a second costs next to nothing;
//! `benches/picture_check.rs` measures it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gst::prelude::*;
use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;

use super::MediaError;

/// How often the picture is sampled while capturing (in the stream's running time).
pub const PICTURE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Sample points across and down the frame (fewer on a frame smaller than this).
pub const GRID_COLUMNS: usize = 128;
pub const GRID_ROWS: usize = 72;
/// Black: the samples' mean luma below this (video black is 16, a lens cap reads 16-20)...
const BLACK_MEAN_BELOW: f64 = 28.0;
/// ...and their standard deviation below this: a dark but real scene has detail in it (the
/// test camera's ball alone, a 20 px disc, spreads a 320×240 picture to about 28).
const BLACK_SPREAD_BELOW: f64 = 4.0;
/// Frozen: no sample differs by more than this many luma levels from the sample before.
const FROZEN_TOLERANCE: u8 = 2;
/// The element message that carries a look on the capture's bus.
const MESSAGE: &str = "roomrec-picture";

/// What one sample of the picture showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PictureLook {
    /// Black, or nearly: nothing to see.
    pub black: bool,
    /// Not black, and unchanged since the sample before.
    pub frozen: bool,
}

/// The luma of a grid of points of one frame, row by row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PictureGrid(Vec<u8>);

impl PictureGrid {
    /// Samples the luma plane `plane` (`stride` bytes a row) of a `width` × `height` frame at
    /// the centres of a [`GRID_COLUMNS`] × [`GRID_ROWS`] grid of cells.
    pub fn sample(plane: &[u8], stride: usize, width: usize, height: usize) -> PictureGrid {
        let (columns, rows) = (GRID_COLUMNS.min(width), GRID_ROWS.min(height));
        let xs: Vec<usize> = (0..columns)
            .map(|c| (2 * c + 1) * width / (2 * columns))
            .collect();
        let mut values = Vec::with_capacity(columns * rows);
        for r in 0..rows {
            let row = (2 * r + 1) * height / (2 * rows) * stride;
            // A short plane (never from a valid frame) reads as black, not as a panic.
            values.extend(xs.iter().map(|x| plane.get(row + x).copied().unwrap_or(16)));
        }
        PictureGrid(values)
    }

    /// The samples' mean and standard deviation.
    fn mean_and_spread(&self) -> (f64, f64) {
        let n = self.0.len().max(1) as f64;
        let mean = self.0.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let variance = self
            .0
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, variance.sqrt())
    }

    pub fn is_black(&self) -> bool {
        let (mean, spread) = self.mean_and_spread();
        mean < BLACK_MEAN_BELOW && spread < BLACK_SPREAD_BELOW
    }

    /// Whether no sample moved by more than [`FROZEN_TOLERANCE`] since `before`.
    pub fn unchanged_from(&self, before: &PictureGrid) -> bool {
        self.0.len() == before.0.len()
            && self
                .0
                .iter()
                .zip(&before.0)
                .all(|(a, b)| a.abs_diff(*b) <= FROZEN_TOLERANCE)
    }
}

/// How `now` looks, given the sample a second `before` (none for the first of a capture).
pub fn look(before: Option<&PictureGrid>, now: &PictureGrid) -> PictureLook {
    let black = now.is_black();
    PictureLook {
        black,
        frozen: !black && before.is_some_and(|b| now.unchanged_from(b)),
    }
}

/// The check of one capture's main stream; it lives as long as the pad it probes.
pub struct PictureCheck;

impl PictureCheck {
    /// Samples what passes `pad` (raw I420 of `width` × `height`) every
    /// [`PICTURE_CHECK_INTERVAL`] and posts each [`PictureLook`] on `capture`'s bus.
    pub fn attach(
        pad: &gst::Pad,
        capture: &gst::Pipeline,
        width: u32,
        height: u32,
    ) -> Result<PictureCheck, MediaError> {
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height)
            .build()
            .map_err(|e| MediaError::Pipeline(format!("picture check: {e}")))?;
        let capture = capture.downgrade();
        // (running time of the next sample, the last sample)
        let state = Arc::new(Mutex::new((0u64, None::<PictureGrid>)));
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
            let Some(running) = super::buffer_running_time_ns(pad, probe) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            if running < state.0 {
                return gst::PadProbeReturn::Ok;
            }
            state.0 = running + PICTURE_CHECK_INTERVAL.as_nanos() as u64;
            let Some(grid) = probe.buffer().and_then(|b| sample(b, &info)) else {
                return gst::PadProbeReturn::Ok;
            };
            let seen = look(state.1.as_ref(), &grid);
            state.1 = Some(grid);
            drop(state);
            if let Some(capture) = capture.upgrade() {
                post(&capture, seen);
            }
            gst::PadProbeReturn::Ok
        });
        Ok(PictureCheck)
    }
}

/// The grid of one frame; `None` if it cannot be read as `info` says.
fn sample(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<PictureGrid> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let stride = usize::try_from(*frame.plane_stride().first()?).ok()?;
    let plane = frame.plane_data(0).ok()?;
    Some(PictureGrid::sample(
        plane,
        stride,
        frame.width() as usize,
        frame.height() as usize,
    ))
}

fn post(capture: &gst::Pipeline, seen: PictureLook) {
    let s = gst::Structure::builder(MESSAGE)
        .field("black", seen.black)
        .field("frozen", seen.frozen)
        .build();
    let _ = capture.post_message(gst::message::Element::builder(s).src(capture).build());
}

/// The look in an element message of the check; `None` for any other message.
pub(crate) fn read_look(s: &gst::StructureRef) -> Option<PictureLook> {
    if s.name() != MESSAGE {
        return None;
    }
    Some(PictureLook {
        black: s.get("black").ok()?,
        frozen: s.get("frozen").ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` × `h` luma plane with a stride of `w + 32` (padding 0xFF, never sampled).
    fn plane(w: usize, h: usize, luma: impl Fn(usize, usize) -> u8) -> (Vec<u8>, usize) {
        let stride = w + 32;
        let mut p = vec![0xFF; stride * h];
        for y in 0..h {
            for x in 0..w {
                p[y * stride + x] = luma(x, y);
            }
        }
        (p, stride)
    }

    fn grid(w: usize, h: usize, luma: impl Fn(usize, usize) -> u8) -> PictureGrid {
        let (p, stride) = plane(w, h, luma);
        PictureGrid::sample(&p, stride, w, h)
    }

    /// The test camera's ball: a white disc of radius 20 on video black.
    fn ball(cx: usize, cy: usize) -> impl Fn(usize, usize) -> u8 {
        move |x, y| {
            let (dx, dy) = (x as f64 - cx as f64, y as f64 - cy as f64);
            if dx * dx + dy * dy <= 400.0 {
                235
            } else {
                16
            }
        }
    }

    /// Deterministic noise of ±`amp` levels around `base`, different per `seed`.
    fn noisy(base: u8, amp: u8, seed: usize) -> impl Fn(usize, usize) -> u8 {
        move |x, y| {
            let h = (x * 7919 + y * 104_729 + seed * 15_485_863) % 1_000_003;
            let off = (h % (2 * amp as usize + 1)) as i32 - i32::from(amp);
            (i32::from(base) + off).clamp(0, 255) as u8
        }
    }

    #[test]
    fn video_black_and_a_capped_lens_are_black() {
        assert!(grid(320, 240, |_, _| 16).is_black());
        assert!(grid(1280, 720, noisy(18, 3, 1)).is_black());
    }

    /// The ball alone on black is a picture (in the tests' 320×240 and at 720p), and so is
    /// a dark room with detail, or a flat grey wall.
    #[test]
    fn a_dark_picture_with_something_in_it_is_not_black() {
        for (w, h) in [(320, 240), (1280, 720), (1920, 1080)] {
            for (cx, cy) in [(20, 20), (w / 2, h / 2), (w - 21, h - 21)] {
                assert!(
                    !grid(w, h, ball(cx, cy)).is_black(),
                    "{w}x{h} ball at {cx},{cy}"
                );
            }
        }
        assert!(!grid(640, 360, noisy(22, 12, 1)).is_black());
        assert!(!grid(640, 360, |_, _| 120).is_black());
    }

    #[test]
    fn a_repeated_frame_is_frozen_and_a_moving_or_noisy_one_is_not() {
        let still = grid(320, 240, ball(100, 100));
        assert_eq!(
            look(Some(&still), &still.clone()),
            PictureLook {
                black: false,
                frozen: true
            }
        );
        // The first sample of a capture has nothing to compare with.
        assert!(!look(None, &still).frozen);
        // The ball moved 10 px.
        assert!(!look(Some(&still), &grid(320, 240, ball(110, 100))).frozen);
        // A still room seen by a live sensor: the same scene, fresh noise.
        let room = |seed| grid(1280, 720, noisy(110, 4, seed));
        assert!(!look(Some(&room(1)), &room(2)).frozen);
        // Within the tolerance: a grabber's repeated frame with rounding differences.
        let a = grid(640, 360, |x, _| (x % 200) as u8 + 20);
        let b = grid(640, 360, |x, _| (x % 200) as u8 + 22);
        assert!(look(Some(&a), &b).frozen);
    }

    #[test]
    fn a_black_picture_is_black_and_never_frozen() {
        let black = grid(320, 240, |_, _| 16);
        assert_eq!(
            look(Some(&black), &black.clone()),
            PictureLook {
                black: true,
                frozen: false
            }
        );
    }

    #[test]
    fn the_grid_is_spread_over_the_whole_frame_and_fits_small_frames() {
        // Only the bottom-right corner lit: some samples see it.
        let corner = grid(
            1280,
            720,
            |x, y| if x >= 1200 && y >= 680 { 235 } else { 16 },
        );
        assert!(corner.0.contains(&235));
        assert_eq!(corner.0.len(), GRID_COLUMNS * GRID_ROWS);
        assert_eq!(grid(64, 48, |_, _| 16).0.len(), 64 * 48);
        // Grids of different sizes are never "unchanged".
        assert!(!grid(64, 48, |_, _| 50).unchanged_from(&grid(320, 240, |_, _| 50)));
    }
}
