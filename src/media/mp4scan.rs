//! What an MP4's index says: per track its kind, format, picture size or channels, sample
//! count and sample durations, and the movie's duration, read from its boxes.
//!
//! Owns: walking the file's boxes: `moov` (`mvhd`, `mvex`, and `trak/mdia` to each track's
//! `hdlr`, `mdhd` and sample table), and in a fragmented MP4 (what the conversion writes)
//! every `moof`'s track fragments (`tfhd`, `tfdt`, `trun`), one at a time, skipping the media.
//! Must not touch: the pipelines, SQLite, MQTT.
//!
//! It is also what the conversion reports of its MP4 ([`Index::media_info`]), rather than the
//! pbutils Discoverer: qtdemux, under it, builds a table of every sample (tens of bytes each,
//! some 200 MB for 24 h), where this reads the counts and the runs of durations.
//!
//! Why: the conversion check must show that the MP4 holds every frame of the segments and has
//! no hole. A duration alone cannot: a file may have the right length and still miss frames,
//! or hide a hole behind a drift elsewhere. The sample counts and the `stts` / `trun` durations
//! (a hole is a sample lasting longer than its neighbours) are exact. Between fragments, a
//! fragment's decode time (`tfdt`) that is not where the track's previous one ended is a step
//! of the previous sample, as a player (ffmpeg, which places fragments by `tfdt`) sees it.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{AudioInfo, MediaError, MediaInfo, VideoInfo};

/// `moov` is a few kB per minute; anything this large is not an MP4 roomrec wrote.
const MAX_MOOV_BYTES: u64 = 256 << 20;
/// A `moof` indexes one fragment (0.5 to 2 s); anything this large is not roomrec's.
const MAX_MOOF_BYTES: u64 = 16 << 20;

/// One track of the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Track {
    /// The handler type: `vide`, `soun`, ...
    pub handler: [u8; 4],
    /// The first sample description's format: `avc1`, `mp4a`, `Opus`, ...
    pub format: [u8; 4],
    /// A video track's picture (its sample description's width and height), else 0.
    pub width: u32,
    pub height: u32,
    /// An audio track's channel count, else 0.
    pub channels: u32,
    /// Ticks per second of the track's durations.
    pub timescale: u32,
    pub samples: u64,
    /// The samples' durations, in sample order (`stts`, or each fragment's `trun`).
    pub durations: Runs,
}

/// Sample durations as runs of samples lasting about the same: within [`SAME_WITHIN`] of the
/// run's first. A muxer that derives each duration from rounded timestamps writes 1023, 1024
/// and 1025 ticks in turn for 1024-sample AAC frames; kept exactly, that is a run a sample
/// and memory that grows with the recording (17 MB for 8 h). A run keeps its exact total, so
/// positions do not drift; a step (at least 1.5 usual durations) never joins a usual run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Runs {
    runs: Vec<Run>,
    /// The last sample's exact duration (a fragment that starts elsewhere changes it).
    last: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    count: u64,
    /// The run's first sample's duration: what the run's samples last, within 1 %.
    duration: u32,
    /// The exact sum of the run's durations.
    total: u64,
}

/// Samples whose durations differ by at most this share of a run's first are one run.
const SAME_WITHIN: u64 = 100;

impl Runs {
    /// `stts` entries: (sample count, duration of each).
    pub fn from_stts(entries: &[(u32, u32)]) -> Runs {
        let mut runs = Runs::default();
        for &(count, duration) in entries {
            runs.extend(u64::from(count), duration);
        }
        runs
    }

    /// (sample count, duration) of each run.
    #[cfg(test)]
    pub fn pairs(&self) -> Vec<(u64, u32)> {
        self.runs.iter().map(|r| (r.count, r.duration)).collect()
    }

    fn push(&mut self, duration: u32) {
        self.extend(1, duration);
    }

