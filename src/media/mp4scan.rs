//! What an MP4's index says: per track its kind, format, picture size or channels, sample
//! count and sample durations, and the movie's duration, read from its boxes.
//!
//! Owns: walking `moov` (`mvhd`, and `trak/mdia` to each track's `hdlr`, `mdhd` and sample
//! table). Must not touch: the pipelines, SQLite, MQTT.
//!
//! It is also what the conversion reports of its MP4 ([`Index::media_info`]), rather than the
//! pbutils Discoverer: qtdemux, under it, builds a table of every sample (tens of bytes each,
//! some 200 MB for 24 h), where this reads the counts and the runs of durations.
//!
//! Why: the conversion check must show that the MP4 holds every frame of the segments and has
//! no hole. A duration alone cannot: a file may have the right length and still miss frames,
//! or hide a hole behind a drift elsewhere. The sample counts and the `stts` durations (a hole
//! is a sample lasting longer than its neighbours) are exact.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{AudioInfo, MediaError, MediaInfo, VideoInfo};

/// `moov` is a few kB per minute; anything this large is not an MP4 roomrec wrote.
const MAX_MOOV_BYTES: u64 = 256 << 20;

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
    /// `stts`: runs of (sample count, duration of each), in sample order.
    pub durations: Vec<(u32, u32)>,
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
    pub fn kind(&self) -> String {
        String::from_utf8_lossy(&self.handler).into_owned()
    }

    /// The duration most samples have.
    pub fn usual_duration(&self) -> Option<u32> {
        self.durations.iter().max_by_key(|(n, _)| *n).map(|r| r.1)
    }

    /// Every step between consecutive samples above `factor` times the usual duration, in
    /// order. The last sample's duration is no step (the muxer guesses it).
    pub fn steps_over(&self, factor: f64) -> Vec<Step> {
        let Some(usual) = self.usual_duration() else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        let (mut at, mut left) = (0u64, self.samples);
        for &(count, duration) in &self.durations {
            let stepping = u64::from(count).min(left.saturating_sub(1));
            if f64::from(duration) > factor * f64::from(usual) {
                let duration = u64::from(duration);
                steps.extend((0..stepping).map(|k| Step {
                    start: at + k * duration,
                    duration,
                }));
            }
            at += u64::from(count) * u64::from(duration);
            left = left.saturating_sub(u64::from(count));
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

/// The index of the MP4 at `path`. `None`: no `moov` box.
pub(crate) fn index(path: &Path) -> Result<Option<Index>, MediaError> {
    Ok(moov_of(path)?.as_deref().and_then(index_of_moov))
}

/// The payload of the file's `moov` box. `None`: none found.
fn moov_of(path: &Path) -> Result<Option<Vec<u8>>, MediaError> {
    let io = |e| MediaError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut at = 0;
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8]).map_err(io)?;
        let (size, header) = match be32(&head[..4]) {
            1 => {
                file.read_exact(&mut head[8..]).map_err(io)?;
                (be64(&head[8..]), 16)
            }
            0 => (len - at, 8),
            n => (u64::from(n), 8),
        };
        if size < header {
            return Ok(None); // corrupt: no way to the next box
        }
        if &head[4..8] == b"moov" && size <= MAX_MOOV_BYTES {
            let mut moov = vec![0u8; (size - header) as usize];
            file.read_exact(&mut moov).map_err(io)?;
            return Ok(Some(moov));
        }
        at += size;
    }
    Ok(None)
}

fn index_of_moov(moov: &[u8]) -> Option<Index> {
    let mvhd = child(moov, b"mvhd")?;
    // Full box (4); version 1: created, modified (8 + 8), timescale (4), duration (8);
    // version 0: the same with 4-byte times and duration.
    let (timescale, duration) = match mvhd.first()? {
        1 => (be32(mvhd.get(20..24)?), be64(mvhd.get(24..32)?)),
        _ => (be32(mvhd.get(12..16)?), u64::from(be32(mvhd.get(16..20)?))),
    };
    let tracks = children(moov)
        .filter(|(kind, _)| kind == b"trak")
        .filter_map(|(_, trak)| track_of(trak))
        .collect();
    Some(Index {
        duration_ms: duration * 1000 / u64::from(timescale.max(1)),
        tracks,
    })
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
    let durations = (0..entries)
        .map(|i| {
            let e = stts.get(8 + i * 8..16 + i * 8)?;
            Some((be32(&e[..4]), be32(&e[4..])))
        })
        .collect::<Option<Vec<_>>>()?;
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
        boxed(b"trak", &mdia)
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
            durations: stts.to_vec(),
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
}
