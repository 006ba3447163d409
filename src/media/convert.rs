//! Conversion (L5): remux a recording's segments, in order, into one MP4 without re-encoding.
//!
//! Owns: the remux pipeline (`appsrc` → `tsdemux` → parsers → `mp4mux` → `filesink`), the
//! disk plan, its temp file, the check and the atomic rename. Must not touch: the capture
//! pipeline, SQLite, MQTT, the rules.
//!
//! One timeline (see `docs/media.md`): the segments are fed to one `tsdemux` as one MPEG-TS
//! stream, packet by packet, their timestamps placed by [`super::timeline`]: a capture's own
//! timestamps are kept (continuous across its cuts), and each run after a pause is moved to
//! follow the previous one by one frame. The demuxer sees no join at all. (`splitmuxsrc`, used
//! before, started each part where tsdemux said the previous one ended, measured from the
//! part's first PCR ~125 ms ahead of its first frame: a hole at every join.)
//!
//! The MP4 is written as `.<name>.part` next to `out`, fsynced, checked, renamed onto `out` and
//! the folder fsynced: `out` either does not exist or is a complete, playable file. It is a
//! fragmented MP4 (`mp4mux fragment-duration`): a short `moov` with the tracks' formats first,
//! then a fragment (`moof` + `mdat`) per keyframe of the video (0.5 s) and per 2 s of audio,
//! each with its own index, and a random-access index (`mfra`) at the end. The muxer forgets
//! each fragment's samples once it is written, so its memory does not grow with the
//! recording (a plain MP4's single index, written at the end, kept 28 bytes a sample: 186 MB
//! for 24 h); the index is first without a second pass (`faststart` copies the whole media
//! into a temp file in /tmp and again behind the index); and a reader seeks by `mfra`. So
//! conversion needs the MP4's size free next to `out`, once, and checks that before starting.
//! A segment whose file is missing or unreadable (no MPEG-TS, no timestamps, empty) in the
//! middle of a recording does not stop the conversion ([`convert_recording`]): it is a hole of
//! the length the catalog recorded for it, and the MP4 keeps real time across it (the
//! timeline's gaps): the picture holds the last frame before it, the sound is silent. The gaps
//! are returned, named by segment seq and cause. [`convert`] (every file given must read) is
//! for callers without a catalog.
//!
//! The check: the MP4 plays, has video, holds exactly every video frame of the segments, no
//! track steps by more than 1.5 of its usual sample duration anywhere but at a declared gap
//! (where it steps by the gap's length, and the video track must), and it lasts as long as
//! the timeline, gaps included, within one frame.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use tokio_util::sync::CancellationToken;

use super::pipeline::make;
use super::seal::sync_parent;
use super::timeline::{self, Placement, Slot, Timeline};
use super::tsscan::{PACKET, TICKS_PER_MS};
use super::{MediaError, MediaInfo};
use crate::protocol::{GapCause, RecordingGap};

/// How often a running conversion looks at its cancel token.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(100);
/// The longest fragment, in ms: the video's fragments end at each keyframe (every 0.5 s),
/// the audio's (all keyframes) at this length.
const FRAGMENT_MS: u32 = 2_000;
/// The fragments' index per second and per track, at most: a `moof` per fragment (about 100
/// bytes) and 16 bytes a sample (AAC at 48 kHz has 47 samples a second), with the `mfra`.
const INDEX_BYTES_PER_SEC: u64 = 1_000;
/// Counted beyond the segments' duration, so the index always fits.
const INDEX_SPARE_S: u64 = 60;
/// Free space kept beyond the MP4, for the file system's own blocks.
const SPARE_BYTES: u64 = 4 << 20;
/// Buffers multiqueue holds a stream while no other stream is empty (see [`stream_queue`]).
const QUEUED_BUFFERS: u32 = 16;
/// A step between samples above this many usual sample durations is a hole.
const MAX_STEP: f64 = 1.5;

/// One segment of a recording as the catalog lists it, for [`convert_recording`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedSegment {
    pub seq: u64,
    /// Its recorded length (the catalog's): the gap it leaves when its file cannot be used.
    pub duration_ms: u64,
    /// Its plaintext file, or why there is none to read (an encrypted one that is absent or
    /// does not decrypt).
    pub file: Result<PathBuf, GapCause>,
}