    fn extend(&mut self, count: u64, duration: u32) {
        if count == 0 {
            return;
        }
        let total = count * u64::from(duration);
        match self.runs.last_mut() {
            Some(r)
                if u64::from(r.duration.abs_diff(duration)) * SAME_WITHIN
                    <= u64::from(r.duration) =>
            {
                r.count += count;
                r.total += total;
            }
            _ => self.runs.push(Run {
                count,
                duration,
                total,
            }),
        }
        self.last = duration;
    }

    /// The last sample lasts `by` ticks more (or less).
    fn restep_last(&mut self, by: i64) {
        let Some(run) = self.runs.last_mut() else {
            return;
        };
        let last = self.last;
        run.count -= 1;
        run.total -= u64::from(last);
        if run.count == 0 {
            self.runs.pop();
        }
        let longer = (i64::from(last) + by).clamp(0, i64::from(u32::MAX));
        self.push(longer as u32);
    }
}

/// A step between two samples much longer than the track's usual sample duration: the
/// sample lasting it, in the track's timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// When the sample starts (decode time from the track's first sample).
    pub start: u64,
    pub duration: u64,
}

impl Track {
    /// One more sample of `duration`, after the others.
    fn push(&mut self, duration: u32) {
        self.durations.push(duration);
        self.samples += 1;
    }

    /// The last sample lasts `by` ticks more (or less): the next fragment starts elsewhere
    /// than where it ends.
    fn restep_last(&mut self, by: i64) {
        if by != 0 {
            self.durations.restep_last(by);
        }
    }

    pub fn kind(&self) -> String {
        String::from_utf8_lossy(&self.handler).into_owned()
    }

    /// The duration most samples have.
    pub fn usual_duration(&self) -> Option<u32> {
        self.durations
            .runs
            .iter()
            .max_by_key(|r| r.count)
            .map(|r| r.duration)
    }

    /// Every step between consecutive samples above `factor` times the usual duration, in
    /// order. The last sample's duration is no step (the muxer guesses it).
    pub fn steps_over(&self, factor: f64) -> Vec<Step> {
        let Some(usual) = self.usual_duration() else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        let (mut at, mut left) = (0u64, self.samples);
        for run in &self.durations.runs {
            let stepping = run.count.min(left.saturating_sub(1));
            if f64::from(run.duration) > factor * f64::from(usual) {
                // Within the run the samples last the same within 1 %: spread its total.
                let duration = run.total / run.count;
                steps.extend((0..stepping).map(|k| Step {
                    start: at + k * duration,
                    duration,
                }));
            }
            at += run.total;
            left = left.saturating_sub(run.count);
        }
        steps
    }
}

/// The index of an MP4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Index {
    /// `mvhd`: the longest track, edits included.
    pub duration_ms: u64,
    pub tracks: Vec<Track>,
}

impl Index {
    pub fn video_tracks(&self) -> u64 {
        self.tracks.iter().filter(|t| &t.handler == b"vide").count() as u64
    }

    /// What the MP4 holds, as [`super::probe`] would say it: the movie's duration, the first
    /// video and audio track's format, picture size and channels.
    pub fn media_info(&self) -> MediaInfo {
        let first = |handler: &[u8; 4]| self.tracks.iter().find(|t| &t.handler == handler);
        MediaInfo {
            duration_ms: self.duration_ms,
            video: first(b"vide").map(|t| VideoInfo {
                codec: codec_name(&t.format),
                width: t.width,
                height: t.height,
            }),
            audio: first(b"soun").map(|t| AudioInfo {
                codec: codec_name(&t.format),
                channels: t.channels,
            }),
            video_streams: self.video_tracks() as usize,
        }
    }

    /// The sample count of every video track, summed.
    pub fn video_samples(&self) -> u64 {
        self.tracks
            .iter()
            .filter(|t| &t.handler == b"vide")
            .map(|t| t.samples)
            .sum()
    }
}

