//! The encode pipeline: one capture, one encode, one numbered sequence of segment files.
//!
//! Owns: building the encode side, muting, the picture-in-picture layout, cutting a segment at
//! a forced keyframe and stopping with an EOS. Must not touch: the bus (the actor reads it),
//! device pipelines ([`super::sources`]), SQLite, MQTT, the rules.
//!
//! ```text
//! camera ─→ I420 WxH@fps ─┬──────────→ I420 → mark → queue → H.264 enc → h264parse ─→ splitmuxsink
//! content → I420 WxH@fps ─┘ (pip: compositor)                                "video"  (mpegtsmux)
//! content → I420 → mark → queue → H.264 enc → h264parse (multistream) ──→ "video_aux_0"
//! audio ──→ audioconvert → audioresample → [audio watermark] → volume → level → queue → voaacenc|avenc_aac+aacparse|opusenc ─┘
//! ```
//! `level` measures what is recorded (after the mute) every [`LEVEL_INTERVAL`]; the actor
//! reads its bus messages ([`read_levels`]).
//! `mark` is the video watermark ([`super::watermark`], W1–W4), once per encoded stream: on
//! the composite with picture-in-picture, on each stream of a multi-stream recording. Being in
//! the encode pipeline, it also covers the placeholder picture of a lost device.
//! The pad into the main stream's mark is sampled about once a second by the picture check
//! ([`super::picture_check`]: black or frozen, for the health alarms).
//! The main stream's mark also feeds the confidence picture ([`super::preview`]): a frame by
//! reference every few seconds to a pipeline of its own, so the preview shows what is recorded
//! and can never hold the recording up.
//! Inputs come from [`super::sources`]: test sources in this pipeline, devices through inter
//! channels. The encode and segment side is the same for every source.

use gst::prelude::*;
use gstreamer as gst;

use super::picture_check::PictureCheck;
use super::preview::Preview;
use super::sources::{self, capsfilter, video_caps, Channels};
use super::watermark::Watermark;
use super::{AudioCodec, Marks, MediaError, MediaSettings, VideoEncoder};
use crate::audiomark::MarkSwitch;
use crate::protocol::{AudioLevels, ChannelLevel};

/// What a new pipeline starts with, carried across captures by the actor.
#[derive(Clone, Debug, Default)]
pub(crate) struct CaptureState {
    pub muted: bool,
    pub sharing: bool,
    /// W1–W4: the marks of the first segment.
    pub marks: Marks,
}

/// The container of the segments (their names, `segments::LOCATION_PATTERN`, say `.ts`).
pub(crate) const SEGMENT_MUXER: &str = "mpegtsmux";

/// A running (or about to run) capture pipeline.
pub(crate) struct Capture {
    pub pipeline: gst::Pipeline,
    volume: gst::Element,
    splitmux: gst::Element,
    /// With picture-in-picture: the compositor's content and camera pads.
    pip: Option<Pip>,
    /// Multi-stream: the content stream's parser, through which its encoder is asked for a
    /// key frame at every new segment (splitmuxsink asks only the main video's).
    aux_video: Option<gst::Element>,
    /// The video watermark of every encoded stream.
    watermarks: Vec<Watermark>,
    /// W3, W4: the audio watermark's payload switch (no payload: the sound passes unmarked).
    audio_mark: Option<MarkSwitch>,
    /// The confidence picture of the main video stream; none if it could not be set up.
    preview: Option<Preview>,
}

struct Pip {
    content: gst::Pad,
    camera: gst::Pad,
    width: u32,
    height: u32,
}

