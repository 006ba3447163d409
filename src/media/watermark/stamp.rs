//! A rendered mark ready to burn in: which pixels of a frame the mark covers and how much,
//! and the per-frame blend of those pixels into an I420 frame.
//!
//! Owns: turning the coverage of the fill and of the outline into per-pixel weights, kept
//! only where the mark is (runs of pixels, line by line), and blending them. Must not touch:
//! the layout, the text rendering, GStreamer.
//!
//! Why not textoverlay's own blend: textoverlay blends a row's whole rectangle into every
//! frame (the copies, the gaps between them and the padding around the glyphs, through a
//! generic ARGB ↔ YUV line conversion), about 5 ns a pixel over 5 full-width rows at 720p:
//! 4.3 % of a core for the multi-row mark. The glyphs themselves cover a fraction of that
//! rectangle, and a white fill with a black outline moves luma towards two fixed values and
//! chroma towards neutral, which is two multiply-adds on the luma and one on each chroma
//! sample. So the mark is drawn once (by Pango, [`super::render`]) and only its own pixels
//! are touched per frame.
//!
//! Colours are limited range (BT.601 and BT.709 agree on grey): white luma 235, black 16,
//! neutral chroma 128. Weights are in 1/256 so that full coverage at full opacity is exact.

/// Luma of the white fill.
const WHITE_Y: i32 = 235;
/// Luma of the black outline.
const BLACK_Y: i32 = 16;
/// Chroma of any grey.
const NEUTRAL_C: i32 = 128;
/// A weight that replaces the pixel entirely.
const FULL: u32 = 256;

/// A stretch of marked pixels on one line of a plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    line: u32,
    x: u32,
    len: u32,
}

/// How much the fill and the outline cover each pixel of a `width` × `height` frame,
/// 0 (not at all) to 255 (wholly), line by line without padding.
pub(super) struct Coverage<'a> {
    pub width: usize,
    pub height: usize,
    pub fill: &'a [u8],
    pub outline: &'a [u8],
}

/// The opacity of the fill and of the outline (0–255, as in ARGB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Opacity {
    pub fill: u8,
    pub outline: u8,
}

/// The mark's pixels and weights for one frame size; empty for no mark.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Stamp {
    width: usize,
    height: usize,
    luma: Vec<Run>,
    /// (outline, fill) weight of each pixel of `luma`'s runs, in order.
    luma_weights: Vec<(u16, u16)>,
    chroma: Vec<Run>,
    /// The weight of each pixel of `chroma`'s runs: the mark's combined coverage of the
    /// 2 × 2 luma pixels the chroma sample stands for, averaged.
    chroma_weights: Vec<u16>,
}

impl Stamp {
    /// The stamp of a mark whose fill and outline cover the frame as `coverage` says.
    pub(super) fn new(coverage: &Coverage<'_>, opacity: Opacity) -> Stamp {
        let (w, h) = (coverage.width, coverage.height);
        let weights = |i: usize| {
            let at = |plane: &[u8], o: u8| weight(plane.get(i).copied().unwrap_or(0), o);
            (
                at(coverage.outline, opacity.outline),
                at(coverage.fill, opacity.fill),
            )
        };
        let (luma, luma_weights) = runs(w, h, |x, y| {
            let (o, f) = weights(y * w + x);
            (o > 0 || f > 0).then_some((o, f))
        });
        let (chroma, chroma_weights) = runs(w.div_ceil(2), h.div_ceil(2), |cx, cy| {
            let mut sum = 0u32;
            let mut count = 0u32;
            for y in (2 * cy)..(2 * cy + 2).min(h) {
                for x in (2 * cx)..(2 * cx + 2).min(w) {
                    let (o, f) = weights(y * w + x);
                    sum += combined(o, f);
                    count += 1;
                }
            }
            let avg = (sum + count / 2) / count.max(1);
            (avg > 0).then_some(avg as u16)
        });
        Stamp {
            width: w,
            height: h,
            luma,
            luma_weights,
            chroma,
            chroma_weights,
        }
    }

    /// Whether the stamp marks nothing (frames pass untouched).
    pub(crate) fn is_empty(&self) -> bool {
        self.luma.is_empty()
    }

    /// The frame size the stamp was made for.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// How many luma pixels each frame has touched (for the docs' cost figures).
    pub(crate) fn marked_pixels(&self) -> usize {
        self.luma_weights.len()
    }

    /// The outline, then the fill, over the luma plane (`stride` bytes a line).
    pub(crate) fn blend_luma(&self, plane: &mut [u8], stride: usize) {
        blend_runs(
            &self.luma,
            &self.luma_weights,
            plane,
            stride,
            |p, (o, f)| {
                let p = mix(i32::from(p), BLACK_Y, o);
                mix(p, WHITE_Y, f)
            },
        );
    }

    /// The mark's pull towards grey over one chroma plane (U or V, the same for both).
    pub(crate) fn blend_chroma(&self, plane: &mut [u8], stride: usize) {
        blend_runs(&self.chroma, &self.chroma_weights, plane, stride, |p, a| {
            mix(i32::from(p), NEUTRAL_C, a)
        });
    }
}

/// Coverage (0–255) at opacity (0–255) as a weight in 1/256, rounded.
fn weight(coverage: u8, opacity: u8) -> u16 {
    let scaled = u32::from(coverage) * u32::from(opacity) * FULL;
    ((scaled + 255 * 255 / 2) / (255 * 255)) as u16
}