/// The index of the MP4 at `path`, its fragments included. `None`: no `moov` box.
pub(crate) fn index(path: &Path) -> Result<Option<Index>, MediaError> {
    let io = |e| MediaError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut movie: Option<Movie> = None;
    // A fragment's index counts once its media (`mdat`, next) is whole in the file.
    let mut pending_moof: Option<Vec<u8>> = None;
    let mut at = 0;
    while let Some(top) = next_box(&mut file, at, len).map_err(io)? {
        match (&top.kind, movie.as_mut()) {
            (b"moov", None) if top.payload_len() <= MAX_MOOV_BYTES => {
                movie = movie_of(&read_payload(&mut file, &top).map_err(io)?);
                if movie.is_none() {
                    return Ok(None); // a `moov` that does not parse
                }
            }
            (b"moof", Some(_)) if top.payload_len() <= MAX_MOOF_BYTES => {
                pending_moof = Some(read_payload(&mut file, &top).map_err(io)?);
            }
            (b"mdat", Some(movie)) => {
                if let Some(moof) = pending_moof.take() {
                    movie.add_fragment(&moof);
                }
            }
            _ => pending_moof = None,
        }
        at += top.size;
    }
    Ok(movie.map(Movie::into_index))
}

/// A top-level box: its type, where it starts, its size and its header's.
struct TopBox {
    kind: [u8; 4],
    size: u64,
    header: u64,
}

impl TopBox {
    fn payload_len(&self) -> u64 {
        self.size - self.header
    }
}

fn read_payload(file: &mut std::fs::File, top: &TopBox) -> std::io::Result<Vec<u8>> {
    let mut payload = vec![0u8; top.payload_len() as usize];
    file.read_exact(&mut payload)?;
    Ok(payload)
}

/// The box at `at`, the file positioned at its payload. `None` at the end, or at a size that
/// leads nowhere (a corrupt or cut file: what was read so far stands).
fn next_box(file: &mut std::fs::File, at: u64, len: u64) -> std::io::Result<Option<TopBox>> {
    if at + 8 > len {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(at))?;
    let mut head = [0u8; 16];
    file.read_exact(&mut head[..8])?;
    let (size, header) = match be32(&head[..4]) {
        1 if at + 16 <= len => {
            file.read_exact(&mut head[8..])?;
            (be64(&head[8..]), 16)
        }
        1 => return Ok(None),
        0 => (len - at, 8),
        n => (u64::from(n), 8),
    };
    if size < header || at + size > len {
        return Ok(None);
    }
    let kind = [head[4], head[5], head[6], head[7]];
    Ok(Some(TopBox { kind, size, header }))
}

/// The index being read: the movie's boxes, then each fragment's samples appended.
struct Movie {
    index: Index,
    /// `mehd`: a fragmented movie's duration, in the movie's timescale.
    fragmented_duration: Option<u64>,
    timescale: u32,
    cursors: Vec<Cursor>,
}

/// Where a track's fragments have got to.
struct Cursor {
    track_id: u32,
    /// `trex`: the sample duration of a fragment that gives none.
    default_duration: u32,
    /// The decode time where the track's samples so far end; `None` before its first.
    end: Option<u64>,
}

