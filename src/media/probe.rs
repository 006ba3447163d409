//! Probing media files with the pbutils Discoverer.
//!
//! Owns: reading a file's duration and streams. Must not touch: the capture pipeline,
//! SQLite, MQTT. Used by tests, by the conversion check and (later) by start-up reconciliation.

use std::path::Path;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::prelude::*;

use super::MediaError;

/// A generous bound: discovery of a local file takes milliseconds; a stuck demuxer must not
/// hang the caller forever.
const DISCOVER_TIMEOUT_S: u64 = 30;

/// What a media file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    pub duration_ms: u64,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    /// How many video streams (2 in multi-stream recordings: camera and content).
    pub video_streams: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoInfo {
    /// The caps name, e.g. `video/x-h264`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// The caps name, e.g. `audio/x-opus` or `audio/mpeg`.
    pub codec: String,
    pub channels: u32,
}

/// Read `path`'s duration, first video and first audio stream. Blocking.
pub fn probe(path: &Path) -> Result<MediaInfo, MediaError> {
    super::init()?;
    let fail = |message: String| MediaError::Probe {
        path: path.to_path_buf(),
        message,
    };
    let abs = std::path::absolute(path).map_err(|e| MediaError::io(path, e))?;
    let uri = gst::glib::filename_to_uri(&abs, None).map_err(|e| fail(e.to_string()))?;
    let discoverer = pbutils::Discoverer::new(gst::ClockTime::from_seconds(DISCOVER_TIMEOUT_S))
        .map_err(|e| fail(format!("no Discoverer: {e}")))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| fail(e.to_string()))?;
    if info.result() != pbutils::DiscovererResult::Ok {
        return Err(fail(format!("discovery ended with {:?}", info.result())));
    }
    let mut duration_ms = info.duration().map_or(0, |d| d.mseconds());
    let container = info.stream_info().map(|s| caps_name(s.caps()));
    if duration_ms == 0 && container.as_deref() == Some("video/mpegts") {
        // tsdemux cannot estimate small segments; their timestamps say it exactly.
        duration_ms = super::tsscan::ts_duration_ms(path)?.unwrap_or(0);
    }
    Ok(MediaInfo {
        duration_ms,
        video: info.video_streams().first().map(|v| VideoInfo {
            codec: caps_name(v.caps()),
            width: v.width(),
            height: v.height(),
        }),
        video_streams: info.video_streams().len(),
        audio: info.audio_streams().first().map(|a| AudioInfo {
            codec: caps_name(a.caps()),
            channels: a.channels(),
        }),
    })
}

fn caps_name(caps: Option<gst::Caps>) -> String {
    caps.and_then(|c| c.structure(0).map(|s| s.name().to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_media_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.ts");
        std::fs::write(&path, b"this is not a video").unwrap();
        let e = probe(&path).unwrap_err();
        assert!(matches!(e, MediaError::Probe { .. }), "{e}");
        assert!(e.to_string().contains("junk.ts"), "{e}");
    }
}
