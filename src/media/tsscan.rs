//! The duration of an MPEG-TS file from the timestamps of its video packets.
//!
//! Owns: reading PES presentation timestamps out of 188-byte TS packets. Must not touch: the
//! pipelines, SQLite, MQTT.
//!
//! Why not only the Discoverer: `tsdemux` estimates a file's duration from the PCRs it finds
//! near the start and the end, and for small segments (a 2 s segment at a low bitrate is
//! ~60 kB) it finds too few and reports 0. A segment holds at most a few MB, so reading every
//! packet header is cheap and exact to a frame.

use std::io::Read;
use std::path::Path;

use super::MediaError;

pub(crate) const PACKET: usize = 188;
pub(crate) const SYNC: u8 = 0x47;
/// PTS ticks per millisecond (the 90 kHz MPEG clock).
pub(crate) const TICKS_PER_MS: u64 = 90;
/// PTS values are 33 bits; a segment may straddle the wrap.
pub(crate) const PTS_WRAP: u64 = 1 << 33;

/// The presentation span of the first video stream (or, if there is none, of every stream) plus
/// one frame: what a player plays. `None` when the file holds no timestamped packet.
pub(crate) fn ts_duration_ms(path: &Path) -> Result<Option<u64>, MediaError> {
    let mut file = std::fs::File::open(path).map_err(|e| MediaError::io(path, e))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| MediaError::io(path, e))?;
    Ok(duration_of(&data))
}

/// What the conversion needs of one segment: its duration and how many video frames it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TsContent {
    /// As [`ts_duration_ms`]; `None` when no packet carries a timestamp.
    pub duration_ms: Option<u64>,
    /// Video PES packets: one frame each as roomrec muxes them.
    pub video_frames: u64,
}

/// Duration and video frame count of a TS file, reading it once.
pub(crate) fn ts_content(path: &Path) -> Result<TsContent, MediaError> {
    let mut file = std::fs::File::open(path).map_err(|e| MediaError::io(path, e))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| MediaError::io(path, e))?;
    let (video, _) = timestamps(&data);
    Ok(TsContent {
        duration_ms: duration_of(&data),
        video_frames: video.len() as u64,
    })
}

/// The PTS values found, video first if there is any video.
fn duration_of(data: &[u8]) -> Option<u64> {
    let (video, other) = timestamps(data);
    let pts = if video.is_empty() { other } else { video };
    span_ms(pts)
}

/// The PTS of every video PES and of every other PES, in file order.
fn timestamps(data: &[u8]) -> (Vec<u64>, Vec<u64>) {
    let mut video = Vec::new();
    let mut other = Vec::new();
    // A file cut short mid-packet (a crash) still counts up to its last whole packet.
    for packet in data.chunks_exact(PACKET) {
        if packet[0] != SYNC {
            continue;
        }
        if let Some((stream_id, pts)) = pes_pts(packet) {
            if is_video_stream(stream_id) {
                video.push(pts);
            } else {
                other.push(pts);
            }
        }
    }
    (video, other)
}

/// A TS packet that starts a PES packet with a PTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PesStart {
    pub pid: u16,
    pub stream_id: u8,
    /// The raw 33-bit PTS (90 kHz).
    pub pts: u64,
}

impl PesStart {
    pub fn is_video(&self) -> bool {
        is_video_stream(self.stream_id)
    }
}

/// PES stream ids 0xE0..=0xEF carry video (H.262/H.264/H.265).
pub(crate) fn is_video_stream(stream_id: u8) -> bool {
    (0xE0..=0xEF).contains(&stream_id)
}

/// Every PES start with a PTS, in file order (a torn last packet is ignored).
pub(crate) fn pes_starts(data: &[u8]) -> Vec<PesStart> {
    data.chunks_exact(PACKET)
        .filter(|p| p[0] == SYNC)
        .filter_map(|p| {
            let (stream_id, pts) = pes_pts(p)?;
            Some(PesStart {
                pid: pid_of(p),
                stream_id,
                pts,
            })
        })
        .collect()
}

/// How many PIDs carry timestamped PES packets: the tracks the MP4 will have.
pub(crate) fn pes_pids(data: &[u8]) -> usize {
    let mut pids: Vec<u16> = pes_starts(data).iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}

/// The 13-bit PID of a TS packet.
pub(crate) fn pid_of(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])
}

/// The stream id and PTS of a packet that starts a PES packet with a PTS.
fn pes_pts(p: &[u8]) -> Option<(u8, u64)> {
    let at = pes_header_at(p)?;
    let pes = &p[at..];
    if pes[7] & 0x80 == 0 {
        return None;
    }
    Some((pes[3], read_timestamp(&pes[9..14])))
}

/// Where the PES header starts in a packet that starts a PES packet (with room for a PTS after
/// it: 14 bytes); `None` for any other packet (PSI tables, continuations).
pub(crate) fn pes_header_at(p: &[u8]) -> Option<usize> {
    let starts_unit = p[1] & 0x40 != 0;
    let control = (p[3] >> 4) & 0x3;
    if !starts_unit || control & 0x1 == 0 {
        return None;
    }
    let mut at = 4;
    if control & 0x2 != 0 {
        at += 1 + usize::from(p[4]);
    }
    let pes = p.get(at..)?;
    (pes.len() >= 14 && pes[..3] == [0, 0, 1]).then_some(at)
}

