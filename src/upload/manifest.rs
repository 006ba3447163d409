//! Object keys and the manifest of a cloud recording: pure functions, no I/O.
//!
//! Owns: the key layout in the bucket, the HLS playlists (`index.m3u8`; for a transcribed
//! recording also `subtitles.m3u8` and `master.m3u8`) and the JSON document
//! (`manifest.json`, with the completeness report it is given). Must not touch: the store, the catalog, media (a segment's container
//! is known only by its file name's extension), the WebVTT files' contents (`transcribe`).

use serde::Serialize;

use crate::protocol::{CompletenessReport, Id, RecordingInfo};

pub const PLAYLIST_NAME: &str = "index.m3u8";
pub const MANIFEST_NAME: &str = "manifest.json";
/// T1: the subtitle rendition's media playlist and the master playlist referencing it.
pub const SUBTITLES_NAME: &str = "subtitles.m3u8";
pub const MASTER_NAME: &str = "master.m3u8";
/// The rendition group the master playlist names.
const SUBTITLES_GROUP: &str = "transcript";

/// `<key_prefix><creator>/<meeting>/<recording>/`: ids are validated (no `/`, no `..`), so
/// the parts can never escape their folder.
pub fn recording_dir(key_prefix: &str, creator: &Id, meeting: &Id, recording: &Id) -> String {
    format!("{key_prefix}{creator}/{meeting}/{recording}/")
}

/// `00000042.ts`: named after the sequence number, so a retry writes the same object.
pub fn segment_name(seq: u64, path: &str) -> String {
    // The object is the plaintext media: an encrypted segment is named as its plaintext.
    let path = crate::segments::plain_name(path);
    format!("{seq:08}.{}", extension(path))
}

/// `00000042.vtt`: the subtitle segment that goes with media segment 42.
pub fn subtitle_name(seq: u64) -> String {
    format!("{seq:08}.vtt")
}

/// Whether `key` is one of a transcript's objects (which only some recordings have).
pub fn is_transcript_key(key: &str) -> bool {
    key.ends_with(".vtt") || key.ends_with(SUBTITLES_NAME) || key.ends_with(MASTER_NAME)
}

/// The extension of `path` if it is a plain short one, else `bin`.
fn extension(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && (1..=8).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            ext
        }
        _ => "bin",
    }
}

/// The `Content-Type` stored with an object, so a player or browser reading straight from
/// the bucket knows what it gets.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()) {
        Some(e) if e == "ts" => "video/mp2t",
        Some(e) if e == "m3u8" => "application/vnd.apple.mpegurl",
        Some(e) if e == "json" => "application/json",
        Some(e) if e == "mkv" => "video/x-matroska",
        Some(e) if e == "mp4" || e == "m4s" => "video/mp4",
        Some(e) if e == "vtt" => "text/vtt",
        _ => "application/octet-stream",
    }
}

/// One uploaded segment as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManifestSegment {
    pub seq: u64,
    /// Object name relative to the recording's folder.
    pub name: String,
    pub bytes: u64,
    pub duration_ms: u64,
    pub sha256: String,
    /// The store's ETag (the MD5 of a single-part upload).
    pub etag: Option<String>,
}

/// A gap in the sequence numbers: the recording was paused between these two segments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pause {
    pub after_seq: u64,
    pub before_seq: u64,
}

/// The HLS media playlist over `segments` (in sequence order), with a discontinuity at each
/// pause so players reset their timestamps there.
pub fn hls_playlist(segments: &[ManifestSegment]) -> String {
    media_playlist(segments, |s| s.name.clone())
}

/// T1: the subtitle rendition's playlist: one WebVTT file per media segment, with the same
/// durations and the same discontinuities, so its segments line up with the media's.
pub fn subtitles_playlist(segments: &[ManifestSegment]) -> String {
    media_playlist(segments, |s| subtitle_name(s.seq))
}

/// T1: the master playlist: the media playlist as the one variant, with the transcript as its
/// subtitle rendition. `BANDWIDTH` is the peak segment bit rate, as the HLS spec defines it.
pub fn master_playlist(segments: &[ManifestSegment]) -> String {
    let peak = segments
        .iter()
        .filter(|s| s.duration_ms > 0)
        .map(|s| s.bytes * 8 * 1000 / s.duration_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n\
         #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{SUBTITLES_GROUP}\",NAME=\"Transcript\",\
         DEFAULT=NO,AUTOSELECT=YES,URI=\"{SUBTITLES_NAME}\"\n\
         #EXT-X-STREAM-INF:BANDWIDTH={peak},SUBTITLES=\"{SUBTITLES_GROUP}\"\n{PLAYLIST_NAME}\n"
    )
}