impl Capture {
    /// Build the pipeline (not started); its first segment is numbered `start_index`.
    pub fn build(
        settings: &MediaSettings,
        encoder: VideoEncoder,
        start_index: u64,
        state: CaptureState,
        ch: &Channels,
    ) -> Result<Capture, MediaError> {
        let pipeline = gst::Pipeline::with_name("capture");
        let splitmux = splitmux_sink(settings, start_index)?;
        pipeline
            .add(&splitmux)
            .map_err(|e| MediaError::Pipeline(e.to_string()))?;
        let camera = sources::camera_input(settings, ch)?;
        let content = sources::content_input(settings, ch)?;
        let mut aux_video = None;
        let mut watermarks = Vec::new();
        let branch = Branch {
            pipeline: &pipeline,
            settings,
            which: encoder,
            splitmux: &splitmux,
            marks: &state.marks,
        };
        let pip = match content {
            Some(content) if settings.multistream => {
                watermarks.push(branch.add(camera, "video")?.1);
                let (parser, mark) = branch.add(content, "video_aux_%u")?;
                aux_video = Some(parser);
                watermarks.push(mark);
                None
            }
            Some(content) if settings.pip => {
                let (pip, mark) = add_pip_branch(&branch, camera, content)?;
                watermarks.push(mark);
                Some(pip)
            }
            _ => {
                watermarks.push(branch.add(camera, "video")?.1);
                None
            }
        };
        let preview = watermarks
            .first()
            .and_then(|main| attach_preview(main, &pipeline, settings));
        if let Some(main) = watermarks.first() {
            attach_picture_check(main, &pipeline, settings);
        }
        #[cfg(feature = "fault-injection")]
        super::fault::freeze_when_asked(&settings.segments_dir, &pipeline);
        let (volume, audio_mark) =
            add_audio_branch(&pipeline, settings, ch, &splitmux, state.marks.audio)?;
        #[cfg(feature = "fault-injection")]
        super::fault::speak_when_asked(&settings.segments_dir, &pipeline);
        volume.set_property("mute", state.muted);
        let capture = Capture {
            pipeline,
            volume,
            splitmux,
            pip,
            aux_video,
            watermarks,
            audio_mark,
            preview,
        };
        capture.set_sharing(state.sharing);
        Ok(capture)
    }

    /// The confidence picture of the next frame (an admin's `preview`); false when this
    /// capture has no preview.
    pub fn take_preview_now(&self) -> bool {
        self.preview.as_ref().inspect(|p| p.take_now()).is_some()
    }

    /// Multi-stream: a key frame on the content stream now, so a new segment's content
    /// stream plays from its start however short the segment is.
    pub fn request_aux_keyframe(&self) {
        let Some(parser) = &self.aux_video else {
            return;
        };
        let request = gst::Structure::builder("GstForceKeyUnit")
            .field("all-headers", true)
            .build();
        // Upstream from the parser's src pad, as splitmuxsink does for the main stream.
        if let Some(pad) = parser.static_pad("src") {
            if !pad.send_event(gst::event::CustomUpstream::new(request)) {
                tracing::debug!("the content encoder did not take a key frame request");
            }
        }
    }

    /// D2: the content full frame with the camera in the bottom-right quarter-size corner, or
    /// the camera alone. A no-op without picture-in-picture.
    pub fn set_sharing(&self, sharing: bool) {
        let Some(p) = &self.pip else { return };
        let (w, h) = (p.width as i32, p.height as i32);
        let set = |pad: &gst::Pad, (x, y, pw, ph): (i32, i32, i32, i32), alpha: f64| {
            pad.set_property("xpos", x);
            pad.set_property("ypos", y);
            pad.set_property("width", pw);
            pad.set_property("height", ph);
            pad.set_property("alpha", alpha);
        };
        if sharing {
            // Even sizes and a margin of 1/32: the corner picture stays clear of the edge.
            let (cw, chh) = ((w / 4) & !1, (h / 4) & !1);
            let (mx, my) = ((w / 32) & !1, (h / 32) & !1);
            set(&p.content, (0, 0, w, h), 1.0);
            set(&p.camera, (w - cw - mx, h - chh - my, cw, chh), 1.0);
        } else {
            set(&p.content, (0, 0, w, h), 0.0);
            set(&p.camera, (0, 0, w, h), 1.0);
        }
    }