/// The weight of the fill over the outline together (alpha compositing's "over").
fn combined(outline: u16, fill: u16) -> u32 {
    let (o, f) = (u32::from(outline), u32::from(fill));
    FULL - (FULL - o) * (FULL - f) / FULL
}

/// `p` moved towards `target` by `weight`/256, within 0–255.
fn mix(p: i32, target: i32, weight: u16) -> i32 {
    (p + (((target - p) * i32::from(weight)) >> 8)).clamp(0, 255)
}

/// The runs of a `width` × `height` plane where `at(x, y)` gives a weight, and those weights.
fn runs<W>(
    width: usize,
    height: usize,
    mut at: impl FnMut(usize, usize) -> Option<W>,
) -> (Vec<Run>, Vec<W>) {
    let mut runs = Vec::new();
    let mut weights = Vec::new();
    for y in 0..height {
        let mut open: Option<Run> = None;
        for x in 0..width {
            match (at(x, y), open.as_mut()) {
                (Some(w), Some(run)) => {
                    run.len += 1;
                    weights.push(w);
                }
                (Some(w), None) => {
                    open = Some(Run {
                        line: y as u32,
                        x: x as u32,
                        len: 1,
                    });
                    weights.push(w);
                }
                (None, _) => runs.extend(open.take()),
            }
        }
        runs.extend(open);
    }
    (runs, weights)
}

/// Apply `mix` to every pixel of `runs` in `plane`; a run outside the plane (a frame smaller
/// than its stride says) is left alone.
fn blend_runs<W: Copy>(
    runs: &[Run],
    weights: &[W],
    plane: &mut [u8],
    stride: usize,
    mix: impl Fn(u8, W) -> i32,
) {
    let mut next = 0;
    for run in runs {
        let len = run.len as usize;
        let start = run.line as usize * stride + run.x as usize;
        let ws = weights.get(next..next + len);
        next += len;
        let (Some(ws), Some(px)) = (ws, plane.get_mut(start..start + len)) else {
            continue;
        };
        for (p, w) in px.iter_mut().zip(ws) {
            *p = mix(*p, *w) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPAQUE: Opacity = Opacity {
        fill: 255,
        outline: 255,
    };

    fn stamp(w: usize, h: usize, fill: &[u8], outline: &[u8], opacity: Opacity) -> Stamp {
        let coverage = Coverage {
            width: w,
            height: h,
            fill,
            outline,
        };
        Stamp::new(&coverage, opacity)
    }

    #[test]
    fn no_coverage_is_an_empty_stamp_and_touches_nothing() {
        let s = stamp(4, 2, &[0; 8], &[0; 8], OPAQUE);
        assert!(s.is_empty());
        let mut plane = [77u8; 8];
        s.blend_luma(&mut plane, 4);
        assert_eq!(plane, [77; 8]);
    }

    #[test]
    fn opaque_fill_is_white_and_opaque_outline_black() {
        // One fill pixel, one outline pixel, one of neither, on a 3 × 1 frame.
        let s = stamp(3, 1, &[255, 0, 0], &[0, 255, 0], OPAQUE);
        let mut luma = [100u8, 100, 100];
        s.blend_luma(&mut luma, 3);
        assert_eq!(luma, [235, 16, 100]);
        assert_eq!(s.marked_pixels(), 2);
    }

    #[test]
    fn partial_opacity_moves_part_of_the_way() {
        // 35 % white over mid grey: 100 + 0.35 × 135 ≈ 147.
        let s = stamp(
            1,
            1,
            &[255],
            &[0],
            Opacity {
                fill: 90,
                outline: 0,
            },
        );
        let mut luma = [100u8];
        s.blend_luma(&mut luma, 1);
        assert!((146..=148).contains(&luma[0]), "{}", luma[0]);
    }

    #[test]
    fn fill_goes_over_the_outline() {
        // Both wholly: the fill wins, as Pango draws it last.
        let s = stamp(1, 1, &[255], &[255], OPAQUE);
        let mut luma = [50u8];
        s.blend_luma(&mut luma, 1);
        assert_eq!(luma, [235]);
    }

    #[test]
    fn chroma_is_pulled_to_grey_by_the_average_of_its_four_pixels() {
        // A 4 × 2 frame: the left 2 × 2 block half covered, the right one not at all.
        let fill = [255, 0, 0, 0, 255, 0, 0, 0];
        let s = stamp(4, 2, &fill, &[0; 8], OPAQUE);
        let mut u = [200u8, 200];
        s.blend_chroma(&mut u, 2);
        assert_eq!(u, [164, 200]);
    }

    #[test]
    fn runs_follow_the_stride_and_stop_at_the_plane() {
        let fill = [0, 255, 255, 0, 0, 0, 0, 255];
        let s = stamp(4, 2, &fill, &[0; 8], OPAQUE);
        // A stride of 6 (padding after each line of 4).
        let mut luma = [0u8; 12];
        s.blend_luma(&mut luma, 6);
        assert_eq!(luma, [0, 235, 235, 0, 0, 0, 0, 0, 0, 235, 0, 0]);
        // A plane too short for the second line: the first is done, nothing panics.
        let mut short = [0u8; 8];
        s.blend_luma(&mut short, 6);
        assert_eq!(short, [0, 235, 235, 0, 0, 0, 0, 0]);
    }
}