fn movie_of(moov: &[u8]) -> Option<Movie> {
    let mvhd = child(moov, b"mvhd")?;
    // Full box (4); version 1: created, modified (8 + 8), timescale (4), duration (8);
    // version 0: the same with 4-byte times and duration.
    let (timescale, duration) = match mvhd.first()? {
        1 => (be32(mvhd.get(20..24)?), be64(mvhd.get(24..32)?)),
        _ => (be32(mvhd.get(12..16)?), u64::from(be32(mvhd.get(16..20)?))),
    };
    let mvex = child(moov, b"mvex");
    // Full box (4), then the fragment duration: 8 bytes in version 1, else 4.
    let fragmented_duration =
        mvex.and_then(|m| child(m, b"mehd"))
            .and_then(|h| match h.first()? {
                1 => Some(be64(h.get(4..12)?)),
                _ => Some(u64::from(be32(h.get(4..8)?))),
            });
    let mut tracks = Vec::new();
    let mut cursors = Vec::new();
    for (_, trak) in children(moov).filter(|(kind, _)| kind == b"trak") {
        let Some(track) = track_of(trak) else {
            continue;
        };
        let Some(track_id) = track_id(trak) else {
            continue;
        };
        let default_duration = mvex.and_then(|m| trex_duration(m, track_id)).unwrap_or(0);
        tracks.push(track);
        cursors.push(Cursor {
            track_id,
            default_duration,
            end: None,
        });
    }
    Some(Movie {
        index: Index {
            duration_ms: duration * 1000 / u64::from(timescale.max(1)),
            tracks,
        },
        fragmented_duration,
        timescale,
        cursors,
    })
}

impl Movie {
    /// Append the samples of every track fragment of a `moof` payload.
    fn add_fragment(&mut self, moof: &[u8]) {
        for (_, traf) in children(moof).filter(|(kind, _)| kind == b"traf") {
            let _ = self.add_track_fragment(traf);
        }
    }

    fn add_track_fragment(&mut self, traf: &[u8]) -> Option<()> {
        let tfhd = child(traf, b"tfhd")?;
        let flags = be32(tfhd.get(..4)?) & 0x00ff_ffff;
        let track_id = be32(tfhd.get(4..8)?);
        let i = self.cursors.iter().position(|c| c.track_id == track_id)?;
        // Optional fields in order: base data offset (8, flag 0x1), sample description
        // index (4, flag 0x2), then the default sample duration (4, flag 0x8).
        let mut at = 8;
        at += if flags & 0x1 != 0 { 8 } else { 0 };
        at += if flags & 0x2 != 0 { 4 } else { 0 };
        let default_duration = if flags & 0x8 != 0 {
            be32(tfhd.get(at..at + 4)?)
        } else {
            self.cursors[i].default_duration
        };
        let start = child(traf, b"tfdt").and_then(|t| match t.first()? {
            1 => Some(be64(t.get(4..12)?)),
            _ => Some(u64::from(be32(t.get(4..8)?))),
        });
        let (track, cursor) = (&mut self.index.tracks[i], &mut self.cursors[i]);
        if let (Some(start), Some(end)) = (start, cursor.end) {
            track.restep_last(start as i64 - end as i64);
        }
        let mut end = start.or(cursor.end).unwrap_or(0);
        for (_, trun) in children(traf).filter(|(kind, _)| kind == b"trun") {
            for duration in run_durations(trun, default_duration)? {
                track.push(duration);
                end += u64::from(duration);
            }
        }
        cursor.end = Some(end);
        Some(())
    }

    fn into_index(mut self) -> Index {
        if self.index.duration_ms == 0 {
            if let Some(d) = self.fragmented_duration {
                self.index.duration_ms = d * 1000 / u64::from(self.timescale.max(1));
            }
        }
        self.index
    }
}

/// The sample durations of a `trun` payload. Full box (4), sample count (4), then a data
/// offset (4, flag 0x1) and first sample flags (4, flag 0x4), then per sample, each present
/// by its flag: duration (0x100), size (0x200), flags (0x400), composition offset (0x800).
fn run_durations(trun: &[u8], default_duration: u32) -> Option<Vec<u32>> {
    let flags = be32(trun.get(..4)?) & 0x00ff_ffff;
    let count = be32(trun.get(4..8)?) as usize;
    let mut at = 8;
    at += if flags & 0x1 != 0 { 4 } else { 0 };
    at += if flags & 0x4 != 0 { 4 } else { 0 };
    let per_sample = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    if per_sample != 0 && trun.len() < at + count * per_sample {
        return None;
    }
    Some(
        (0..count)
            .map(|k| {
                if flags & 0x100 != 0 {
                    be32(&trun[at + k * per_sample..])
                } else {
                    default_duration
                }
            })
            .collect(),
    )
}