    pub fn play(&self) -> Result<(), MediaError> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map(|_| ())
            .map_err(|_| {
                MediaError::Pipeline(
                    "the capture pipeline refused to start; see the GStreamer error that follows"
                        .into(),
                )
            })
    }

    pub fn set_muted(&self, muted: bool) {
        self.volume.set_property("mute", muted);
    }

    /// The pipeline's running time now: the timestamp the next captured frame will carry.
    pub fn running_time_ns(&self) -> Option<u64> {
        self.pipeline.current_running_time().map(|t| t.nseconds())
    }

    /// Start a new segment at the first frame captured from running time `at_ns` on.
    ///
    /// `split-at-running-time` (with `send-keyframe-requests`) asks the encoder for a keyframe
    /// at that time and opens the new file with the first GOP starting there, so the closed
    /// segment holds only frames captured before the cut. (`split-now` would instead move the
    /// GOP in progress, up to 2 s captured *before* the call, into the new segment.)
    pub fn cut_at(&self, at_ns: u64) {
        self.splitmux
            .emit_by_name::<()>("split-at-running-time", &[&at_ns]);
    }

    /// W4: `marks` from the segment a cut at running time `at_ns` opens, on every stream.
    pub fn mark_from(&self, at_ns: u64, marks: &Marks) {
        for wm in &self.watermarks {
            if let Err(e) = wm.switch_at(at_ns, &marks.video) {
                tracing::warn!(error = %e, at_ns, "video watermark not switched; the stream keeps its mark");
            }
        }
        if let Some(audio) = &self.audio_mark {
            audio.switch_at(at_ns, marks.audio);
        }
    }

    /// Ask every source to end; the bus says EOS once the last segment is closed.
    pub fn send_eos(&self) -> bool {
        self.pipeline.send_event(gst::event::Eos::new())
    }

    /// Stop everything and release the devices and files.
    pub fn stop(&self) {
        if self.pipeline.set_state(gst::State::Null).is_err() {
            tracing::warn!("the capture pipeline did not stop cleanly");
        }
    }
}

impl Drop for Capture {
    /// Whatever path drops it (error, panic), the devices and files are released.
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The Debian package that ships a factory, for the "not installed" message.
fn package_of(factory: &str) -> &'static str {
    match factory {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "openh264enc" | "h264parse" | "aacparse" | "opusparse" | "mpegtsmux" | "tsdemux"
        | "compositor" | "intervideosrc" | "intervideosink" | "interaudiosrc"
        | "interaudiosink" => "gstreamer1.0-plugins-bad",
        "alsasrc" => "gstreamer1.0-alsa",
        "textoverlay" => "gstreamer1.0-x",
        "vaapih264enc" => "gstreamer1.0-vaapi",
        "v4l2h264enc" => "gstreamer1.0-plugins-good (and a V4L2 m2m encoder device)",
        "avenc_aac" => "gstreamer1.0-libav",
        "splitmuxsink" | "splitmuxsrc" | "matroskamux" | "matroskademux" | "mp4mux" | "v4l2src"
        | "jpegdec" | "level" => "gstreamer1.0-plugins-good",
        "queue" | "capsfilter" | "filesink" => "libgstreamer1.0-0",
        _ => "gstreamer1.0-plugins-base",
    }
}

/// The preview of the main video stream (after its watermark); a preview that cannot be set
/// up is logged and left out, never a reason not to record.
fn attach_preview(
    main: &Watermark,
    pipeline: &gst::Pipeline,
    settings: &MediaSettings,
) -> Option<Preview> {
    Preview::attach(main.element(), pipeline, settings.width, settings.height)
        .inspect_err(|e| tracing::warn!(error = %e, "no preview picture for this capture"))
        .ok()
}

/// The picture check of the main video stream, on the pad that feeds its watermark (the
/// picture as captured and composed, without our mark); one that cannot be set up is logged
/// and left out: the picture alarms then stay silent, the recording goes on.
fn attach_picture_check(main: &Watermark, pipeline: &gst::Pipeline, settings: &MediaSettings) {
    let feed = main.element().static_pad("sink").and_then(|p| p.peer());
    let Some(pad) = feed else {
        return tracing::warn!("no picture check for this capture: the watermark is not linked");
    };
    if let Err(e) = PictureCheck::attach(&pad, pipeline, settings.width, settings.height) {
        tracing::warn!(error = %e, "no picture check for this capture");
    }
}

