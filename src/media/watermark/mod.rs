//! The video watermark (W1, W2, W4): the text burned into a video stream before encoding.
//!
//! Owns: the layout of a single-row and a multi-row mark for a frame size, the element that
//! burns the mark into each frame of one stream, and switching marks exactly at a segment
//! cut. Must not touch: what is in force (the rules decide, [`super::Marks`] carries it), the
//! audio mark, the encoder.
//!
//! A mark is drawn once per frame size and mark ([`render`], by Pango through textoverlay)
//! into a [`Stamp`]: the pixels it covers and how much. Each frame then only gets those
//! pixels blended ([`stamp`]), in a buffer probe on an `identity` element in the stream's
//! chain. That costs a fraction of what textoverlay in the live chain cost (it blended every
//! row's whole rectangle into every frame): see `docs/media.md`. The text is always escaped
//! before Pango reads it as markup: what the meeting sends is shown as written, never
//! interpreted (the protocol also refuses `<`, `>` and `&`).
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

mod render;
mod stamp;

use std::sync::{Arc, Mutex, PoisonError};

use gst::prelude::*;
use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;

use super::pipeline::make;
use super::{MediaError, VideoMark};
use stamp::{Opacity, Stamp};

/// The most rows a multi-row mark has (the pitch is at least a fifth of the frame height).
const MAX_ROWS: usize = 7;
/// The font's average advance per character, in ems, taken high (bold capitals of DejaVu
/// Sans measure 0.72) so copies are never wider than the layout assumes.
const CHAR_EM: f64 = 0.75;
/// The advance of a space in ems (DejaVu Sans Bold: 0.35).
const SPACE_EM: f64 = 0.35;
/// Opacity (of 255) of the single row's fill, the multi-row fill and both outlines.
const SINGLE_OPACITY: u8 = 0x66;
const MULTI_OPACITY: u8 = 0x5A;
const OUTLINE_OPACITY: u8 = 0x40;

/// One row of text: where and how big.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    /// Pango markup (the escaped text and spaces).
    markup: String,
    font_px: u32,
    /// Centre of the row, as a fraction of the frame height.
    ypos: f64,
    centred: bool,
}

/// What a mark looks like on one frame size.
#[derive(Clone, Debug, PartialEq)]
struct Look {
    rows: Vec<Row>,
    opacity: Opacity,
}

/// How `mark` looks on a `width` × `height` frame.
fn layout(mark: &VideoMark, width: u32, height: u32) -> Look {
    let (w, h) = (f64::from(width.max(16)), f64::from(height.max(16)));
    let opacity = |fill| Opacity {
        fill,
        outline: OUTLINE_OPACITY,
    };
    match mark {
        VideoMark::Off => Look {
            rows: Vec::new(),
            opacity: opacity(0),
        },
        VideoMark::Single(text) => {
            let n = text.chars().count().max(4) as f64;
            let px = (h / 14.0).min(0.9 * w / (CHAR_EM * n)).max(8.0);
            let row = Row {
                markup: escape(text),
                font_px: px as u32,
                ypos: 0.5,
                centred: true,
            };
            Look {
                rows: vec![row],
                opacity: opacity(SINGLE_OPACITY),
            }
        }
        VideoMark::Multi(text) => Look {
            rows: multi_rows(text, w, h),
            opacity: opacity(MULTI_OPACITY),
        },
    }
}

/// The staggered rows of copies of `text` on a `w` × `h` frame (see the module header).
fn multi_rows(text: &str, w: f64, h: f64) -> Vec<Row> {
    let n = text.chars().count().max(4) as f64;
    // No floor: the quarter guarantee wins over legibility for long texts on small frames.
    let px = (h / 16.0).min(w / (3.5 * CHAR_EM * n)).floor().max(1.0);
    let copy = CHAR_EM * n * px;
    let space = SPACE_EM * px;
    let gap_spaces = (copy / 2.0 / space).ceil() as usize;
    let period = copy + gap_spaces as f64 * space;
    let shift_spaces = (period / 2.0 / space).round() as usize;
    let copies = ((w + period) / period).ceil() as usize + 1;
    let line = vec![escape(text); copies].join(&" ".repeat(gap_spaces));
    // Two rows and a text height (1.2 em) in half the frame height, with margin.
    let pitch = 0.95 * (h / 2.0 - 1.5 * px) / 2.0;
    (0..MAX_ROWS)
        .map(|i| (i, pitch / 2.0 + i as f64 * pitch))
        .take_while(|(_, y)| y - 0.6 * px < h)
        .map(|(i, y)| {
            let indent = if i % 2 == 1 { shift_spaces } else { 0 };
            Row {
                markup: format!("{}{line}", " ".repeat(indent)),
                font_px: px as u32,
                ypos: (y / h).min(1.0),
                centred: false,
            }
        })
        .collect()
}

/// The text as Pango shows it literally.
fn escape(text: &str) -> String {
    gst::glib::markup_escape_text(text).to_string()
}

/// What the probe on the stream reads and the actor's switches write.
#[derive(Default)]
struct Shown {
    /// The mark on frames now.
    stamp: Arc<Stamp>,
    /// A mark waiting for the first frame at or after a cut's running time.
    pending: Option<(u64, Arc<Stamp>)>,
    /// The stream's format, from its caps.
    video: Option<gst_video::VideoInfo>,
}

/// The watermark of one video stream (public for `benches/watermark.rs`, which measures it).
pub struct Watermark {
    element: gst::Element,
    width: u32,
    height: u32,
    shown: Arc<Mutex<Shown>>,
}

