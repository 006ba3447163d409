//! The MP4's one timeline: where each segment's timestamps land, so that picture and sound run
//! on without a hole across every join between segments and every pause.
//!
//! Owns: reading a segment's timestamps ([`SegmentTimes`]), cutting a recording into runs
//! (segments one capture wrote one after the other), the offset of each run and the gaps
//! where segments are missing ([`plan`]), and rewriting the PTS, DTS and PCR of a segment's TS
//! packets by that offset ([`place`]). Must not touch: pipelines, files, SQLite.
//!
//! Why: the segments of one capture carry the capture's own clock (PTS = running time plus
//! the muxer's one-hour base), continuous across every cut, with the camera's black frames
//! while a device is lost included. Those timestamps are kept as they are. Only where a run
//! ends (a pause, or a stretch captured for other recordings only) does the next run start
//! again: it is moved to follow the last frame of the previous run by exactly one frame, so the
//! paused time is absent rather than a hole. The sound of one capture does not end and start
//! exactly with its picture (up to a frame and an audio packet either way), so at that join
//! sound packets of the new run that would land before the previous run's sound ended are
//! dropped (the sound timeline never runs backwards), and where the new run's sound would
//! start more than half a packet after the previous one ended, silent AAC frames fill the gap
//! (a few tens of ms: the time the picture has and the microphone had not yet delivered).
//!
//! A segment whose file is missing or corrupt is a hole ([`Slot::Hole`], as long as the catalog
//! recorded it). The capture's clock went on through it, so the segment after it keeps its
//! own timestamps when they are where the hole's length puts them (a frame either way), and
//! otherwise (a pause right after the hole) starts the hole's length after the previous run.
//! Either way the hole is a declared [`Gap`], never closed: the last frame before it lasts
//! across it, the silence above fills the sound, and PCR-only packets bridge the demuxer's
//! clock across it (`tsdemux` takes a PCR jump above 500 ms for a discontinuity and closes it).
//!
//! Timestamps are handled unwrapped (i64, 90 kHz) across the whole recording: each PES is
//! read relative to the one before it, so a 33-bit wrap inside a long recording is no jump.

use std::collections::{HashMap, HashSet};

use super::tsscan::{self, PesStart, PACKET, PTS_WRAP, SYNC};

/// Without a second frame to measure the step from: 30 fps.
const DEFAULT_FRAME_TICKS: i64 = 3_000;

/// First and last timestamp of one kind of stream in a segment (unwrapped ticks) and its
/// smallest step between two packets of one PID (a frame, or an audio packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub first: i64,
    pub last: i64,
    pub step: Option<i64>,
}

/// What planning needs of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentTimes {
    pub video: Option<Span>,
    pub sound: Option<Span>,
    /// Video PES packets: one frame each as roomrec muxes them.
    pub video_frames: u64,
    /// A raw PTS and its unwrapped value, to unwrap the segment's timestamps when rewriting.
    anchor: Option<(u64, i64)>,
}

/// Unwraps raw 33-bit timestamps read in file order, segment after segment.
#[derive(Default)]
pub(crate) struct Unwrapper {
    last: Option<(u64, i64)>,
}

impl Unwrapper {
    fn unwrap(&mut self, raw: u64) -> i64 {
        let value = match self.last {
            None => raw as i64,
            Some((last_raw, last)) => last + signed_ticks(raw, last_raw),
        };
        self.last = Some((raw, value));
        value
    }

    /// The timestamps of one segment's TS bytes.
    pub fn segment(&mut self, data: &[u8]) -> SegmentTimes {
        let starts = tsscan::pes_starts(data);
        let mut anchor = None;
        let mut video = Streams::default();
        let mut sound = Streams::default();
        for pes in &starts {
            let t = self.unwrap(pes.pts);
            anchor.get_or_insert((pes.pts, t));
            if pes.is_video() {
                video.add(pes, t);
            } else {
                sound.add(pes, t);
            }
        }
        SegmentTimes {
            video: video.span(),
            sound: sound.span(),
            video_frames: video.count,
            anchor,
        }
    }
}