/// The running time (ns) of the buffer a probe on `pad` sees (its PTS where the pad has no
/// time segment): both watermarks switch their marks at a cut's running time by it.
pub(crate) fn buffer_running_time_ns(pad: &gst::Pad, info: &gst::PadProbeInfo) -> Option<u64> {
    let pts = info.buffer().and_then(|b| b.pts())?;
    let running = pad
        .sticky_event::<gst::event::Segment>(0)
        .and_then(|e| {
            e.segment()
                .downcast_ref::<gst::ClockTime>()
                .and_then(|s| s.to_running_time(pts))
        })
        .unwrap_or(pts);
    Some(running.nseconds())
}

/// Create an element, or say which package provides it.
pub(crate) fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement {
            factory: factory.to_owned(),
            package: package_of(factory),
        })
}

pub(crate) fn has_factory(factory: &str) -> bool {
    gst::ElementFactory::find(factory).is_some()
}

/// The encoders `Auto` tries, best first: hardware (no CPU), then x264 (better quality per
/// bit than openh264 at the same CPU), then openh264.
const AUTO_ORDER: [VideoEncoder; 4] = [
    VideoEncoder::V4l2,
    VideoEncoder::Vaapi,
    VideoEncoder::X264,
    VideoEncoder::OpenH264,
];

/// Resolve `Auto` to the first present encoder, or check the configured one is present.
pub(crate) fn resolve_encoder(choice: VideoEncoder) -> Result<VideoEncoder, MediaError> {
    pick_encoder(choice, encoder_present)
}

/// Whether an encoder can run here: its element is registered and, for V4L2, an m2m device
/// exists now (the element is only registered where one was found at registry scan).
fn encoder_present(encoder: VideoEncoder) -> bool {
    has_factory(encoder_factory(encoder))
        && (encoder != VideoEncoder::V4l2 || super::devices::m2m_encoder_present())
}

/// [`resolve_encoder`] with the presence test given, so the fallback order is unit-tested.
pub(crate) fn pick_encoder(
    choice: VideoEncoder,
    present: impl Fn(VideoEncoder) -> bool,
) -> Result<VideoEncoder, MediaError> {
    let missing = |e: VideoEncoder| {
        let factory = encoder_factory(e);
        MediaError::MissingElement {
            factory: factory.into(),
            package: package_of(factory),
        }
    };
    match choice {
        VideoEncoder::Auto => AUTO_ORDER
            .into_iter()
            .find(|e| present(*e))
            .ok_or_else(|| missing(VideoEncoder::X264)),
        wanted if present(wanted) => Ok(wanted),
        wanted => Err(missing(wanted)),
    }
}

fn encoder_factory(encoder: VideoEncoder) -> &'static str {
    match encoder {
        VideoEncoder::V4l2 => "v4l2h264enc",
        VideoEncoder::Vaapi => "vaapih264enc",
        VideoEncoder::OpenH264 => "openh264enc",
        VideoEncoder::X264 | VideoEncoder::Auto => "x264enc",
    }
}

/// The audio encoder. For AAC, voaacenc (gst-plugins-bad, Apache-2.0) when present, else
/// avenc_aac: loading libavcodec for one audio stream costs ~40 MB of resident memory
/// (peak RSS of the whole 720p30 pipeline 90 MB with avenc_aac, 50 MB with voaacenc).
pub(crate) fn audio_factory(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Opus => "opusenc",
        AudioCodec::Aac if has_factory("voaacenc") => "voaacenc",
        AudioCodec::Aac => "avenc_aac",
    }
}

fn splitmux_sink(settings: &MediaSettings, start_index: u64) -> Result<gst::Element, MediaError> {
    let start = i32::try_from(start_index).map_err(|_| {
        MediaError::Settings(format!(
            "segment number {start_index} exceeds splitmuxsink's limit of {}",
            i32::MAX
        ))
    })?;
    let location = settings
        .segments_dir
        .join(crate::segments::LOCATION_PATTERN);
    let location = location.to_str().ok_or_else(|| {
        MediaError::Settings(format!(
            "segments_dir {} is not valid UTF-8",
            settings.segments_dir.display()
        ))
    })?;
    // MPEG-TS: HLS players take it as is, and a file cut short by a crash is a run of
    // self-contained 188-byte packets that plays up to the cut.
    let muxer = make(SEGMENT_MUXER)?;
    // Unbuffered: every muxed packet reaches the kernel at once, so a killed process loses
    // nothing it wrote, and the actor's fsync of each GOP as it lands bounds what a power cut
    // takes.
    let file = make("filesink")?;
    file.set_property_from_str("buffer-mode", "unbuffered");
    let sink = make("splitmuxsink")?;
    sink.set_property("muxer", &muxer);
    sink.set_property("sink", &file);
    sink.set_property("location", location);
    sink.set_property("start-index", start);
    sink.set_property("max-size-time", settings.segment_ms * 1_000_000);
    // Asks the encoder for a keyframe at each time split, so segments end on time.
    sink.set_property("send-keyframe-requests", true);
    Ok(sink)
}