fn media_playlist(
    segments: &[ManifestSegment],
    name: impl Fn(&ManifestSegment) -> String,
) -> String {
    let target = segments
        .iter()
        .map(|s| s.duration_ms.div_ceil(1000))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n"
    );
    let mut previous: Option<u64> = None;
    for s in segments {
        if previous.is_some_and(|p| s.seq != p + 1) {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let secs = s.duration_ms as f64 / 1000.0;
        out.push_str(&format!("#EXTINF:{secs:.3},\n{}\n", name(s)));
        previous = Some(s.seq);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// The pauses of a recording: every gap between consecutive sequence numbers.
pub fn pauses(segments: &[ManifestSegment]) -> Vec<Pause> {
    segments
        .windows(2)
        .filter(|w| w[1].seq != w[0].seq + 1)
        .map(|w| Pause {
            after_seq: w[0].seq,
            before_seq: w[1].seq,
        })
        .collect()
}

#[derive(Serialize)]
struct Manifest<'a> {
    version: u32,
    recording_id: &'a Id,
    meeting_id: &'a Id,
    creator: &'a Id,
    started_by: &'a Id,
    created_at: String,
    duration_ms: u64,
    recorded_ms: u64,
    bytes: u64,
    shared: bool,
    playlist: &'static str,
    /// T1: the master playlist (media + subtitles), only when the recording has a transcript.
    #[serde(skip_serializing_if = "Option::is_none")]
    master_playlist: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitles: Option<&'static str>,
    pauses: Vec<Pause>,
    segments: &'a [ManifestSegment],
    /// Issue 14 item 4: recorded and covered time, every gap with its cause, silent share.
    #[serde(skip_serializing_if = "Option::is_none")]
    completeness: Option<&'a CompletenessReport>,
}

/// `manifest.json`: who, when, how long, which pauses, and each segment's size and checksums;
/// with `transcript`, the master and subtitle playlists; with `completeness`, the report.
pub fn manifest_json(
    info: &RecordingInfo,
    segments: &[ManifestSegment],
    shared: bool,
    transcript: bool,
    completeness: Option<&CompletenessReport>,
) -> Vec<u8> {
    let doc = Manifest {
        version: 1,
        recording_id: &info.recording_id,
        meeting_id: &info.meeting_id,
        creator: &info.owner,
        started_by: &info.started_by,
        created_at: info.created_at.to_rfc3339(),
        duration_ms: segments.iter().map(|s| s.duration_ms).sum(),
        recorded_ms: info.recorded_ms,
        bytes: segments.iter().map(|s| s.bytes).sum(),
        shared,
        playlist: PLAYLIST_NAME,
        master_playlist: transcript.then_some(MASTER_NAME),
        subtitles: transcript.then_some(SUBTITLES_NAME),
        pauses: pauses(segments),
        segments,
        completeness,
    };
    // Serialising plain structs of strings and numbers cannot fail; fall back to `{}` anyway
    // rather than panicking in the actor.
    serde_json::to_vec_pretty(&doc).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, duration_ms: u64) -> ManifestSegment {
        ManifestSegment {
            seq,
            name: segment_name(seq, "segments/x.ts"),
            bytes: 100,
            duration_ms,
            sha256: "0".repeat(64),
            etag: None,
        }
    }

    #[test]
    fn keys_follow_creator_meeting_recording_sequence() {
        let id = |s| Id::parse(s).expect("id");
        let dir = recording_dir("rooms/", &id("u-1"), &id("m-1"), &id("r-7"));
        assert_eq!(dir, "rooms/u-1/m-1/r-7/");
        assert_eq!(segment_name(42, "segments/00000042.ts"), "00000042.ts");
        assert_eq!(segment_name(3, "segments/odd"), "00000003.bin");
        assert_eq!(segment_name(3, "segments/a.b/c"), "00000003.bin");
        assert_eq!(segment_name(3, "segments/.ts"), "00000003.bin");
    }

    #[test]
    fn playlist_is_vod_with_a_discontinuity_at_each_pause() {
        let segs = [seg(1, 2000), seg(2, 2500), seg(5, 1000)];
        let m3u8 = hls_playlist(&segs);
        let expected = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n\
            #EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXTINF:2.000,\n00000001.ts\n#EXTINF:2.500,\n00000002.ts\n\
            #EXT-X-DISCONTINUITY\n#EXTINF:1.000,\n00000005.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(m3u8, expected);
        assert_eq!(
            pauses(&segs),
            vec![Pause {
                after_seq: 2,
                before_seq: 5
            }]
        );
    }

    #[test]
    fn the_subtitle_rendition_lines_up_with_the_media_and_the_master_names_both() {
        let segs = [seg(1, 2000), seg(2, 2500), seg(5, 1000)];
        let subs = subtitles_playlist(&segs);
        assert_eq!(
            subs,
            hls_playlist(&segs).replace(".ts", ".vtt"),
            "same durations and discontinuities"
        );
        let master = master_playlist(&segs);
        // 100 bytes in 1 s is the peak: 800 bit/s.
        assert_eq!(
            master,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"transcript\",\
             NAME=\"Transcript\",DEFAULT=NO,AUTOSELECT=YES,URI=\"subtitles.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=800,SUBTITLES=\"transcript\"\nindex.m3u8\n"
        );
        assert!(is_transcript_key("p/u/m/r/00000001.vtt"));
        assert!(is_transcript_key("p/u/m/r/master.m3u8"));
        assert!(!is_transcript_key("p/u/m/r/index.m3u8"));
    }

    #[test]
    fn content_types_match_the_extension() {
        assert_eq!(content_type("00000001.vtt"), "text/vtt");
        assert_eq!(content_type("00000001.ts"), "video/mp2t");
        assert_eq!(content_type("index.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