/// `tkhd`'s track id: after the full box (4) and the creation and modification times (8 or
/// 16 bytes by version).
fn track_id(trak: &[u8]) -> Option<u32> {
    let tkhd = child(trak, b"tkhd")?;
    match tkhd.first()? {
        1 => Some(be32(tkhd.get(20..24)?)),
        _ => Some(be32(tkhd.get(12..16)?)),
    }
}

/// The default sample duration `trex` gives the track: full box (4), track id (4), sample
/// description index (4), then the duration.
fn trex_duration(mvex: &[u8], track_id: u32) -> Option<u32> {
    children(mvex)
        .filter(|(kind, _)| kind == b"trex")
        .find(|(_, t)| t.get(4..8).map(be32) == Some(track_id))
        .and_then(|(_, t)| t.get(12..16).map(be32))
}

fn track_of(trak: &[u8]) -> Option<Track> {
    let mdia = child(trak, b"mdia")?;
    let hdlr = child(mdia, b"hdlr")?;
    // Full box: version and flags (4), pre_defined (4), then the handler type.
    let handler: [u8; 4] = hdlr.get(8..12)?.try_into().ok()?;
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = match mdhd.first()? {
        1 => be32(mdhd.get(20..24)?),
        _ => be32(mdhd.get(12..16)?),
    };
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    let entry = sample_entry(child(stbl, b"stsd")?)?;
    let format: [u8; 4] = entry.get(4..8)?.try_into().ok()?;
    // Sample entries (ISO/IEC 14496-12 12.1.3, 12.2.3), from the entry's own size field:
    // visual: width and height (16 bits each) at 32; audio: channel count (16 bits) at 24.
    let u16_at = |at: usize| {
        entry
            .get(at..at + 2)
            .map(|b| u32::from(b[0]) << 8 | u32::from(b[1]))
    };
    let (width, height, channels) = match &handler {
        b"vide" => (u16_at(32)?, u16_at(34)?, 0),
        b"soun" => (0, 0, u16_at(24)?),
        _ => (0, 0, 0),
    };
    // Full box (4), sample_size (4), sample_count (4).
    let samples = u64::from(be32(child(stbl, b"stsz")?.get(8..12)?));
    // Full box (4), entry_count (4), then (sample_count, sample_delta) pairs.
    let stts = child(stbl, b"stts")?;
    let entries = be32(stts.get(4..8)?) as usize;
    let entries = (0..entries)
        .map(|i| {
            let e = stts.get(8 + i * 8..16 + i * 8)?;
            Some((be32(&e[..4]), be32(&e[4..])))
        })
        .collect::<Option<Vec<_>>>()?;
    let durations = Runs::from_stts(&entries);
    Some(Track {
        handler,
        format,
        width,
        height,
        channels,
        timescale,
        samples,
        durations,
    })
}

/// The first sample entry of an `stsd` payload, its size and type included: full box (4),
/// entry count (4), then the entries.
fn sample_entry(stsd: &[u8]) -> Option<&[u8]> {
    let rest = stsd.get(8..)?;
    let size = usize::try_from(be32(rest.get(..4)?)).ok()?;
    rest.get(..size)
}

/// The caps name GStreamer gives a sample format (what the Discoverer reported before).
fn codec_name(format: &[u8; 4]) -> String {
    match format {
        b"avc1" | b"avc3" => "video/x-h264".into(),
        b"mp4a" => "audio/mpeg".into(),
        b"Opus" => "audio/x-opus".into(),
        other => format!("unknown/{}", String::from_utf8_lossy(other)),
    }
}

