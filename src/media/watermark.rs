//! The video watermark (W1, W2, W4): the text burned into a video stream before encoding.
//!
//! Owns: the overlay elements of one video stream, the layout of a single-row and a
//! multi-row mark for a frame size, and switching marks exactly at a segment cut.
//! Must not touch: what is in force (the rules decide, [`super::Marks`] carries it), the
//! audio mark, the encoder.
//!
//! Each stream gets a fixed chain of [`ROWS`] `textoverlay` elements (gst-plugins-base's pango
//! plugin; Debian `gstreamer1.0-x`). textoverlay renders its text once, into an ARGB overlay,
//! whenever the text or font changes, and then only blends that overlay into each frame; a
//! row it does not use is `silent` and passes frames on untouched. One element per row (rather
//! than one multi-line text) keeps the blended area to the rows themselves, not the gaps
//! between them. textoverlay reads its `text` as Pango markup, so the text is always escaped:
//! what the meeting sends is shown as written, never interpreted (the protocol also refuses
//! `<`, `>` and `&`).
//!
//! Geometry. Sizes follow the frame, so a mark looks the same at 360p and 1080p:
//! - single: the text once, centred, in a font of at most 1/14 of the frame height (26 px at
//!   360p, 77 px at 1080p) and at most 90 % of its width;
//! - multi: rows of copies separated by half a copy's width, every other row shifted by half
//!   a period. A copy is at most `w / 3.5` wide (estimated at [`CHAR_EM`] of the font size per
//!   character) and the row pitch fits two rows and a text height in half the frame height,
//!   so any crop of a quarter of the frame (half the width, half the height) holds two
//!   consecutive rows, and one of them a whole copy. Long texts get smaller for that: the
//!   font is `min(h / 16, w / (2.6 n))` pixels for `n` characters, so at 360p a text of up to
//!   about 17 characters gets the full 22 px and one of 64 characters only 3 px (illegible;
//!   at 1080p, 11 px).
//!
//! Both are white at 40 % (single) or 35 % (multi) opacity with a fainter dark outline:
//! readable on light and dark pictures, see-through enough not to hide the meeting.

use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstreamer as gst;

use super::pipeline::make;
use super::{MediaError, VideoMark};

/// Overlay elements per stream: enough rows for the multi-row layout of any text (the pitch
/// is at least a fifth of the frame height).
pub(crate) const ROWS: usize = 7;
/// The font's average advance per character, in ems, taken high (bold capitals of DejaVu
/// Sans measure 0.72) so copies are never wider than the layout assumes.
const CHAR_EM: f64 = 0.75;
/// The advance of a space in ems (DejaVu Sans Bold: 0.35).
const SPACE_EM: f64 = 0.35;
/// The family the product ships; fontconfig picks the face (DejaVu Sans on Debian).
const FONT: &str = "Sans Bold";
/// Big-endian ARGB.
const SINGLE_COLOR: u32 = 0x66FF_FFFF;
const MULTI_COLOR: u32 = 0x5AFF_FFFF;
const OUTLINE_COLOR: u32 = 0x4000_0000;

/// How one overlay row looks; `None` rows are silent.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    /// Pango markup (the escaped text and spaces).
    markup: String,
    font_px: u32,
    /// Centre of the row, as a fraction of the frame height.
    ypos: f64,
    centred: bool,
    color: u32,
}