/// The encoder elements, first to last. GOP of half a second: splitmuxsink holds each GOP
/// back until the next keyframe shows where it ends, so the GOP is media a crash takes with
/// the process (a 2 s GOP lost up to 2 s per `kill -9`, found by the power-cut campaign).
/// The price is more keyframes per second at the same bitrate. splitmuxsink forces keyframes
/// at the cuts anyway.
fn video_encoder(
    settings: &MediaSettings,
    which: VideoEncoder,
) -> Result<Vec<gst::Element>, MediaError> {
    let gop = (settings.framerate / 2).max(1);
    let kbps = settings.video_bitrate_kbps;
    match which {
        VideoEncoder::OpenH264 => {
            let enc = make("openh264enc")?;
            enc.set_property_from_str("rate-control", "bitrate");
            enc.set_property("bitrate", kbps.saturating_mul(1000));
            enc.set_property("gop-size", gop);
            Ok(vec![enc])
        }
        VideoEncoder::X264 | VideoEncoder::Auto => {
            let enc = make("x264enc")?;
            // No B-frames nor lookahead: a forced keyframe comes out at once.
            enc.set_property_from_str("tune", "zerolatency");
            enc.set_property_from_str("speed-preset", "veryfast");
            enc.set_property("key-int-max", gop);
            enc.set_property("bitrate", kbps);
            Ok(vec![enc])
        }
        VideoEncoder::Vaapi => {
            let enc = make("vaapih264enc")?;
            enc.set_property_from_str("rate-control", "cbr");
            enc.set_property("bitrate", kbps);
            enc.set_property("keyframe-period", gop);
            Ok(vec![enc])
        }
        VideoEncoder::V4l2 => {
            let enc = make("v4l2h264enc")?;
            let controls = gst::Structure::builder("controls")
                .field("video_bitrate", kbps.saturating_mul(1000) as i32)
                .field("h264_i_frame_period", gop as i32)
                .build();
            enc.set_property("extra-controls", &controls);
            // Many m2m drivers (the Pi's) refuse to negotiate without a level in the caps.
            let caps = gst::Caps::builder("video/x-h264")
                .field("level", "4")
                .build();
            Ok(vec![enc, capsfilter(&caps)?])
        }
    }
}

/// What every encoded video stream of one pipeline shares.
struct Branch<'a> {
    pipeline: &'a gst::Pipeline,
    settings: &'a MediaSettings,
    which: VideoEncoder,
    splitmux: &'a gst::Element,
    marks: &'a Marks,
}

impl Branch<'_> {
    /// Add a video chain: input → I420 WxH@fps → watermark → queue → encoder → h264parse →
    /// `pad`; returns the parser and the stream's watermark. splitmuxsink's keyframe requests
    /// travel up it to the encoder.
    fn add(
        &self,
        mut chain: Vec<gst::Element>,
        pad: &str,
    ) -> Result<(gst::Element, Watermark), MediaError> {
        let settings = self.settings;
        chain.push(capsfilter(&video_caps(settings))?);
        // Burned in before encoding, on the capture thread (the mark's own pixels per frame).
        let mark = Watermark::new(&self.marks.video, settings.width, settings.height)?;
        chain.push(mark.element().clone());
        // The queue puts encoding on its own thread, so a slow frame never stalls capture.
        chain.push(make("queue")?);
        chain.extend(video_encoder(settings, self.which)?);
        let parser = make("h264parse")?;
        chain.push(parser.clone());
        add_chain(self.pipeline, &chain, self.splitmux, pad)?;
        Ok((parser, mark))
    }
}