/// What [`convert_recording`] made.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    pub info: MediaInfo,
    /// The segments it could not use, in recording order: the MP4 keeps real time across each.
    pub gaps: Vec<RecordingGap>,
}

/// Remux `segments` (in order) into the MP4 `out` and return what it plays. Every file must
/// be a readable segment (see [`convert_recording`] for a recording's, with gaps). Blocking:
/// run it under `spawn_blocking`. Cancelled: the temp file is removed and `Cancelled`
/// returned. Not enough free space for the MP4: refused before anything is written
/// (`NoRoom`).
pub fn convert(
    segments: &[PathBuf],
    out: &Path,
    cancel: &CancellationToken,
) -> Result<MediaInfo, MediaError> {
    let plan = plan_files(segments)?;
    convert_planned(&plan, out, cancel)
}

/// Remux a recording's `segments` (in seq order) into the MP4 `out`, going on past segments
/// whose file is missing or corrupt: each is a gap the MP4 keeps real time across, returned
/// with the MP4's description. Fails as [`convert`] does, and when no segment can be used.
pub fn convert_recording(
    segments: &[RecordedSegment],
    out: &Path,
    cancel: &CancellationToken,
) -> Result<Converted, MediaError> {
    let plan = plan(segments)?;
    for (segment, problem) in &plan.holes {
        tracing::warn!(seq = segment.seq, cause = ?problem.cause, reason = %problem.reason,
            "a segment cannot be used; the MP4 keeps real time across it");
    }
    let info = convert_planned(&plan, out, cancel)?;
    Ok(Converted {
        info,
        gaps: plan.gaps(),
    })
}

