//! Media: the GStreamer pipelines and the segment files they write.
//!
//! Owns: one capture + one encode that serve every running recording ("one timeline, many
//! recordings"), the numbered MPEG-TS segments it writes into `segments_dir`, sealing them
//! (fsync file and folder, size, SHA-256) before anyone hears of them, probing media with the
//! Discoverer and remuxing a recording's segments into one MP4 (L5).
//!
//! Must not touch: SQLite, MQTT, the recording rules. Media only carries out
//! `Effect::SetCapture` / `Effect::SetMuted` and reports facts ([`MediaFact`]); the daemon turns
//! those into catalog rows and engine inputs.
//!
//! Why MPEG-TS segments: the cloud HLS playlist points straight at the segment objects, and
//! HLS players take MPEG-TS (or fMP4), not Matroska. TS is also crash-safe: it is a stream of
//! self-contained 188-byte packets with no index, so the segment being written when the
//! process dies or power is lost still plays up to the last packet written (an MP4 without its
//! `moov` box would not). MP4 is only produced by [`convert`], from sealed segments, and
//! atomically renamed into place. H.264 + AAC is what every HLS player decodes; Opus in TS
//! plays in GStreamer and ffmpeg but not in HLS players (hls.js, Safari).

mod actor;
mod convert;
mod devices;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod inputs;
mod mp4scan;
mod pipeline;
mod preview;
mod probe;
mod progress;
mod seal;
mod sources;
mod syncmeasure;
mod timeline;
mod tsscan;
mod watermark;

use std::path::PathBuf;

use crate::protocol::{AudioLevels, DeviceHealth, Id};

/// The marks the rules put in force (W1–W4); defined beside the rules that decide them.
pub use crate::rules::{Marks, VideoMark};

pub use actor::{spawn, MediaHandle};
pub use convert::{
    convert, convert_recording, recording_source, segment_first_pts, Converted, RecordedSegment,
};
pub use devices::{
    devices, Camera, CameraChoice, CameraFormat, DeviceError, DeviceReport, Limits, Microphone,
};
pub use pipeline::LEVEL_INTERVAL;
pub(crate) use pipeline::{buffer_running_time_ns, make};
pub use preview::{Preview, PREVIEW_INTERVAL, PREVIEW_MAX_BYTES, PREVIEW_WIDTH};
pub use probe::{probe, AudioInfo, MediaInfo, VideoInfo};
pub use progress::{MediaProgress, SinceProgress};
pub use sources::{CONTENT_TEST_ARGB, TEST_TONE_VOLUME};
pub use syncmeasure::{measure as measure_sync, SyncReport};
pub use watermark::Watermark;

/// Where the pictures and sound come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `videotestsrc` (a moving ball) and `audiotestsrc` (a sine), both live: for tests and
    /// for a device without a camera. With `content` set, a second `videotestsrc` (one flat
    /// colour) is the shared content.
    Test,
    /// A V4L2 camera (`camera`, else the first usable one), an ALSA microphone (`microphone`,
    /// else `default`) and optionally a V4L2 content input (`content`, e.g. an HDMI grabber).
    V4l2,
}

/// The audio codec of the segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AudioCodec {
    /// `voaacenc` (or `avenc_aac`) + `aacparse` (-bad, -good): what HLS players decode in MPEG-TS.
    #[default]
    Aac,
    /// `opusenc` (gst-plugins-base): smaller, plays in GStreamer, ffmpeg and the MP4, but
    /// Opus in MPEG-TS is not HLS-playable: use it for local-only appliances.
    Opus,
}

/// The H.264 encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoEncoder {
    /// The first present of: `v4l2h264enc` (a hardware m2m encoder), `vaapih264enc`,
    /// `x264enc` (better quality per bit than openh264), `openh264enc`.
    #[default]
    Auto,
    /// `v4l2h264enc`: a V4L2 memory-to-memory hardware encoder (SoCs such as the Pi's).
    V4l2,
    /// `vaapih264enc`: Intel/AMD VA-API (gstreamer1.0-vaapi).
    Vaapi,
    X264,
    OpenH264,
}