/// Content and camera into a compositor whose output is encoded as the one video stream
/// (and watermarked once, on the composite).
fn add_pip_branch(
    branch: &Branch<'_>,
    camera: Vec<gst::Element>,
    content: Vec<gst::Element>,
) -> Result<(Pip, Watermark), MediaError> {
    let (pipeline, settings) = (branch.pipeline, branch.settings);
    let err = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
    let compositor = make("compositor")?;
    compositor.set_property_from_str("background", "black");
    // Compositor → encoder first (this adds it to the pipeline), then the inputs into it.
    let (_, mark) = branch.add(vec![compositor.clone()], "video")?;
    let mut pads = Vec::new();
    for (zorder, mut input) in [(0u32, content), (1u32, camera)] {
        input.push(capsfilter(&video_caps(settings))?);
        // Each input on its own thread: the compositor waits for both without stalling either.
        input.push(make("queue")?);
        pipeline.add_many(&input).map_err(|e| err(&e))?;
        gst::Element::link_many(&input).map_err(|e| err(&e))?;
        let sink = compositor
            .request_pad_simple("sink_%u")
            .ok_or_else(|| MediaError::Pipeline("the compositor gave no sink pad".into()))?;
        sink.set_property("zorder", zorder);
        let last = input.last().and_then(|e| e.static_pad("src"));
        let src = last.ok_or_else(|| MediaError::Pipeline("input without src pad".into()))?;
        src.link(&sink).map_err(|e| err(&e))?;
        pads.push(sink);
    }
    let camera_pad = pads.pop();
    let content_pad = pads.pop();
    match (content_pad, camera_pad) {
        (Some(content), Some(camera)) => Ok((
            Pip {
                content,
                camera,
                width: settings.width,
                height: settings.height,
            },
            mark,
        )),
        _ => Err(MediaError::Pipeline("the compositor lost its pads".into())),
    }
}

/// Add the audio chain; returns the `volume` element (software mute) and the audio
/// watermark's switch. W3: with `audio_mark` (48 bits naming the recording) the raw audio is
/// watermarked from the start ([`crate::audiomark`]); the switch changes it at a cut (W4).
fn add_audio_branch(
    pipeline: &gst::Pipeline,
    settings: &MediaSettings,
    ch: &Channels,
    splitmux: &gst::Element,
    audio_mark: Option<u64>,
) -> Result<(gst::Element, Option<MarkSwitch>), MediaError> {
    let mut chain = sources::audio_input(settings, ch)?;
    chain.push(make("audioconvert")?);
    let resample = make("audioresample")?;
    chain.push(resample.clone());
    let volume = make("volume")?;
    chain.push(volume.clone());
    chain.push(level_meter()?);
    chain.push(make("queue")?);
    let encoder = make(audio_factory(settings.audio))?;
    if audio_factory(settings.audio) == "voaacenc" {
        compensate_encoder_delay(&encoder);
    }
    chain.push(encoder);
    if settings.audio == AudioCodec::Aac {
        // Frames the encoder's raw AAC for the muxer (mpegtsmux wants ADTS or codec data).
        chain.push(make("aacparse")?);
    }
    add_chain(pipeline, &chain, splitmux, "audio_%u")?;
    // Marked at the rate the encoder codes, before the mute: muted audio stays silence.
    let switch = resample
        .static_pad("src")
        .map(|pad| crate::audiomark::attach(&pad, audio_mark));
    Ok((volume, switch))
}

/// How often the recorded sound's level is measured and reported (`<p>/levels`).
pub const LEVEL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The name of the `level` element, whose messages [`read_levels`] reads.
const LEVEL_NAME: &str = "recorded-level";

/// GStreamer's `level` (gst-plugins-good): passes the sound through untouched and posts peak
/// and RMS per channel on the bus every [`LEVEL_INTERVAL`].
fn level_meter() -> Result<gst::Element, MediaError> {
    let level = gst::ElementFactory::make("level")
        .name(LEVEL_NAME)
        .build()
        .map_err(|_| MediaError::MissingElement {
            factory: "level".into(),
            package: package_of("level"),
        })?;
    level.set_property("interval", LEVEL_INTERVAL.as_nanos() as u64);
    level.set_property("post-messages", true);
    Ok(level)
}