fn convert_planned(
    plan: &Plan,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<MediaInfo, MediaError> {
    plan.check_room(out)?;
    let tmp = temp_path(out, ".part")?;
    let result = convert_via(plan, &tmp, out, cancel);
    if result.is_err() {
        remove_if_present(&tmp);
    }
    result
}

/// Why a segment is a hole.
#[derive(Debug)]
struct Problem {
    cause: GapCause,
    reason: MediaError,
}

/// The timeline of the segments, and what the MP4 will need on disk.
struct Plan {
    timeline: Timeline,
    /// The segments fed to the MP4, in order (one per placement of the timeline).
    files: Vec<PathBuf>,
    /// Every segment, in order (the timeline's slots).
    segments: Vec<RecordedSegment>,
    /// The segments that are holes, with why.
    holes: Vec<(RecordedSegment, Problem)>,
    segment_bytes: u64,
    tracks: u64,
}

/// [`plan`] for files that must all be readable segments: the first that is not is the error.
fn plan_files(files: &[PathBuf]) -> Result<Plan, MediaError> {
    let segments: Vec<RecordedSegment> = files
        .iter()
        .enumerate()
        .map(|(seq, path)| RecordedSegment {
            seq: seq as u64,
            duration_ms: 0,
            file: Ok(path.clone()),
        })
        .collect();
    let mut plan = plan(&segments)?;
    if plan.holes.is_empty() {
        return Ok(plan);
    }
    Err(plan.holes.swap_remove(0).1.reason)
}

/// Read every segment's timestamps (a segment is a few MB at most) and place them; a segment
/// that cannot be read is a hole of its recorded length.
fn plan(segments: &[RecordedSegment]) -> Result<Plan, MediaError> {
    super::init()?;
    if segments.is_empty() {
        return Err(MediaError::Settings("no segments to convert".into()));
    }
    let mut unwrapper = timeline::Unwrapper::default();
    let mut slots = Vec::with_capacity(segments.len());
    let mut files = Vec::with_capacity(segments.len());
    let mut holes = Vec::new();
    let mut segment_bytes = 0;
    let mut tracks = 0;
    for segment in segments {
        match read_times(segment, &mut unwrapper) {
            Ok((path, data, times)) => {
                segment_bytes += data.len() as u64;
                tracks = tracks.max(super::tsscan::pes_pids(&data));
                slots.push(Slot::Segment(times));
                files.push(path);
            }
            Err(problem) => {
                let ticks = segment.duration_ms.saturating_mul(TICKS_PER_MS);
                slots.push(Slot::Hole {
                    ticks: i64::try_from(ticks).unwrap_or(i64::MAX),
                });
                holes.push((segment.clone(), problem));
            }
        }
    }
    let timeline = timeline::plan(&slots);
    if timeline.video_frames == 0 {
        // Nothing usable at all: the first segment's own problem says it best.
        return Err(match holes.drain(..).next() {
            Some((_, problem)) if files.is_empty() => problem.reason,
            _ => MediaError::Check(
                "the segments hold no video frame; there is nothing to convert".into(),
            ),
        });
    }
    Ok(Plan {
        timeline,
        files,
        segments: segments.to_vec(),
        holes,
        segment_bytes,
        tracks: tracks.max(1) as u64,
    })
}

/// One segment's file, bytes and timestamps, or why it is a hole.
fn read_times(
    segment: &RecordedSegment,
    unwrapper: &mut timeline::Unwrapper,
) -> Result<(PathBuf, Vec<u8>, timeline::SegmentTimes), Problem> {
    let path = match &segment.file {
        Ok(path) => path,
        Err(cause) => {
            return Err(Problem {
                cause: *cause,
                reason: MediaError::Check(format!("segment {} has no file to read", segment.seq)),
            })
        }
    };
    let corrupt = |message: &str| Problem {
        cause: GapCause::Corrupt,
        reason: MediaError::Probe {
            path: path.clone(),
            message: message.into(),
        },
    };
    let data = std::fs::read(path).map_err(|e| Problem {
        cause: match e.kind() {
            std::io::ErrorKind::NotFound => GapCause::Missing,
            _ => GapCause::Corrupt,
        },
        reason: MediaError::io(path, e),
    })?;
    if data.first() != Some(&super::tsscan::SYNC) {
        return Err(corrupt(
            "not an MPEG-TS segment (no sync byte at its start)",
        ));
    }
    let times = unwrapper.segment(&data);
    if times.video.is_none() && times.sound.is_none() {
        return Err(corrupt("an MPEG-TS segment without a timestamp"));
    }
    Ok((path.clone(), data, times))
}

impl Plan {
    /// The timeline's gaps as the event names them: one per run of holes of one cause, each
    /// its recorded length but the last of a gap, which ends where the next segment starts.
    fn gaps(&self) -> Vec<RecordingGap> {
        let cause_of = |i: usize| {
            let seq = self.segments[i].seq;
            self.holes
                .iter()
                .find(|(s, _)| s.seq == seq)
                .map_or(GapCause::Corrupt, |(_, p)| p.cause)
        };
        let mut named = Vec::new();
        for gap in &self.timeline.gaps {
            let mut start_ms = gap.start.max(0) as u64 / TICKS_PER_MS;
            let end_ms = start_ms + gap.ticks.max(0) as u64 / TICKS_PER_MS;
            let mut i = gap.slots.start;
            while i < gap.slots.end {
                let cause = cause_of(i);
                let j = (i..gap.slots.end)
                    .find(|&j| cause_of(j) != cause)
                    .unwrap_or(gap.slots.end);
                let left = end_ms.saturating_sub(start_ms);
                let duration_ms = if j == gap.slots.end {
                    left
                } else {
                    let recorded: u64 = self.segments[i..j].iter().map(|s| s.duration_ms).sum();
                    recorded.min(left)
                };
                named.push(RecordingGap {
                    seqs: self.segments[i..j].iter().map(|s| s.seq).collect(),
                    start_ms,
                    duration_ms,
                    cause,
                });
                start_ms += duration_ms;
                i = j;
            }
        }
        named
    }

    /// What the MP4 may take at most: its media is the segments' minus the TS packaging,
    /// plus the fragments' index.
    fn bytes_needed(&self) -> u64 {
        let seconds = self.timeline.duration_ms() / 1000 + INDEX_SPARE_S;
        self.segment_bytes + seconds * INDEX_BYTES_PER_SEC * self.tracks + SPARE_BYTES
    }

    /// Refuse at once when the folder of `out` has less free space than the MP4 needs.
    fn check_room(&self, out: &Path) -> Result<(), MediaError> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let free = crate::segments::free_bytes(dir).map_err(|e| MediaError::io(dir, e))?;
        let needed = self.bytes_needed();
        if free >= needed {
            return Ok(());
        }
        Err(MediaError::NoRoom {
            dir: dir.to_path_buf(),
            needed_mib: needed.div_ceil(1 << 20),
            free_mib: free >> 20,
        })
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
/// `.<name><suffix>` next to `out`.
fn temp_path(out: &Path, suffix: &str) -> Result<PathBuf, MediaError> {
    let name = out.file_name().ok_or_else(|| {
        MediaError::Settings(format!("output {} must name a file", out.display()))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(suffix);
    Ok(out.with_file_name(tmp_name))
}

fn remove_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the temp file");
        }
        _ => {}
    }
}

fn convert_via(
    plan: &Plan,
    tmp: &Path,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<MediaInfo, MediaError> {
    // Remuxing reads and writes at disk speed; the bound only catches a stuck pipeline.
    let limit = Duration::from_secs(120) + Duration::from_millis(plan.timeline.duration_ms() / 10);
    remux(plan, tmp, cancel, limit)?;
    let file = std::fs::File::open(tmp).map_err(|e| MediaError::io(tmp, e))?;
    file.sync_all().map_err(|e| MediaError::io(tmp, e))?;
    let info = check(tmp, &plan.timeline)?;
    if cancel.is_cancelled() {
        return Err(MediaError::Cancelled);
    }
    std::fs::rename(tmp, out).map_err(|e| MediaError::io(out, e))?;
    sync_parent(out)?;
    tracing::info!(
        out = %out.display(),
        duration_ms = info.duration_ms,
        runs = plan.timeline.runs,
        gaps = plan.timeline.gaps.len(),
        "conversion done"
    );
    Ok(info)
}

/// The MP4 must play, hold video, hold every video frame of its segments, have no hole in
/// any track but the declared gaps (each of which the video shows), and last as long as the
/// timeline within one frame.
fn check(path: &Path, expected: &Timeline) -> Result<MediaInfo, MediaError> {
    // The index, not the Discoverer: see `mp4scan`'s header (memory).
    let index = super::mp4scan::index(path)?
        .ok_or_else(|| MediaError::Check("the MP4 has no index (moov box)".into()))?;
    let info = index.media_info();
    if info.video.is_none() {
        return Err(MediaError::Check("the MP4 has no video stream".into()));
    }
    let frames = index.video_samples();
    // With two video streams (D3) the content stream's very first frame, when it precedes the
    // camera's first, does not reach the MP4 (tsdemux or mp4mux drops it; 211 of 212 seen):
    // one frame per extra stream at the start, never at a join.
    let extra_streams = index.video_tracks().saturating_sub(1);
    if frames > expected.video_frames || frames + extra_streams < expected.video_frames {
        return Err(MediaError::Check(format!(
            "the MP4 holds {frames} video frames but its segments {}",
            expected.video_frames
        )));
    }
    let gaps: Vec<&timeline::Gap> = expected.gaps.iter().filter(|g| g.inside).collect();
    for track in &index.tracks {
        check_steps(track, &gaps, expected.frame_ticks)?;
    }
    let (mp4_ms, want_ms) = (index.duration_ms, expected.duration_ms());
    if mp4_ms.abs_diff(want_ms) > expected.frame_ms() {
        return Err(MediaError::Check(format!(
            "the MP4 plays {mp4_ms} ms but its segments hold {want_ms} ms (one frame is {} ms)",
            expected.frame_ms()
        )));
    }
    Ok(info)
}

/// A step between two samples of `track` above [`MAX_STEP`] usual durations is allowed only
/// where it ends at a declared gap's end (within a frame and a sample, the tracks' starts may
/// differ by that) and lasts no more than the gap and a sample; a video track must step at
/// every gap by the gap's length and a frame, within half a frame.
fn check_steps(
    track: &super::mp4scan::Track,
    gaps: &[&timeline::Gap],
    frame_ticks: i64,
) -> Result<(), MediaError> {
    let Some(usual) = track.usual_duration() else {
        return Ok(());
    };
    // Track time in 90 kHz ticks, the timeline's.
    let ticks = |t: u64| (t * 90_000 / u64::from(track.timescale.max(1))) as i64;
    let ms = |t: i64| t / TICKS_PER_MS as i64;
    let usual_ticks = ticks(u64::from(usual));
    let steps: Vec<(i64, i64)> = track
        .steps_over(MAX_STEP)
        .iter()
        .map(|s| (ticks(s.start), ticks(s.duration)))
        .collect();
    let slack = frame_ticks + usual_ticks;
    for &(start, step) in &steps {
        let declared = gaps.iter().any(|g| {
            (start + step - (g.start + g.ticks)).abs() <= slack && step <= g.ticks + slack
        });
        if !declared {
            return Err(MediaError::Check(format!(
                "the MP4's {} track jumps {} ms at {} ms where its samples last {} ms",
                track.kind(),
                ms(step),
                ms(start),
                ms(usual_ticks)
            )));
        }
    }
    if &track.handler == b"vide" {
        // A gap shorter than half a frame is no step to see.
        for g in gaps.iter().filter(|g| g.ticks * 2 > frame_ticks) {
            let shown = steps.iter().any(|&(start, step)| {
                (start + step - (g.start + g.ticks)).abs() <= slack
                    && (step - g.ticks - frame_ticks).abs() <= frame_ticks / 2
            });
            if !shown {
                return Err(MediaError::Check(format!(
                    "the MP4's video does not keep the {} ms gap at {} ms",
                    ms(g.ticks),
                    ms(g.start)
                )));
            }
        }
    }
    Ok(())
}

/// Run the remux pipeline to EOS, an error, cancellation or `limit`.
fn remux(
    plan: &Plan,
    tmp: &Path,
    cancel: &CancellationToken,
    limit: Duration,
) -> Result<(), MediaError> {
    let pipeline = build_remux(plan, tmp, cancel)?;
    let result = run_to_eos(&pipeline, cancel, limit);
    // Null closes the file whatever happened, so it can be removed or renamed.
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn build_remux(
    plan: &Plan,
    tmp: &Path,
    cancel: &CancellationToken,
) -> Result<gst::Pipeline, MediaError> {
    let perr = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
    let pipeline = gst::Pipeline::with_name("convert");
    let src = ts_appsrc()?;
    let demux = make("tsdemux")?;
    let queue = stream_queue()?;
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    // Fragmented: the muxer's memory stays flat (see the module header).
    mux.set_property("fragment-duration", FRAGMENT_MS);
    sink.set_property("location", tmp.to_string_lossy().as_ref());
    pipeline
        .add_many([&src, &demux, &queue, &mux, &sink])
        .map_err(|e| perr(&e))?;
    src.link(&demux).map_err(|e| perr(&e))?;
    mux.link(&sink).map_err(|e| perr(&e))?;
    feed(&src, &plan.files, &plan.timeline.placements, cancel);

    let weak_pipeline = pipeline.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak_pipeline.upgrade() else {
            return;
        };
        if let Err(e) = link_stream(&pipeline, pad, &queue, &mux) {
            // Posted on the bus, so `run_to_eos` reports it.
            tracing::error!(error = %e, "cannot link a stream of the segments");
            let msg =
                gst::message::Error::builder(gst::CoreError::Negotiation, &e.to_string()).build();
            let _ = pipeline.post_message(msg);
        }
    });
    Ok(pipeline)
}

/// An `appsrc` that gives `segments` (in order) as one MPEG-TS stream placed on the recording's
/// timeline exactly as the MP4 is (paused time absent), for a reader of a recording other than
/// the MP4 (the transcriber of a cloud recording). Link it to a `tsdemux`.
pub fn recording_source(
    segments: &[PathBuf],
    cancel: &CancellationToken,
) -> Result<gst::Element, MediaError> {
    let plan = plan_files(segments)?;
    let src = ts_appsrc()?;
    feed(&src, &plan.files, &plan.timeline.placements, cancel);
    Ok(src)
}

/// The raw 33-bit PTS (90 kHz) of a segment's first video frame, or of its first packet of any
/// kind without video: what a subtitle segment's `X-TIMESTAMP-MAP` ties its cues to.
pub fn segment_first_pts(segment: &Path) -> Result<Option<u64>, MediaError> {
    let data = std::fs::read(segment).map_err(|e| MediaError::io(segment, e))?;
    let starts = super::tsscan::pes_starts(&data);
    Ok(starts
        .iter()
        .find(|p| p.is_video())
        .or(starts.first())
        .map(|p| p.pts))
}

fn ts_appsrc() -> Result<gst::Element, MediaError> {
    let src = make("appsrc")?;
    let caps = gst::Caps::builder("video/mpegts")
        .field("systemstream", true)
        .field("packetsize", PACKET as i32)
        .build();
    src.set_property("caps", &caps);
    src.set_property_from_str("format", "bytes");
    Ok(src)
}

/// What `appsrc` is fed: the next segment, placed on the timeline, each time it asks.
struct Feeder {
    next: usize,
    segments: Vec<(PathBuf, Placement)>,
    cancel: CancellationToken,
}

impl Feeder {
    /// The next segment's packets; `None` at the end (or once cancelled).
    fn next_chunk(&mut self) -> Option<Result<Vec<u8>, MediaError>> {
        if self.cancel.is_cancelled() {
            return None;
        }
        let (path, placement) = self.segments.get(self.next)?;
        self.next += 1;
        Some(
            std::fs::read(path)
                .map(|data| timeline::place(&data, placement))
                .map_err(|e| MediaError::io(path, e)),
        )
    }
}

/// Feed `src` one placed segment per `need-data`, then end the stream.
fn feed(
    src: &gst::Element,
    segments: &[PathBuf],
    placements: &[Placement],
    cancel: &CancellationToken,
) {
    let feeder = Arc::new(Mutex::new(Feeder {
        next: 0,
        segments: segments
            .iter()
            .cloned()
            .zip(placements.iter().copied())
            .collect(),
        cancel: cancel.clone(),
    }));
    src.connect("need-data", false, move |args| {
        let src = args[0].get::<gst::Element>().ok()?;
        // need-data comes from appsrc's one streaming thread: the lock is never contended.
        let chunk = feeder.lock().ok().and_then(|mut f| f.next_chunk());
        match chunk {
            Some(Ok(bytes)) => {
                let _ = src.emit_by_name::<gst::FlowReturn>(
                    "push-buffer",
                    &[&gst::Buffer::from_mut_slice(bytes)],
                );
            }
            Some(Err(e)) => {
                let msg = gst::message::Error::builder(gst::ResourceError::Read, &e.to_string())
                    .src(&src)
                    .build();
                let _ = src.post_message(msg);
            }
            None => {
                let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
            }
        }
        None
    });
}

/// The queue between tsdemux and the parsers: one `multiqueue` for all streams.
///
/// mp4mux takes the earliest buffer of all its pads, so it waits while any stream has
/// nothing, and one stream may run ahead of another by as long as the other has nothing (the
/// start of a run, a declared gap the picture holds across). A queue per stream had to be
/// big enough for that on its own (64 MB each), and as tsdemux outruns mp4mux and the file,
/// it was always nearly full: 74 MB of heap for any recording of more than a few minutes.
/// multiqueue holds [`QUEUED_BUFFERS`] a stream, and lets a full stream grow only while
/// another one is empty (what decodebin does), up to the same 64 MB: the wait is covered and
/// the steady state costs almost nothing.
fn stream_queue() -> Result<gst::Element, MediaError> {
    let mq = make("multiqueue")?;
    mq.set_property("max-size-buffers", QUEUED_BUFFERS);
    mq.set_property("max-size-time", 0u64);
    mq.set_property("max-size-bytes", 64u32 << 20);
    Ok(mq)
}

/// tsdemux → multiqueue → parser (so mp4mux gets the stream format it needs) → a new mp4mux
/// pad.
fn link_stream(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    queue: &gst::Element,
    mux: &gst::Element,
) -> Result<(), MediaError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let kind = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let (parser, mux_pad) = match kind.as_str() {
        "video/x-h264" => ("h264parse", "video_%u"),
        "audio/x-opus" => ("opusparse", "audio_%u"),
        "audio/mpeg" => ("aacparse", "audio_%u"),
        other => {
            return Err(MediaError::Pipeline(format!(
                "segments hold a {other:?} stream ({}), which conversion does not handle",
                pad.name()
            )))
        }
    };
    let perr = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
    let queue_in = queue
        .request_pad_simple("sink_%u")
        .ok_or_else(|| MediaError::Pipeline("multiqueue gave no sink pad".into()))?;
    // multiqueue pairs each `sink_N` with the `src_N` it creates beside it.
    let out_name = queue_in.name().replacen("sink", "src", 1);
    let queue_out = queue
        .static_pad(&out_name)
        .ok_or_else(|| MediaError::Pipeline(format!("multiqueue has no {out_name}")))?;
    let parser = make(parser)?;
    pipeline.add(&parser).map_err(|e| perr(&e))?;
    let parser_in = parser
        .static_pad("sink")
        .ok_or_else(|| MediaError::Pipeline("parser without sink pad".into()))?;
    queue_out.link(&parser_in).map_err(|e| perr(&e))?;
    parser
        .link_pads(Some("src"), mux, Some(mux_pad))
        .map_err(|e| perr(&e))?;
    pad.link(&queue_in).map_err(|e| perr(&e))?;
    parser.sync_state_with_parent().map_err(|e| perr(&e))?;
    Ok(())
}