/// Everything the capture pipeline needs; build it with [`MediaSettings::from_config`]
/// (tests and benches also write it out). Validated by [`spawn`] against the config's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSettings {
    pub source: Source,
    /// Segment files go here, named as `segments::LOCATION_PATTERN` says; [`SealedFile::path`]
    /// is relative to its parent.
    pub segments_dir: PathBuf,
    /// Target segment length; segments are cut at the first keyframe after it.
    pub segment_ms: u64,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub video_bitrate_kbps: u32,
    pub audio: AudioCodec,
    pub encoder: VideoEncoder,
    /// `V4l2` only: the camera's device path; `None` takes the first usable capture device
    /// (that matches `camera_card` and `camera_bus` when set).
    pub camera: Option<PathBuf>,
    /// `V4l2` only, without `camera`: the camera with this V4L2 card name.
    pub camera_card: Option<String>,
    /// `V4l2` only, without `camera`: the camera with this V4L2 bus info.
    pub camera_bus: Option<String>,
    /// `V4l2` only: the ALSA capture device; `None` means `default`.
    pub microphone: Option<String>,
    /// The content source (D2, D3): a V4L2 device path with `V4l2`; with `Test` any value
    /// adds a test-pattern content source. `None`: no content, `pip`/`multistream` ignored.
    pub content: Option<PathBuf>,
    /// D2: while sharing, the content full frame with the camera small in a corner.
    pub pip: bool,
    /// D3: the content as a second video stream of the same segments (wins over `pip`).
    pub multistream: bool,
    /// `Test` only: what the test camera shows. The daemon keeps the default; the media
    /// benchmark picks [`TestPicture::Bars`] to give ffmpeg the same picture.
    pub test_picture: TestPicture,
}

/// The test camera's picture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TestPicture {
    /// A ball moving on black: never the test content's blue, so tests tell them apart.
    #[default]
    Ball,
    /// 75 % colour bars scrolling 4 pixels a frame: what ffmpeg's `pal75bars` + `scroll` draw.
    Bars,
    /// The A/V sync signal: black with one white frame a second, and in the sound (which it
    /// replaces with silence) a 10 ms click at the same timestamp. `roomrec-sync` measures it.
    Sync,
}

impl MediaSettings {
    /// The settings of `[media]`, writing segments into `segments_dir` (the storage layout is
    /// not media's to decide). The config has checked every value against the bounds
    /// [`spawn`] checks again (`config::keys`).
    pub fn from_config(config: &crate::config::Config, segments_dir: PathBuf) -> MediaSettings {
        let m = &config.media;
        MediaSettings {
            source: m.source,
            segments_dir,
            segment_ms: m.segment_duration().as_millis() as u64,
            width: m.width,
            height: m.height,
            framerate: m.framerate,
            video_bitrate_kbps: m.video_bitrate_kbps,
            audio: m.audio_codec,
            encoder: m.encoder,
            camera: m.camera.clone(),
            camera_card: m.camera_card.clone(),
            camera_bus: m.camera_bus.clone(),
            microphone: m.microphone.clone(),
            content: m.content.clone(),
            pip: m.pip,
            multistream: m.multistream,
            test_picture: TestPicture::default(),
        }
    }
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            source: Source::Test,
            segments_dir: PathBuf::from("segments"),
            segment_ms: 2_000,
            width: 1280,
            height: 720,
            framerate: 30,
            video_bitrate_kbps: 2_500,
            audio: AudioCodec::Aac,
            encoder: VideoEncoder::Auto,
            camera: None,
            camera_card: None,
            camera_bus: None,
            microphone: None,
            content: None,
            pip: false,
            multistream: false,
            test_picture: TestPicture::Ball,
        }
    }
}