/// The levels in an element message of the recorded-sound meter; `None` for any other.
pub(crate) fn read_levels(
    source: Option<&gst::Object>,
    s: &gst::StructureRef,
) -> Option<AudioLevels> {
    if s.name() != "level" || source.map(|o| o.name()).as_deref() != Some(LEVEL_NAME) {
        return None;
    }
    let values = |field: &str| -> Vec<f64> {
        s.get::<gst::glib::ValueArray>(field)
            .map(|a| a.iter().filter_map(|v| v.get::<f64>().ok()).collect())
            .unwrap_or_default()
    };
    let channels: Vec<ChannelLevel> = values("peak")
        .into_iter()
        .zip(values("rms"))
        .map(|(peak_dbfs, rms_dbfs)| ChannelLevel {
            peak_dbfs,
            rms_dbfs,
        })
        .collect();
    AudioLevels::from_channels(&channels)
}

/// Samples an AAC-LC encoder outputs before the first input sample (the MDCT's overlap).
const AAC_DELAY_SAMPLES: i64 = 1024;

/// voaacenc stamps each AAC frame with the time of its input, but a decoder plays that input
/// one frame later, and voaacenc signals no priming: the sound was 1024 samples late in every
/// player (measured 32.9 ms at 48 kHz against the sync signal's flashes, 11.3 ms with this).
/// The encoder's output is moved earlier by that much, in running time, once the rate is known.
fn compensate_encoder_delay(encoder: &gst::Element) {
    let (Some(sink), Some(src)) = (encoder.static_pad("sink"), encoder.static_pad("src")) else {
        return;
    };
    sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(event)) = &info.data {
            if let gst::EventView::Caps(caps) = event.view() {
                let rate = caps
                    .caps()
                    .structure(0)
                    .and_then(|s| s.get::<i32>("rate").ok())
                    .filter(|r| *r > 0);
                if let Some(rate) = rate {
                    src.set_offset(-AAC_DELAY_SAMPLES * 1_000_000_000 / i64::from(rate));
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Add `chain` to the pipeline, link it in order and to a new `pad` of splitmuxsink.
fn add_chain(
    pipeline: &gst::Pipeline,
    chain: &[gst::Element],
    splitmux: &gst::Element,
    pad: &str,
) -> Result<(), MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::Pipeline(e.to_string());
    pipeline.add_many(chain).map_err(|e| err(&e))?;
    gst::Element::link_many(chain).map_err(|e| err(&e))?;
    let last = chain
        .last()
        .ok_or_else(|| MediaError::Pipeline("empty element chain".into()))?;
    let sink_pad = splitmux
        .request_pad_simple(pad)
        .ok_or_else(|| MediaError::Pipeline(format!("splitmuxsink gave no {pad} pad")))?;
    let src_pad = last
        .static_pad("src")
        .ok_or_else(|| MediaError::Pipeline(format!("{} has no src pad", last.name())))?;
    src_pad.link(&sink_pad).map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_hardware_then_x264_then_openh264() {
        use VideoEncoder::*;
        let only = |set: &'static [VideoEncoder]| move |e: VideoEncoder| set.contains(&e);
        assert_eq!(
            pick_encoder(Auto, only(&[V4l2, Vaapi, X264, OpenH264])).unwrap(),
            V4l2
        );
        assert_eq!(
            pick_encoder(Auto, only(&[Vaapi, X264, OpenH264])).unwrap(),
            Vaapi
        );
        assert_eq!(pick_encoder(Auto, only(&[X264, OpenH264])).unwrap(), X264);
        assert_eq!(pick_encoder(Auto, only(&[OpenH264])).unwrap(), OpenH264);
        let none = pick_encoder(Auto, only(&[])).unwrap_err().to_string();
        assert!(
            none.contains("x264enc") && none.contains("plugins-ugly"),
            "{none}"
        );
        // A configured encoder is never swapped for another.
        let e = pick_encoder(Vaapi, only(&[X264])).unwrap_err().to_string();
        assert!(
            e.contains("vaapih264enc") && e.contains("gstreamer1.0-vaapi"),
            "{e}"
        );
        assert_eq!(
            pick_encoder(OpenH264, only(&[X264, OpenH264])).unwrap(),
            OpenH264
        );
    }
}