/// The rows of `mark` on a `width` × `height` frame; always [`ROWS`] entries.
fn layout(mark: &VideoMark, width: u32, height: u32) -> Vec<Option<Row>> {
    let mut rows = vec![None; ROWS];
    let (w, h) = (f64::from(width.max(16)), f64::from(height.max(16)));
    match mark {
        VideoMark::Off => {}
        VideoMark::Single(text) => {
            let n = text.chars().count().max(4) as f64;
            let px = (h / 14.0).min(0.9 * w / (CHAR_EM * n)).max(8.0);
            rows[0] = Some(Row {
                markup: escape(text),
                font_px: px as u32,
                ypos: 0.5,
                centred: true,
                color: SINGLE_COLOR,
            });
        }
        VideoMark::Multi(text) => {
            let n = text.chars().count().max(4) as f64;
            // No floor: the quarter guarantee wins over legibility for long texts on small frames.
            let px = (h / 16.0).min(w / (3.5 * CHAR_EM * n)).floor().max(1.0);
            let copy = CHAR_EM * n * px;
            let space = SPACE_EM * px;
            let gap_spaces = (copy / 2.0 / space).ceil() as usize;
            let period = copy + gap_spaces as f64 * space;
            let shift_spaces = (period / 2.0 / space).round() as usize;
            let copies = ((w + period) / period).ceil() as usize + 1;
            let one = escape(text);
            let line = vec![one; copies].join(&" ".repeat(gap_spaces));
            // Two rows and a text height (1.2 em) in half the frame height, with margin.
            let pitch = 0.95 * (h / 2.0 - 1.5 * px) / 2.0;
            for (i, row) in rows.iter_mut().enumerate() {
                let y = pitch / 2.0 + i as f64 * pitch;
                if y - 0.6 * px >= h {
                    break;
                }
                let indent = if i % 2 == 1 { shift_spaces } else { 0 };
                *row = Some(Row {
                    markup: format!("{}{line}", " ".repeat(indent)),
                    font_px: px as u32,
                    ypos: (y / h).min(1.0),
                    centred: false,
                    color: MULTI_COLOR,
                });
            }
        }
    }
    rows
}

/// The text as Pango shows it literally.
fn escape(text: &str) -> String {
    gst::glib::markup_escape_text(text).to_string()
}

/// A mark waiting for the first frame at or after a cut's running time.
type Pending = Arc<Mutex<Option<(u64, Vec<Option<Row>>)>>>;

/// The watermark of one video stream (public for `benches/watermark.rs`, which measures it).
pub struct Watermark {
    rows: Vec<gst::Element>,
    width: u32,
    height: u32,
    pending: Pending,
}

impl Watermark {
    /// The overlay chain for a `width` × `height` stream, showing `mark` from its first frame.
    pub fn new(mark: &VideoMark, width: u32, height: u32) -> Result<Watermark, MediaError> {
        super::init()?;
        let mut rows = Vec::with_capacity(ROWS);
        for _ in 0..ROWS {
            let e = make("textoverlay")?;
            e.set_property("auto-resize", false);
            e.set_property_from_str("wrap-mode", "none");
            e.set_property("draw-shadow", false);
            e.set_property("outline-color", OUTLINE_COLOR);
            e.set_property_from_str("valignment", "position");
            e.set_property("xpad", 0i32);
            rows.push(e);
        }
        let pending: Pending = Arc::new(Mutex::new(None));
        let wm = Watermark {
            rows,
            width,
            height,
            pending,
        };
        apply(&wm.rows, &layout(mark, width, height));
        wm.switch_on_frames();
        Ok(wm)
    }

    /// The elements, first to last, for the stream's chain (raw video in and out).
    pub fn elements(&self) -> &[gst::Element] {
        &self.rows
    }

    /// W4: `mark` from the first frame whose running time is at or after `at_ns` (a segment
    /// cut), so the segment before keeps the old mark whole and the next has the new one.
    pub fn switch_at(&self, at_ns: u64, mark: &VideoMark) {
        let rows = layout(mark, self.width, self.height);
        if let Ok(mut p) = self.pending.lock() {
            *p = Some((at_ns, rows));
        }
    }