fn run_to_eos(
    pipeline: &gst::Pipeline,
    cancel: &CancellationToken,
    limit: Duration,
) -> Result<(), MediaError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Pipeline("pipeline has no bus".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| MediaError::Pipeline("the conversion pipeline refused to start".into()))?;
    let deadline = Instant::now() + limit;
    loop {
        if cancel.is_cancelled() {
            return Err(MediaError::Cancelled);
        }
        if Instant::now() >= deadline {
            return Err(MediaError::Timeout {
                seconds: limit.as_secs(),
                doing: "converting segments to MP4",
            });
        }
        let types = [gst::MessageType::Eos, gst::MessageType::Error];
        let Some(msg) = bus.timed_pop_filtered(POLL, &types) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => {
                let text = format!("{} ({})", e.error(), e.debug().unwrap_or_default());
                if e.error().matches(gst::ResourceError::NoSpaceLeft) {
                    return Err(MediaError::DiskFull(text));
                }
                return Err(MediaError::Pipeline(text));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_file_is_hidden_next_to_the_output() {
        let t = temp_path(Path::new("/save/rec-1.mp4"), ".part").unwrap();
        assert_eq!(t, Path::new("/save/.rec-1.mp4.part"));
    }

    #[test]
    fn nothing_to_convert_is_an_error() {
        let e = convert(&[], Path::new("/tmp/x.mp4"), &CancellationToken::new()).unwrap_err();
        assert!(matches!(e, MediaError::Settings(_)), "{e}");
    }

    /// Five 1 s segments, the 2nd missing and the 3rd corrupt: one gap of the timeline.
    #[test]
    fn holes_in_a_row_of_two_causes_are_named_as_two_gaps_end_to_end() {
        let segment = |seq: u64, file: Result<PathBuf, GapCause>| RecordedSegment {
            seq,
            duration_ms: 1_000,
            file,
        };
        let hole = |seq: u64, cause: GapCause| {
            let problem = Problem {
                cause,
                reason: MediaError::Check("unusable".into()),
            };
            (segment(seq, Err(cause)), problem)
        };
        let plan = Plan {
            timeline: Timeline {
                placements: Vec::new(),
                video_ticks: 5 * 90_000,
                frame_ticks: 6_000,
                video_frames: 45,
                runs: 1,
                gaps: vec![timeline::Gap {
                    slots: 1..3,
                    start: 90_000,
                    ticks: 183_000,
                    inside: true,
                }],
            },
            files: Vec::new(),
            segments: (1..=5)
                .map(|seq| segment(seq, Err(GapCause::Corrupt)))
                .collect(),
            holes: vec![hole(2, GapCause::Missing), hole(3, GapCause::Corrupt)],
            segment_bytes: 0,
            tracks: 2,
        };
        let named = plan.gaps();
        let gap = |seqs: Vec<u64>, start_ms, duration_ms, cause| RecordingGap {
            seqs,
            start_ms,
            duration_ms,
            cause,
        };
        assert_eq!(
            named,
            vec![
                gap(vec![2], 1_000, 1_000, GapCause::Missing),
                // The last of a gap ends where the next segment starts.
                gap(vec![3], 2_000, 1_033, GapCause::Corrupt),
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_a_segment_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000001.ts");
        std::fs::write(&seg, b"not a transport stream").unwrap();
        let e = convert(
            std::slice::from_ref(&seg),
            &dir.path().join("x.mp4"),
            &CancellationToken::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("00000001.ts"), "{e}");
    }
}