/// `raw - from` as the nearest signed distance modulo 2^33.
fn signed_ticks(raw: u64, from: u64) -> i64 {
    let d = (raw + PTS_WRAP - from % PTS_WRAP) % PTS_WRAP;
    if d >= PTS_WRAP / 2 {
        d as i64 - PTS_WRAP as i64
    } else {
        d as i64
    }
}

/// Timestamps of one kind of stream, per PID (several video streams with D3).
#[derive(Default)]
struct Streams {
    per_pid: HashMap<u16, Vec<i64>>,
    count: u64,
}

impl Streams {
    fn add(&mut self, pes: &PesStart, t: i64) {
        self.per_pid.entry(pes.pid).or_default().push(t);
        self.count += 1;
    }

    fn span(&self) -> Option<Span> {
        let all = || self.per_pid.values().flatten();
        let step = self
            .per_pid
            .values()
            .filter_map(|ts| {
                let mut ts = ts.clone();
                ts.sort_unstable();
                ts.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).min()
            })
            .min();
        Some(Span {
            first: *all().min()?,
            last: *all().max()?,
            step,
        })
    }
}

/// Where one segment's timestamps go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Added to every PTS, DTS and PCR of the segment.
    pub offset: i64,
    /// Sound packets that would start before this (output ticks) are dropped.
    pub sound_floor: Option<i64>,
    /// Silent sound packets to put before the segment's first sound packet.
    pub silence: Option<Silence>,
    /// A gap before the segment (ticks): its clock is bridged by PCR-only packets.
    pub bridge: Option<i64>,
    anchor: Option<(u64, i64)>,
}

/// `count` silent packets, one `step` apart from `from` (output ticks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Silence {
    pub from: i64,
    pub count: u32,
    pub step: i64,
}

/// One segment of the recording in planning: its timestamps, or a hole where its file is
/// missing or unreadable, as long as the catalog says it lasted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Segment(SegmentTimes),
    Hole { ticks: i64 },
}

/// A stretch the MP4 keeps real time across without media: consecutive holes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gap {
    /// The slots (indices into what was planned) it stands for.
    pub slots: std::ops::Range<usize>,
    /// Its start on the MP4's timeline (ticks from the first frame).
    pub start: i64,
    pub ticks: i64,
    /// Between two segments the MP4 holds: the picture holds its last frame across it. A gap
    /// before the first segment or after the last is not in the MP4 (nothing to hold).
    pub inside: bool,
}

/// The recording's timeline: one placement per segment, and what the MP4 must then show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Timeline {
    /// One per [`Slot::Segment`], in order.
    pub placements: Vec<Placement>,
    /// From the first video frame to the end of the last one, pauses excluded, gaps inside
    /// included (ticks).
    pub video_ticks: i64,
    /// One video frame (ticks): the tolerance of the duration check.
    pub frame_ticks: i64,
    pub video_frames: u64,
    /// Stretches of continuous capture; a run starts at the first segment and after each pause.
    pub runs: usize,
    pub gaps: Vec<Gap>,
}

impl Timeline {
    pub fn duration_ms(&self) -> u64 {
        (self.video_ticks.max(0) as u64) / tsscan::TICKS_PER_MS
    }

    pub fn frame_ms(&self) -> u64 {
        (self.frame_ticks.max(0) as u64).div_ceil(tsscan::TICKS_PER_MS)
    }
}

/// The end of what has been placed so far, in output ticks.
#[derive(Default)]
struct Placed {
    video_end: Option<i64>,
    /// The input timestamp of the last video frame, to see whether the next segment follows.
    video_last_in: Option<i64>,
    sound_end: Option<i64>,
    sound_step: Option<i64>,
    first_out: Option<i64>,
}