    /// A probe on the first row's input applies a pending mark to every row before the frame
    /// reaches them (the rows share one streaming thread).
    fn switch_on_frames(&self) {
        let Some(pad) = self.rows.first().and_then(|e| e.static_pad("video_sink")) else {
            return;
        };
        let pending = Arc::clone(&self.pending);
        let rows = self.rows.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(running) = super::buffer_running_time_ns(pad, info) else {
                return gst::PadProbeReturn::Ok;
            };
            let due = match pending.lock() {
                Ok(mut p) => match p.as_ref() {
                    Some((at, _)) if running >= *at => p.take(),
                    _ => None,
                },
                Err(_) => None,
            };
            if let Some((_, look)) = due {
                apply(&rows, &look);
            }
            gst::PadProbeReturn::Ok
        });
    }
}

fn apply(elements: &[gst::Element], rows: &[Option<Row>]) {
    for (e, row) in elements.iter().zip(rows) {
        match row {
            None => {
                e.set_property("silent", true);
                e.set_property("text", "");
            }
            Some(r) => {
                e.set_property("font-desc", format!("{FONT} {}px", r.font_px));
                e.set_property("color", r.color);
                e.set_property_from_str("halignment", if r.centred { "center" } else { "left" });
                e.set_property("ypos", r.ypos);
                e.set_property("text", r.markup.as_str());
                e.set_property("silent", false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(rows: &[Option<Row>]) -> Vec<&Row> {
        rows.iter().flatten().collect()
    }

    #[test]
    fn off_shows_nothing_and_single_one_centred_row() {
        assert!(shown(&layout(&VideoMark::Off, 1280, 720)).is_empty());
        let rows = layout(&VideoMark::Single("Room 101".into()), 1280, 720);
        let shown = shown(&rows);
        assert_eq!(shown.len(), 1);
        assert!(shown[0].centred && shown[0].font_px == 51, "{shown:?}");
    }

    #[test]
    fn markup_is_escaped() {
        let rows = layout(&VideoMark::Single("<b>x</b> & y".into()), 640, 360);
        let markup = &shown(&rows)[0].markup;
        assert_eq!(markup, "&lt;b&gt;x&lt;/b&gt; &amp; y");
    }

    /// Any window of half the width and half the height holds a whole copy, by the layout's
    /// own estimate of a copy's width, for short and for the longest texts.
    #[test]
    fn multi_covers_every_quarter_crop() {
        for (w, h) in [(640u32, 360u32), (1280, 720), (1920, 1080), (320, 240)] {
            for n in [4usize, 13, 40, 64] {
                let text = "W".repeat(n);
                let rows = layout(&VideoMark::Multi(text), w, h);
                let rows = shown(&rows);
                let px = f64::from(rows[0].font_px);
                let copy = CHAR_EM * n as f64 * px;
                let space = SPACE_EM * px;
                let (wf, hf) = (f64::from(w), f64::from(h));
                // Copies of each row: (start x, centre y).
                let copies: Vec<(f64, f64)> = rows
                    .iter()
                    .flat_map(|r| {
                        let indent = r.markup.len() - r.markup.trim_start().len();
                        let gap = r
                            .markup
                            .trim_start()
                            .split('W')
                            .filter(|s| !s.is_empty())
                            .map(str::len)
                            .next()
                            .unwrap_or(0);
                        let period = copy + gap as f64 * space;
                        let x0 = indent as f64 * space;
                        let y = r.ypos * hf;
                        (0..40).map(move |j| (x0 + j as f64 * period, y))
                    })
                    .collect();
                for ax in 0..=20 {
                    for ay in 0..=20 {
                        let (x, y) = (ax as f64 * wf / 40.0, ay as f64 * hf / 40.0);
                        let whole = copies.iter().any(|(cx, cy)| {
                            *cx >= x
                                && cx + copy <= x + wf / 2.0
                                && cy - 0.6 * px >= y
                                && cy + 0.6 * px <= y + hf / 2.0
                        });
                        assert!(
                            whole,
                            "{w}x{h}, {n} chars: no copy in the crop at ({x}, {y})"
                        );
                    }
                }
            }
        }
    }
}