impl Watermark {
    /// The element for a `width` × `height` I420 stream, showing `mark` from its first frame.
    pub fn new(mark: &VideoMark, width: u32, height: u32) -> Result<Watermark, MediaError> {
        super::init()?;
        let element = make("identity")?;
        let stamp = stamp_of(mark, width, height)?;
        let shown = Arc::new(Mutex::new(Shown {
            stamp: Arc::new(stamp),
            ..Shown::default()
        }));
        let wm = Watermark {
            element,
            width,
            height,
            shown,
        };
        wm.burn_into_frames()?;
        Ok(wm)
    }

    /// The element for the stream's chain (raw video in and out).
    pub fn element(&self) -> &gst::Element {
        &self.element
    }

    /// How many pixels of each frame the mark touches (0 for none).
    pub fn marked_pixels(&self) -> usize {
        let shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        shown.stamp.marked_pixels()
    }

    /// W4: `mark` from the first frame whose running time is at or after `at_ns` (a segment
    /// cut), so the segment before keeps the old mark whole and the next has the new one.
    /// The new mark is drawn here, off the streaming thread; if it cannot be drawn the old
    /// one stays (a frame is never left unmarked by a failed switch).
    pub fn switch_at(&self, at_ns: u64, mark: &VideoMark) -> Result<(), MediaError> {
        let stamp = stamp_of(mark, self.width, self.height)?;
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        shown.pending = Some((at_ns, Arc::new(stamp)));
        Ok(())
    }

    /// A probe on the element's input takes the stream's format from its caps, applies a
    /// pending mark from the first frame due, and burns the mark into every frame.
    fn burn_into_frames(&self) -> Result<(), MediaError> {
        let pad = self
            .element
            .static_pad("sink")
            .ok_or_else(|| MediaError::Pipeline("identity without sink pad".into()))?;
        let shown = Arc::clone(&self.shown);
        let types = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM;
        pad.add_probe(types, move |pad, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data {
                if let gst::EventView::Caps(caps) = event.view() {
                    let video = gst_video::VideoInfo::from_caps(caps.caps()).ok();
                    shown.lock().unwrap_or_else(PoisonError::into_inner).video = video;
                }
                return gst::PadProbeReturn::Ok;
            }
            let running = super::buffer_running_time_ns(pad, info);
            let (stamp, video) = current(&shown, running);
            if let (Some(video), Some(gst::PadProbeData::Buffer(buffer))) = (video, &mut info.data)
            {
                burn(buffer, &video, &stamp);
            }
            gst::PadProbeReturn::Ok
        });
        Ok(())
    }
}

/// The stamp of `mark` on a `width` × `height` frame.
fn stamp_of(mark: &VideoMark, width: u32, height: u32) -> Result<Stamp, MediaError> {
    let look = layout(mark, width, height);
    render::render(&look.rows, width, height, look.opacity)
}

/// The mark for a frame at `running` ns (a due pending mark becomes the current one), and the
/// stream's format.
fn current(
    shown: &Mutex<Shown>,
    running: Option<u64>,
) -> (Arc<Stamp>, Option<gst_video::VideoInfo>) {
    let mut shown = shown.lock().unwrap_or_else(PoisonError::into_inner);
    let due = matches!((&shown.pending, running), (Some((at, _)), Some(t)) if t >= *at);
    if due {
        if let Some((_, stamp)) = shown.pending.take() {
            shown.stamp = stamp;
        }
    }
    (Arc::clone(&shown.stamp), shown.video.clone())
}

/// Burns `stamp` into the I420 frame in `buffer` (the mark is drawn for the stream's size;
/// a frame of another size or format passes unmarked, which the caps before it rule out).
fn burn(buffer: &mut gst::Buffer, video: &gst_video::VideoInfo, stamp: &Stamp) {
    let fits = stamp.size() == (video.width() as usize, video.height() as usize)
        && matches!(
            video.format(),
            gst_video::VideoFormat::I420 | gst_video::VideoFormat::Yv12
        );
    if stamp.is_empty() || !fits {
        return;
    }
    if !buffer.is_all_memory_writable() {
        // Memory the source shares read-only (a camera's DMA buffer): the mark goes on a copy.
        if let Ok(copy) = buffer.copy_deep() {
            *buffer = copy;
        }
    }
    let Ok(mut frame) =
        gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), video)
    else {
        return;
    };
    for plane in 0..3u32 {
        let stride = frame.plane_stride()[plane as usize] as usize;
        let Ok(data) = frame.plane_data_mut(plane) else {
            continue;
        };
        if plane == 0 {
            stamp.blend_luma(data, stride);
        } else {
            stamp.blend_chroma(data, stride);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_shows_nothing_and_single_one_centred_row() {
        assert!(layout(&VideoMark::Off, 1280, 720).rows.is_empty());
        let shown = layout(&VideoMark::Single("Room 101".into()), 1280, 720).rows;
        assert_eq!(shown.len(), 1);
        assert!(shown[0].centred && shown[0].font_px == 51, "{shown:?}");
    }

    #[test]
    fn markup_is_escaped() {
        let rows = layout(&VideoMark::Single("<b>x</b> & y".into()), 640, 360).rows;
        let markup = &rows[0].markup;
        assert_eq!(markup, "&lt;b&gt;x&lt;/b&gt; &amp; y");
    }

    /// Any window of half the width and half the height holds a whole copy, by the layout's
    /// own estimate of a copy's width, for short and for the longest texts.
    #[test]
    fn multi_covers_every_quarter_crop() {
        for (w, h) in [(640u32, 360u32), (1280, 720), (1920, 1080), (320, 240)] {
            for n in [4usize, 13, 40, 64] {
                let text = "W".repeat(n);
                let rows = layout(&VideoMark::Multi(text), w, h).rows;
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