/// Holes seen since the last segment placed: from which slot, and their recorded length.
struct PendingHole {
    from: usize,
    ticks: i64,
}

/// Place every segment (in recording order) on one continuous timeline, keeping real time
/// across each hole.
pub(crate) fn plan(slots: &[Slot]) -> Timeline {
    let mut placed = Placed::default();
    let mut offset = 0i64;
    let mut runs = 0;
    let mut frame = None;
    let mut placements = Vec::with_capacity(slots.len());
    let mut gaps = Vec::new();
    let mut hole: Option<PendingHole> = None;
    for (i, slot) in slots.iter().enumerate() {
        let seg = match slot {
            Slot::Segment(seg) => seg,
            Slot::Hole { ticks } => {
                let pending = hole.get_or_insert(PendingHole { from: i, ticks: 0 });
                pending.ticks += ticks.max(&0);
                continue;
            }
        };
        let mut bridge = None;
        if let Some(v) = seg.video {
            let step = v.step.or(frame).unwrap_or(DEFAULT_FRAME_TICKS);
            frame.get_or_insert(step);
            let hole_ticks = hole.as_ref().map_or(0, |h| h.ticks);
            // Across a hole, the capture's clock went on for the hole's recorded length.
            let follows = placed.video_last_in.is_some_and(|last| {
                let gap = v.first - last - hole_ticks;
                if hole_ticks == 0 {
                    gap > 0 && gap <= step * 3 / 2
                } else {
                    // The hole's length is the catalog's (ms, cut to cut): a frame either way.
                    v.first > last && gap > -step / 2 && gap <= step * 5 / 2
                }
            });
            if !follows {
                runs += 1;
                // The previous run's last frame plays for one frame (and the hole's length);
                // this run starts there.
                if let Some(end) = placed.video_end {
                    offset = end + hole_ticks - v.first;
                }
            }
            let first_out = *placed.first_out.get_or_insert(v.first + offset);
            if let Some(h) = hole.take() {
                let (start, ticks, inside) = match placed.video_end {
                    Some(end) => (end, (v.first + offset - end).max(0), true),
                    None => (first_out, h.ticks, false),
                };
                gaps.push(Gap {
                    slots: h.from..i,
                    start: start - first_out,
                    ticks,
                    inside,
                });
                bridge = (inside && ticks > 0).then_some(ticks);
            }
            placed.video_end = Some(v.last + offset + step);
            placed.video_last_in = Some(v.last);
        }
        // Half a packet of leeway: a packet that starts within half a step of the end is the
        // next one, however its source jittered.
        let sound_floor = placed
            .sound_end
            .map(|end| end - placed.sound_step.unwrap_or(0) / 2);
        let silence = match (seg.sound, placed.sound_end, placed.sound_step) {
            (Some(s), Some(end), Some(step)) => silence_between(end, s.first + offset, step),
            _ => None,
        };
        if let Some(s) = seg.sound {
            let step = s.step.or(placed.sound_step).unwrap_or(0);
            placed.sound_step = Some(step);
            let end = s.last + offset + step;
            placed.sound_end = Some(placed.sound_end.map_or(end, |e| e.max(end)));
        }
        placements.push(Placement {
            offset,
            sound_floor,
            silence,
            bridge,
            anchor: seg.anchor,
        });
    }
    let video_ticks = match (placed.first_out, placed.video_end) {
        (Some(first), Some(end)) => end - first,
        _ => 0,
    };
    if let Some(h) = hole {
        gaps.push(Gap {
            slots: h.from..slots.len(),
            start: video_ticks,
            ticks: h.ticks,
            inside: false,
        });
    }
    Timeline {
        placements,
        video_ticks,
        frame_ticks: frame.unwrap_or(DEFAULT_FRAME_TICKS),
        video_frames: slots
            .iter()
            .map(|s| match s {
                Slot::Segment(seg) => seg.video_frames,
                Slot::Hole { .. } => 0,
            })
            .sum(),
        runs,
        gaps,
    }
}