/// Where the 6-byte PCR sits in a packet's adaptation field, if it carries one.
pub(crate) fn pcr_at(p: &[u8]) -> Option<usize> {
    let control = (p[3] >> 4) & 0x3;
    let has_pcr = control & 0x2 != 0 && p[4] >= 7 && p[5] & 0x10 != 0;
    has_pcr.then_some(6)
}

/// A 33-bit PTS or DTS from its 5 bytes (4-bit prefix, marker bits).
pub(crate) fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x7) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// Overwrite a 33-bit PTS or DTS in place, keeping its 4-bit prefix and marker bits.
pub(crate) fn write_timestamp(b: &mut [u8], ts: u64) {
    b[0] = (b[0] & 0xF1) | ((ts >> 29) & 0x0E) as u8 | 1;
    b[1] = (ts >> 22) as u8;
    b[2] = ((ts >> 14) & 0xFE) as u8 | 1;
    b[3] = (ts >> 7) as u8;
    b[4] = ((ts << 1) & 0xFE) as u8 | 1;
}

/// The 33-bit base (90 kHz) of a PCR from its 6 bytes; the 27 MHz extension is not needed.
pub(crate) fn read_pcr_base(b: &[u8]) -> u64 {
    u64::from(b[0]) << 25
        | u64::from(b[1]) << 17
        | u64::from(b[2]) << 9
        | u64::from(b[3]) << 1
        | u64::from(b[4] >> 7)
}

/// Overwrite a PCR's base in place, keeping its reserved bits and extension.
pub(crate) fn write_pcr_base(b: &mut [u8], base: u64) {
    b[0] = (base >> 25) as u8;
    b[1] = (base >> 17) as u8;
    b[2] = (base >> 9) as u8;
    b[3] = (base >> 1) as u8;
    b[4] = ((base & 1) as u8) << 7 | (b[4] & 0x7F);
}

/// Last minus first (unwrapped past the 33-bit wrap), plus the smallest step between two
/// timestamps: the last frame plays for one frame time too.
fn span_ms(pts: Vec<u64>) -> Option<u64> {
    let first = *pts.first()?;
    let mut rel: Vec<u64> = pts
        .iter()
        .map(|p| (p + PTS_WRAP - first) % PTS_WRAP)
        // Frames reordered before the first (B-frames) would look ~26 h away: drop them.
        .filter(|r| *r < PTS_WRAP / 2)
        .collect();
    rel.sort_unstable();
    rel.dedup();
    let step = rel.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
    let last = *rel.last()?;
    Some((last + step) / TICKS_PER_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TS packet starting a PES of `stream_id` with `pts`.
    fn packet(stream_id: u8, pts: u64) -> Vec<u8> {
        let mut p = vec![SYNC, 0x40 | 0x01, 0x00, 0x10];
        p.extend_from_slice(&[0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5]);
        p.push(0x21 | (((pts >> 30) & 0x7) as u8) << 1);
        p.push((pts >> 22) as u8);
        p.push(0x01 | ((pts >> 15) as u8) << 1);
        p.push((pts >> 7) as u8);
        p.push(0x01 | (pts as u8) << 1);
        p.resize(PACKET, 0xFF);
        p
    }

    #[test]
    fn video_span_plus_one_frame() {
        // 15 fps: 6000 ticks a frame; 30 frames = 2 s.
        let mut data: Vec<u8> = (0..30)
            .flat_map(|i| packet(0xE0, 1000 + i * 6000))
            .collect();
        // Audio running past the video does not count when there is video.
        data.extend(packet(0xC0, 1000 + 40 * 6000));
        assert_eq!(duration_of(&data), Some(2000));
    }

    #[test]
    fn timestamps_and_pcr_are_rewritten_in_place() {
        for ts in [0, 1, 324_002_695, PTS_WRAP - 1, 0x1_5555_5555] {
            let mut p = packet(0xC0, 77);
            let at = pes_header_at(&p).unwrap();
            write_timestamp(&mut p[at + 9..at + 14], ts);
            assert_eq!(pes_starts(&p)[0].pts, ts);
            assert_eq!(p[at + 9] & 0xF1, 0x21, "prefix and marker kept");
            let mut pcr = [0u8, 0, 0, 0, 0x7E | 0x01, 0x23];
            write_pcr_base(&mut pcr, ts);
            assert_eq!(read_pcr_base(&pcr), ts);
            assert_eq!(pcr[4] & 0x7F, 0x7F, "reserved bits and extension kept");
        }
    }

    #[test]
    fn wrap_and_truncation_and_no_pts() {
        let start = PTS_WRAP - 3000;
        let mut data: Vec<u8> = (0..4)
            .flat_map(|i| packet(0xE0, (start + i * 3000) % PTS_WRAP))
            .collect();
        data.extend_from_slice(&[SYNC, 1, 2]); // cut mid-packet
        assert_eq!(duration_of(&data), Some(4 * 3000 / 90));
        assert_eq!(duration_of(&[0u8; 400]), None);
    }
}