/// What the daemon asks of media (from `Effect::SetCapture` and `Effect::SetMuted`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaCommand {
    /// The recordings capturing from now on and the marks their segments carry (W1–W4). A
    /// change of either cuts a segment at a keyframe, and the marks apply from that segment
    /// on; empty stops capture (EOS, last segment sealed).
    SetCapture { recordings: Vec<Id>, marks: Marks },
    /// Mute the microphone (M1): the ALSA capture switch when the device has one, and a
    /// software mute in the pipeline always.
    SetMuted(bool),
    /// The meeting snapshot's `sharing` (D2): with `pip`, switches the picture between the
    /// camera alone and the content with the camera in a corner. Kept across captures.
    SetSharing(bool),
}

/// What media reports back, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaFact {
    /// A segment is closed, fsynced (file and folder) and hashed.
    Sealed(SealedFile),
    /// The microphone is now muted (true) or live (false).
    Muted(bool),
    /// The pipeline failed and was torn down; the next `SetCapture` starts a new one.
    Failed { message: String },
    /// A write failed for lack of space; the pipeline was torn down.
    DiskFull { message: String },
    /// Every segment these recordings appear in is sealed and reported: nothing more of
    /// theirs will come, so their conversion or upload manifest may now be made.
    Released { recordings: Vec<Id> },
    /// How the camera and microphone are (at start and whenever either changes).
    Devices {
        camera: DeviceHealth,
        microphone: DeviceHealth,
    },
    /// A device was lost while capturing; capture goes on with a black picture or silence in
    /// the same segments and recordings. `device` is its path or ALSA name, `role` what it
    /// is for.
    DeviceLost {
        device: String,
        role: crate::protocol::DeviceRole,
        message: String,
    },
    /// A lost device delivers again, inside the same recordings.
    DeviceBack {
        device: String,
        role: crate::protocol::DeviceRole,
    },
    /// The recorded sound's level over the last [`LEVEL_INTERVAL`] (after the mute: what
    /// goes to the encoder); only while capturing.
    Levels(AudioLevels),
    /// A JPEG of what is recorded (at most [`PREVIEW_MAX_BYTES`]), every
    /// [`PREVIEW_INTERVAL`] while capturing.
    Preview(Vec<u8>),
}

/// One sealed segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFile {
    pub seq: u64,
    /// Relative to the parent of `segments_dir`, e.g. `segments/00000042.ts`.
    pub path: String,
    pub abs_path: PathBuf,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Lower-case hex SHA-256 of the file as sealed.
    pub sha256: String,
    /// The recordings that were capturing while this segment was written.
    pub recordings: Vec<Id>,
}

/// Every way media can fail, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer could not be initialised ({0}); is libgstreamer1.0-0 installed?")]
    Init(String),
    #[error(
        "GStreamer element '{factory}' is not installed; install the Debian package {package}"
    )]
    MissingElement {
        factory: String,
        package: &'static str,
    },
    #[error("invalid media settings: {0}")]
    Settings(String),
    #[error("GStreamer pipeline: {0}")]
    Pipeline(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no space left on the storage: {0}; free space or lower the retention")]
    DiskFull(String),
    #[error("{} could not be read as media: {message}", path.display())]
    Probe { path: PathBuf, message: String },
    #[error(
        "converting needs about {needed_mib} MiB free in {} but only {free_mib} MiB are free: \
         free {} MiB more (or lower the retention) and run finalize again; every segment is kept",
        dir.display(),
        needed_mib.saturating_sub(*free_mib)
    )]
    NoRoom {
        dir: PathBuf,
        needed_mib: u64,
        free_mib: u64,
    },
    #[error("conversion output rejected: {0}")]
    Check(String),
    #[error("timed out after {seconds} s while {doing}")]
    Timeout { seconds: u64, doing: &'static str },
    #[error("the conversion was cancelled")]
    Cancelled,
    #[error("the media actor has stopped; restart the daemon")]
    Stopped,
}

impl MediaError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> MediaError {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            // ENOSPC gets its own variant: the engine stops recordings instead of retrying.
            return MediaError::DiskFull(format!("{}: {source}", path.display()));
        }
        MediaError::Io { path, source }
    }
}

/// Initialise GStreamer once; cheap to call again.
fn init() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Init(e.to_string()))
}