/// Whole silent packets from `end` up to within half a packet of `next`, if any are needed.
fn silence_between(end: i64, next: i64, step: i64) -> Option<Silence> {
    if step <= 0 || next - end < step / 2 {
        return None;
    }
    let count = u32::try_from((next - end + step / 2) / step).ok()?;
    (count > 0).then_some(Silence {
        from: end,
        count,
        step,
    })
}

/// One segment's TS packets with their timestamps moved by `place`, and the sound packets
/// below its floor left out. Torn or unsynchronised packets are left out too: the demuxer
/// would skip them anyway.
pub(crate) fn place(data: &[u8], place: &Placement) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    if let Some(gap) = place.bridge {
        out.extend(pcr_bridge(data, place.offset, gap));
    }
    let mut dropping: HashSet<u16> = HashSet::new();
    let mut pending_silence = place.silence;
    for packet in data.chunks_exact(PACKET) {
        if packet[0] != SYNC {
            continue;
        }
        let mut p: [u8; PACKET] = packet.try_into().unwrap_or([0; PACKET]);
        let pid = tsscan::pid_of(&p);
        if let Some(at) = tsscan::pcr_at(&p) {
            let base = tsscan::read_pcr_base(&p[at..at + 6]);
            tsscan::write_pcr_base(&mut p[at..at + 6], moved(base, place.offset));
        }
        if let Some(at) = tsscan::pes_header_at(&p) {
            let stream_id = p[at + 3];
            let flags = p[at + 7];
            if flags & 0x80 != 0 {
                let raw = tsscan::read_timestamp(&p[at + 9..at + 14]);
                let drop = !tsscan::is_video_stream(stream_id)
                    && place.sound_floor.is_some_and(|floor| {
                        place.anchor.is_some_and(|(anchor_raw, anchor)| {
                            anchor + signed_ticks(raw, anchor_raw) + place.offset < floor
                        })
                    });
                if drop {
                    dropping.insert(pid);
                    continue;
                }
                dropping.remove(&pid);
                if !tsscan::is_video_stream(stream_id) {
                    if let Some(silence) = pending_silence.take() {
                        out.extend(silent_packets(&p, at, silence));
                    }
                }
                tsscan::write_timestamp(&mut p[at + 9..at + 14], moved(raw, place.offset));
                if flags & 0x40 != 0 && at + 19 <= PACKET {
                    let dts = tsscan::read_timestamp(&p[at + 14..at + 19]);
                    tsscan::write_timestamp(&mut p[at + 14..at + 19], moved(dts, place.offset));
                }
            } else {
                dropping.remove(&pid);
            }
        } else if dropping.contains(&pid) {
            continue; // the rest of a dropped sound packet
        }
        out.extend_from_slice(&p);
    }
    out
}

/// Between two PCRs of a bridge: well below the jump a demuxer takes for a discontinuity
/// (`tsdemux` re-bases its clock on a PCR step above 500 ms, closing the gap).
const BRIDGE_STEP: i64 = 9_000;

/// PCR-only packets (adaptation field, no payload) on the segment's PCR PID, every
/// [`BRIDGE_STEP`] across the `gap` ticks before its first PCR (placed by `offset`): the
/// demuxer's clock runs on through a gap instead of jumping, so the segment keeps its place.
fn pcr_bridge(data: &[u8], offset: i64, gap: i64) -> Vec<u8> {
    let Some(first) = data
        .chunks_exact(PACKET)
        .find(|p| p[0] == SYNC && tsscan::pcr_at(p).is_some())
    else {
        return Vec::new();
    };
    let pcr = moved(tsscan::read_pcr_base(&first[6..12]), offset) as i64;
    // No payload: the continuity counter stays at the one before the first packet's.
    let counter = (first[3] + 15) & 0x0F;
    let mut out = Vec::new();
    for k in (1..=gap / BRIDGE_STEP).rev() {
        let mut p = [0xFFu8; PACKET];
        p[..4].copy_from_slice(&[SYNC, first[1] & 0x1F, first[2], 0x20 | counter]);
        p[4..12].copy_from_slice(&[183, 0x10, 0, 0, 0, 0, 0x7E, 0]);
        tsscan::write_pcr_base(&mut p[6..12], moved(0, pcr - k * BRIDGE_STEP));
        out.extend_from_slice(&p);
    }
    out
}