/// The first child box of that type.
fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(parent).find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// The child boxes of a container's payload, as (type, payload); stops at a corrupt size.
fn children(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = usize::try_from(be32(data.get(..4)?)).ok()?;
        let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        if size < 8 || size > data.len() {
            return None;
        }
        let payload = &data[8..size];
        data = &data[size..];
        Some((kind, payload))
    })
}

fn be32(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |acc, x| acc << 8 | u32::from(*x))
}

fn be64(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0, |acc, x| acc << 8 | u64::from(*x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    fn be(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// A sample entry of `format`: a visual one 640×360, an audio one with 2 channels.
    fn entry(handler: &[u8; 4], format: &[u8; 4]) -> Vec<u8> {
        let mut body = vec![0u8; 70];
        if handler == b"vide" {
            body[24..26].copy_from_slice(&640u16.to_be_bytes());
            body[26..28].copy_from_slice(&360u16.to_be_bytes());
        } else {
            body[16..18].copy_from_slice(&2u16.to_be_bytes());
        }
        boxed(format, &body)
    }

    fn trak(handler: &[u8; 4], timescale: u32, stts: &[(u32, u32)]) -> Vec<u8> {
        trak_with_id(handler, timescale, stts, 1)
    }

    /// A version 0 `tkhd`: full box, created, modified, then the track id.
    fn tkhd(id: u32) -> Vec<u8> {
        boxed(b"tkhd", &be(&[0, 0, 0, id, 0, 0]))
    }

    fn trak_with_id(handler: &[u8; 4], timescale: u32, stts: &[(u32, u32)], id: u32) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 12]);
        let mdhd = be(&[0, 0, 0, timescale, 0, 0]);
        let samples: u32 = stts.iter().map(|(n, _)| n).sum();
        let mut stts_box = be(&[0, stts.len() as u32]);
        for (n, d) in stts {
            stts_box.extend(be(&[*n, *d]));
        }
        let stbl = boxed(
            b"stbl",
            &[
                boxed(
                    b"stsd",
                    &[be(&[0, 1]), entry(handler, format_of(handler))].concat(),
                ),
                boxed(b"stts", &stts_box),
                boxed(b"stsz", &be(&[0, 0, samples])),
            ]
            .concat(),
        );
        let minf = boxed(b"minf", &stbl);
        let mdia = boxed(
            b"mdia",
            &[boxed(b"mdhd", &mdhd), boxed(b"hdlr", &hdlr), minf].concat(),
        );
        boxed(b"trak", &[tkhd(id), mdia].concat())
    }

    fn format_of(handler: &[u8; 4]) -> &'static [u8; 4] {
        if handler == b"vide" {
            b"avc1"
        } else {
            b"mp4a"
        }
    }

    fn mp4(traks: &[Vec<u8>], duration_ms: u32) -> Vec<u8> {
        let mvhd = boxed(b"mvhd", &be(&[0, 0, 0, 1000, duration_ms]));
        let moov = boxed(b"moov", &[vec![mvhd], traks.to_vec()].concat().concat());
        [boxed(b"ftyp", b"isom"), moov, boxed(b"mdat", &[0; 32])].concat()
    }

    #[test]
    fn reads_tracks_durations_and_counts_video_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        let file = mp4(
            &[
                trak(b"vide", 90_000, &[(617, 6_000)]),
                trak(b"soun", 48_000, &[(1904, 1024)]),
                trak(b"vide", 90_000, &[(3, 6_000)]),
            ],
            41_133,
        );
        std::fs::write(&path, file).unwrap();
        let index = index(&path).unwrap().unwrap();
        assert_eq!(index.video_samples(), 620);
        assert_eq!(index.duration_ms, 41_133);
        assert_eq!(index.tracks[1].kind(), "soun");
        let info = index.media_info();
        assert_eq!(info.duration_ms, 41_133);
        assert_eq!(info.video_streams, 2);
        let video = info.video.expect("video");
        assert_eq!(
            (video.codec.as_str(), video.width, video.height),
            ("video/x-h264", 640, 360)
        );
        let audio = info.audio.expect("audio");
        assert_eq!((audio.codec.as_str(), audio.channels), ("audio/mpeg", 2));
        assert!(index.tracks.iter().all(|t| t.steps_over(1.5).is_empty()));
        std::fs::write(&path, boxed(b"mdat", &[0; 32])).unwrap();
        assert_eq!(super::index(&path).unwrap(), None);
    }

    #[test]
    fn a_step_above_one_and_a_half_samples_is_a_hole_but_not_the_last_sample() {
        let t = |stts: &[(u32, u32)]| Track {
            handler: *b"vide",
            format: *b"avc1",
            width: 640,
            height: 360,
            channels: 0,
            timescale: 90_000,
            samples: stts.iter().map(|(n, _)| u64::from(*n)).sum(),
            durations: Runs::from_stts(stts),
        };
        // The join hole splitmuxsrc left: 125 ms more than a 66.7 ms frame.
        let hole = t(&[(29, 6_000), (1, 17_250), (30, 6_000)]);
        assert_eq!(
            hole.steps_over(1.5),
            vec![Step {
                start: 29 * 6_000,
                duration: 17_250
            }]
        );
        assert_eq!(hole.usual_duration(), Some(6_000));
        assert!(t(&[(29, 6_000), (1, 8_999), (30, 6_000)])
            .steps_over(1.5)
            .is_empty());
        assert_eq!(
            t(&[(29, 6_000), (2, 9_001), (30, 6_000)]).steps_over(1.5),
            vec![
                Step {
                    start: 174_000,
                    duration: 9_001
                },
                Step {
                    start: 183_001,
                    duration: 9_001
                }
            ]
        );
        // The last sample's duration is the muxer's guess, not a step.
        assert!(t(&[(59, 6_000), (1, 60_000)]).steps_over(1.5).is_empty());
    }

    /// A fragmented MP4 as `mp4mux fragment-duration` writes it: a `moov` with empty sample
    /// tables, `mvex` (`mehd` duration in ms, a `trex` per track), then per fragment a `moof`
    /// of one `traf` and its `mdat`.
    fn fragmented(fragments: &[(u32, u64, Frag)], duration_ms: u32) -> Vec<u8> {
        let mvhd = boxed(b"mvhd", &be(&[0, 0, 0, 1000, 0]));
        let mvex = boxed(
            b"mvex",
            &[
                boxed(b"mehd", &be(&[0, duration_ms])),
                boxed(b"trex", &be(&[0, 1, 1, 6_000, 0, 0])),
                boxed(b"trex", &be(&[0, 2, 1, 1_024, 0, 0])),
            ]
            .concat(),
        );
        let traks = [
            trak_with_id(b"vide", 90_000, &[], 1),
            trak_with_id(b"soun", 48_000, &[], 2),
        ];
        let moov = boxed(
            b"moov",
            &[vec![mvhd], traks.to_vec(), vec![mvex]].concat().concat(),
        );
        let mut file = [boxed(b"ftyp", b"isom"), moov].concat();
        for (id, decode_time, frag) in fragments {
            // tfhd: flags 0x8 (a default duration) when the fragment gives one.
            let tfhd = match frag {
                Frag::Default(_, d) => boxed(b"tfhd", &be(&[0x8, *id, *d])),
                _ => boxed(b"tfhd", &be(&[0, *id])),
            };
            let mut tfdt = vec![1, 0, 0, 0];
            tfdt.extend(decode_time.to_be_bytes());
            // trun: a data offset (0x1) and, when listed, each sample's duration (0x100).
            let trun = match frag {
                Frag::Default(n, _) | Frag::Trex(n) => boxed(b"trun", &be(&[0x1, *n, 8])),
                Frag::Each(ds) => boxed(
                    b"trun",
                    &[be(&[0x101, ds.len() as u32, 8]), be(ds)].concat(),
                ),
            };
            let traf = boxed(b"traf", &[tfhd, boxed(b"tfdt", &tfdt), trun].concat());
            file.extend(boxed(
                b"moof",
                &[boxed(b"mfhd", &be(&[0, 1])), traf].concat(),
            ));
            file.extend(boxed(b"mdat", &[0; 16]));
        }
        file.extend(boxed(b"mfra", &[0; 16]));
        file
    }

    enum Frag {
        /// n samples of the `tfhd`'s duration.
        Default(u32, u32),
        /// n samples of the `trex`'s duration.
        Trex(u32),
        /// Each sample's own duration.
        Each(Vec<u32>),
    }

    #[test]
    fn a_fragmented_mp4s_samples_are_read_from_its_fragments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        let file = fragmented(
            &[
                (1, 0, Frag::Default(15, 6_000)),
                (2, 0, Frag::Each(vec![1_024; 93])),
                (1, 90_000, Frag::Trex(15)),
                // A fragment 0.5 s late: the step of the sample before it.
                (1, 225_000, Frag::Default(15, 6_000)),
            ],
            4_000,
        );
        std::fs::write(&path, file).unwrap();
        let index = index(&path).unwrap().unwrap();
        assert_eq!(index.duration_ms, 4_000, "from mehd");
        assert_eq!(index.video_samples(), 45);
        let (video, audio) = (&index.tracks[0], &index.tracks[1]);
        assert_eq!(audio.samples, 93);
        assert_eq!(audio.durations.pairs(), vec![(93, 1_024)]);
        assert!(audio.steps_over(1.5).is_empty());
        assert_eq!(
            video.durations.pairs(),
            vec![(29, 6_000), (1, 51_000), (15, 6_000)]
        );
        assert_eq!(
            video.steps_over(1.5),
            vec![Step {
                start: 29 * 6_000,
                duration: 51_000
            }]
        );
        let info = index.media_info();
        assert_eq!(info.video.map(|v| v.width), Some(640));
    }

    #[test]
    fn durations_jittering_by_a_tick_are_one_run_and_a_step_among_them_is_exact() {
        let mut jitter: Vec<u32> = (0..90).map(|i| [1_023, 1_024, 1_025][i % 3]).collect();
        jitter[60] = 2_048; // a hole of one packet after sample 60
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        std::fs::write(
            &path,
            fragmented(
                &[(2, 0, Frag::Each(jitter.clone())), (1, 0, Frag::Trex(3))],
                2_000,
            ),
        )
        .unwrap();
        let index = index(&path).unwrap().unwrap();
        let audio = &index.tracks[1];
        assert_eq!(audio.samples, 90);
        assert_eq!(
            audio.durations.pairs(),
            vec![(60, 1_023), (1, 2_048), (29, 1_024)]
        );
        assert_eq!(audio.usual_duration(), Some(1_023));
        let before: u64 = jitter[..60].iter().map(|d| u64::from(*d)).sum();
        assert_eq!(
            audio.steps_over(1.5),
            vec![Step {
                start: before,
                duration: 2_048
            }]
        );
    }

    #[test]
    fn a_cut_fragmented_mp4_keeps_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        let mut file = fragmented(
            &[
                (1, 0, Frag::Default(15, 6_000)),
                (1, 90_000, Frag::Default(15, 6_000)),
            ],
            1_000,
        );
        file.truncate(file.len() - 16 - 8 - 20);
        std::fs::write(&path, file).unwrap();
        let index = index(&path).unwrap().unwrap();
        assert_eq!(index.video_samples(), 15, "the cut fragment is not counted");
        // A `moof` without its `mdat` neither.
        let mut file = fragmented(&[(1, 0, Frag::Default(15, 6_000))], 500);
        file.truncate(file.len() - 24 - 24);
        std::fs::write(&path, file).unwrap();
        assert_eq!(super::index(&path).unwrap().unwrap().video_samples(), 0);
    }
}