/// AAC-LC raw data blocks that decode to 1024 samples of silence: one channel element (SCE
/// for mono, CPE for stereo) whose channels have no scale factor band (`max_sfb` 0), then END.
const SILENT_AAC_MONO: [u8; 4] = [0x00, 0x00, 0x00, 0x07];
const SILENT_AAC_STEREO: [u8; 7] = [0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0E];

/// TS packets of `silence` for the sound stream whose PES starts at `at` in `first` (its first
/// packet in the segment), each one PES of one ADTS frame with that stream's header. None when
/// the stream is not ADTS AAC of one or two channels (Opus: the gap stays).
fn silent_packets(first: &[u8; PACKET], at: usize, silence: Silence) -> Vec<u8> {
    let payload_at = at + 9 + usize::from(first[at + 8]);
    let Some(header) = first.get(payload_at..payload_at + 7) else {
        return Vec::new();
    };
    if header[0] != 0xFF || header[1] & 0xF6 != 0xF0 {
        return Vec::new();
    }
    let channels = (header[2] & 1) << 2 | header[3] >> 6;
    let frame: &[u8] = match channels {
        1 => &SILENT_AAC_MONO,
        2 => &SILENT_AAC_STEREO,
        _ => return Vec::new(),
    };
    let len = 7 + frame.len();
    let mut adts = header.to_vec();
    adts[1] |= 1; // no CRC
    adts[3] = (adts[3] & 0xFC) | (len >> 11) as u8;
    adts[4] = (len >> 3) as u8;
    adts[5] = ((len & 7) << 5) as u8 | 0x1F; // buffer fullness 0x7FF: variable rate
    adts[6] = 0xFC;
    adts.extend_from_slice(frame);
    let cc = first[3] & 0x0F;
    let mut out = Vec::new();
    for i in 0..silence.count {
        let pts = moved(0, silence.from + i64::from(i) * silence.step);
        // The inserted packets count up to the real first packet's continuity counter.
        let counter = (cc + 16 - ((silence.count - i) % 16) as u8) % 16;
        out.extend_from_slice(&pes_packet(first, counter, first[at + 3], pts, &adts));
    }
    out
}

/// One TS packet holding a whole PES with `payload`, stuffed to 188 bytes.
fn pes_packet(like: &[u8], counter: u8, stream_id: u8, pts: u64, payload: &[u8]) -> [u8; PACKET] {
    let mut pes = vec![0, 0, 1, stream_id];
    pes.extend_from_slice(&((3 + 5 + payload.len()) as u16).to_be_bytes());
    pes.extend_from_slice(&[0x80, 0x80, 5, 0x21, 0, 1, 0, 1]);
    tsscan::write_timestamp(&mut pes[9..14], pts);
    pes.extend_from_slice(payload);
    let mut p = [0xFFu8; PACKET];
    p[0] = SYNC;
    p[1] = 0x40 | (like[1] & 0x1F); // payload unit start, the stream's PID
    p[2] = like[2];
    p[3] = 0x30 | counter; // adaptation field (stuffing) and payload
    let stuffing = PACKET - 4 - pes.len();
    p[4] = (stuffing - 1) as u8;
    if stuffing > 1 {
        p[5] = 0; // no flags
    }
    p[PACKET - pes.len()..].copy_from_slice(&pes);
    p
}

/// A raw 33-bit timestamp moved by `offset` ticks, wrapped.
fn moved(raw: u64, offset: i64) -> u64 {
    (raw as i64 + offset).rem_euclid(PTS_WRAP as i64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: i64, last: i64, step: i64) -> Option<Span> {
        Some(Span {
            first,
            last,
            step: Some(step),
        })
    }

    /// A 2 s segment at 15 fps (6000 ticks a frame) starting at `at`, with AAC at 48 kHz
    /// (1920 ticks a packet) starting `sound_lead` ticks before the video.
    fn seg(at: i64, sound_lead: i64) -> Slot {
        Slot::Segment(SegmentTimes {
            video: span(at, at + 29 * 6_000, 6_000),
            sound: span(at - sound_lead, at + 180_000 - 1_920, 1_920),
            video_frames: 30,
            anchor: Some((at as u64, at)),
        })
    }

    /// A missing or corrupt 2 s segment, as long as the catalog says.
    const HOLE: Slot = Slot::Hole { ticks: 180_000 };

    #[test]
    fn a_missing_segment_is_a_gap_of_its_length_and_the_next_keeps_its_place() {
        let base = 324_000_000;
        let t = plan(&[
            seg(base, 0),
            HOLE,
            seg(base + 360_000, 0),
            seg(base + 540_000, 0),
        ]);
        assert!(t.placements.iter().all(|p| p.offset == 0), "{t:?}");
        assert_eq!(t.placements.len(), 3, "one placement per segment there");
        assert_eq!(t.runs, 1, "one capture: the hole is no pause");
        assert_eq!(
            t.gaps,
            vec![Gap {
                slots: 1..2,
                start: 180_000,
                ticks: 180_000,
                inside: true
            }]
        );
        assert_eq!(t.duration_ms(), 8_000, "real time: the hole counts");
        assert_eq!(t.video_frames, 90);
        // The sound goes on in silence across it: 2 s in 1920-tick packets, to the nearest one.
        assert_eq!(
            t.placements[1].silence,
            Some(Silence {
                from: base + 180_000,
                count: 94,
                step: 1_920
            })
        );
    }

    #[test]
    fn holes_in_a_row_are_one_gap_and_a_cut_a_frame_off_is_still_the_same_capture() {
        let base = 324_000_000;
        // The catalog's lengths are cut to cut in ms: the next frame may come a frame early.
        let t = plan(&[seg(base, 0), HOLE, HOLE, seg(base + 540_000 - 6_000, 0)]);
        assert!(t.placements.iter().all(|p| p.offset == 0), "{t:?}");
        assert_eq!(t.gaps.len(), 1);
        assert_eq!(t.gaps[0].slots, 1..3);
        assert_eq!(t.gaps[0].ticks, 360_000 - 6_000, "the capture's own clock");
    }

    #[test]
    fn a_hole_before_a_pause_keeps_its_recorded_length() {
        let base = 324_000_000;
        // The segment after the hole is a new capture (its clock from the base again).
        let t = plan(&[seg(base, 0), HOLE, seg(base + 3_000, 0)]);
        assert_eq!(t.runs, 2);
        assert_eq!(
            base + 3_000 + t.placements[1].offset,
            base + 360_000,
            "after the previous run's end and the hole's recorded length"
        );
        assert_eq!(t.gaps[0].start, 180_000);
        assert_eq!(t.gaps[0].ticks, 180_000);
        assert_eq!(t.duration_ms(), 6_000);
    }

    #[test]
    fn holes_at_either_end_are_named_but_not_in_the_mp4() {
        let base = 324_000_000;
        let t = plan(&[HOLE, seg(base, 0), seg(base + 180_000, 0), HOLE]);
        assert_eq!(
            t.duration_ms(),
            4_000,
            "the MP4 starts and ends with a segment"
        );
        let at_ends: Vec<_> = t.gaps.iter().map(|g| (g.start, g.inside)).collect();
        assert_eq!(at_ends, vec![(0, false), (360_000, false)]);
        assert_eq!(t.gaps[1].slots, 3..4);
    }

    #[test]
    fn one_capture_keeps_its_own_timestamps() {
        let base = 324_000_000;
        let t = plan(&[seg(base, 0), seg(base + 180_000, 0), seg(base + 360_000, 0)]);
        assert!(t.placements.iter().all(|p| p.offset == 0), "{t:?}");
        assert_eq!(t.runs, 1);
        assert_eq!(t.duration_ms(), 6_000);
        assert_eq!(t.frame_ms(), 67);
        assert_eq!(t.video_frames, 90);
    }

    #[test]
    fn a_pause_is_absent_not_a_hole() {
        let base = 324_000_000;
        // Second capture: a new pipeline, its clock from the muxer's base again.
        let t = plan(&[seg(base, 0), seg(base + 180_000, 0), seg(base + 3_000, 900)]);
        assert_eq!(t.runs, 2);
        let third = t.placements[2];
        assert_eq!(
            base + 3_000 + third.offset,
            base + 360_000,
            "the run starts one frame after the last frame before the pause"
        );
        // Its sound starts 900 ticks before its video: those packets fall under the floor.
        assert_eq!(third.sound_floor, Some(base + 360_000 - 960));
        assert_eq!(t.duration_ms(), 6_000);
        // A stretch captured for other recordings only: a jump forward, closed the same way.
        let t = plan(&[seg(base, 0), seg(base + 900_000, 0)]);
        assert_eq!(t.runs, 2);
        assert_eq!(t.placements[1].offset, 180_000 - 900_000);
        assert_eq!(t.duration_ms(), 4_000);
    }

    #[test]
    fn a_late_sound_start_after_a_pause_is_filled_with_silence() {
        let base = 324_000_000;
        // The second run's sound starts 3 packets (5760 ticks) after its video.
        let t = plan(&[seg(base, 0), seg(base + 3_000, -5_760)]);
        let second = t.placements[1];
        assert_eq!(
            second.silence,
            Some(Silence {
                from: base + 180_000,
                count: 3,
                step: 1_920
            })
        );
        assert_eq!(silence_between(100, 100 + 959, 1_920), None);
        assert_eq!(
            silence_between(100, 100 + 960, 1_920).map(|s| s.count),
            Some(1)
        );
    }

    #[test]
    fn silent_packets_are_whole_pes_with_the_streams_header() {
        // A sound PES of PID 0x42 with an ADTS header: LC, 44.1 kHz, stereo.
        let mut first = [0xFFu8; PACKET];
        first[..4].copy_from_slice(&[SYNC, 0x40, 0x42, 0x15]);
        first[4..18].copy_from_slice(&[0, 0, 1, 0xC0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1]);
        first[18..25].copy_from_slice(&[0xFF, 0xF1, 0x50, 0x80, 0x2E, 0x7F, 0xFC]);
        let silence = Silence {
            from: 324_000_000,
            count: 2,
            step: 1_920,
        };
        let out = silent_packets(&first, 4, silence);
        assert_eq!(out.len(), 2 * PACKET);
        let starts = tsscan::pes_starts(&out);
        assert_eq!(
            starts.iter().map(|s| (s.pid, s.pts)).collect::<Vec<_>>(),
            vec![(0x42, 324_000_000), (0x42, 324_001_920)]
        );
        assert_eq!(out[3] & 0x0F, 3, "counts up to the real packet's counter 5");
        assert_eq!(out[PACKET + 3] & 0x0F, 4);
        assert!(out.ends_with(&SILENT_AAC_STEREO));
        let adts = &out[PACKET - 14..PACKET - 7];
        assert_eq!(usize::from(adts[4]) << 3 | usize::from(adts[5] >> 5), 14);
    }

    /// A TS packet starting a PES of `stream_id` on `pid` with `pts`, and a PCR when asked.
    fn packet(pid: u16, stream_id: u8, pts: u64, pcr: Option<u64>) -> Vec<u8> {
        let mut p = vec![SYNC, 0x40 | (pid >> 8) as u8, pid as u8];
        match pcr {
            Some(base) => {
                p.extend_from_slice(&[0x30, 7, 0x10, 0, 0, 0, 0, 0x7E, 0]);
                tsscan::write_pcr_base(&mut p[6..12], base);
            }
            None => p.push(0x10),
        }
        let at = p.len();
        p.extend_from_slice(&[0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1]);
        tsscan::write_timestamp(&mut p[at + 9..at + 14], pts);
        p.resize(PACKET, 0xFF);
        p
    }

    #[test]
    fn placing_moves_pts_and_pcr_and_drops_sound_under_the_floor() {
        let base = 324_000_000u64;
        let mut data = packet(0x41, 0xE0, base, Some(base - 900));
        data.extend(packet(0x42, 0xC0, base - 1_000, None));
        // The rest of that sound PES: goes with it.
        let mut rest = vec![SYNC, 0x00, 0x42, 0x11];
        rest.resize(PACKET, 0xAA);
        data.extend(&rest);
        data.extend(packet(0x42, 0xC0, base + 920, None));
        data.extend_from_slice(&[SYNC, 1, 2]); // torn tail
        let mut u = Unwrapper::default();
        let times = u.segment(&data);
        let place_at = Placement {
            offset: 500_000,
            sound_floor: Some(base as i64 + 500_000 - 10),
            silence: None,
            bridge: None,
            anchor: times.anchor,
        };
        let out = place(&data, &place_at);
        let starts = tsscan::pes_starts(&out);
        assert_eq!(
            starts.iter().map(|s| (s.pid, s.pts)).collect::<Vec<_>>(),
            vec![(0x41, base + 500_000), (0x42, base + 920 + 500_000)],
            "the first sound PES (and its continuation) is under the floor"
        );
        assert_eq!(out.len(), 2 * PACKET);
        assert_eq!(tsscan::read_pcr_base(&out[6..12]), base - 900 + 500_000);
    }

    #[test]
    fn a_gap_is_bridged_by_pcr_only_packets_up_to_the_segments_first_pcr() {
        let base = 324_000_000u64;
        let mut data = packet(0x42, 0xC0, base, None);
        data.extend(packet(0x41, 0xE0, base, Some(base - 900)));
        let place_at = Placement {
            offset: 1_000,
            sound_floor: None,
            silence: None,
            bridge: Some(180_000),
            anchor: None,
        };
        let out = place(&data, &place_at);
        let bridge: Vec<&[u8]> = out.chunks_exact(PACKET).take(20).collect();
        let pcrs: Vec<u64> = bridge
            .iter()
            .map(|p| {
                assert_eq!(tsscan::pid_of(p), 0x41, "on the PCR PID");
                assert_eq!(p[3] >> 4, 0x2, "adaptation field only, no payload");
                tsscan::read_pcr_base(&p[6..12])
            })
            .collect();
        let first = base - 900 + 1_000;
        let want: Vec<u64> = (1..=20).rev().map(|k| first - k * 9_000).collect();
        assert_eq!(pcrs, want, "every 100 ms across the 2 s gap");
        assert_eq!(out.len(), 22 * PACKET, "then the segment itself");
        assert!(tsscan::pes_starts(&out[..20 * PACKET]).is_empty());
    }

    #[test]
    fn unwrapping_reads_through_the_33_bit_wrap() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(PTS_WRAP - 10), PTS_WRAP as i64 - 10);
        assert_eq!(u.unwrap(5), PTS_WRAP as i64 + 5);
        assert_eq!(u.unwrap(PTS_WRAP - 1), PTS_WRAP as i64 - 1);
        assert_eq!(moved(PTS_WRAP - 1, 3), 2);
        assert_eq!(moved(2, -3), PTS_WRAP - 1);
    }
}
