//! The capture pipeline: one capture, one encode, one numbered sequence of segment files.
//!
//! Owns: building the GStreamer elements, muting, cutting a segment at a forced keyframe and
//! stopping with an EOS. Must not touch: the bus (the actor reads it), SQLite, MQTT, the rules.
//!
//! ```text
//! video source → I420 WxH@fps → queue → x264enc|openh264enc → h264parse ─┐
//!                                                                        splitmuxsink(mpegtsmux)
//! audio source → audioconvert → audioresample → volume → queue → avenc_aac+aacparse|opusenc ─┘
//! ```
//! Sources are built by [`video_source`] / [`audio_source`], so a camera or microphone only
//! adds a `Source` variant there; the encode and segment side stays as it is.

use gst::prelude::*;
use gstreamer as gst;

use super::{AudioCodec, MediaError, MediaSettings, Source, VideoEncoder};

/// The container of the segments, and their file extension.
pub(crate) const SEGMENT_MUXER: &str = "mpegtsmux";
pub(crate) const SEGMENT_EXT: &str = "ts";

/// A running (or about to run) capture pipeline.
pub(crate) struct Capture {
    pub pipeline: gst::Pipeline,
    volume: gst::Element,
    splitmux: gst::Element,
}

impl Capture {
    /// Build the pipeline (not started); its first segment is numbered `start_index`.
    pub fn build(
        settings: &MediaSettings,
        encoder: VideoEncoder,
        start_index: u64,
        muted: bool,
    ) -> Result<Capture, MediaError> {
        let pipeline = gst::Pipeline::with_name("capture");
        let splitmux = splitmux_sink(settings, start_index)?;
        pipeline
            .add(&splitmux)
            .map_err(|e| MediaError::Pipeline(e.to_string()))?;
        add_video_branch(&pipeline, settings, encoder, &splitmux)?;
        let volume = add_audio_branch(&pipeline, settings, &splitmux)?;
        volume.set_property("mute", muted);
        Ok(Capture {
            pipeline,
            volume,
            splitmux,
        })
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
        "avenc_aac" => "gstreamer1.0-libav",
        "splitmuxsink" | "splitmuxsrc" | "matroskamux" | "matroskademux" | "mp4mux" | "v4l2src"
        | "jpegdec" => "gstreamer1.0-plugins-good",
        "queue" | "capsfilter" | "filesink" => "libgstreamer1.0-0",
        _ => "gstreamer1.0-plugins-base",
    }
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

/// `Auto` becomes x264enc when installed (better quality per bit), else openh264enc.
pub(crate) fn resolve_encoder(choice: VideoEncoder) -> Result<VideoEncoder, MediaError> {
    let wanted = match choice {
        VideoEncoder::Auto if has_factory("x264enc") => VideoEncoder::X264,
        VideoEncoder::Auto => VideoEncoder::OpenH264,
        other => other,
    };
    let factory = encoder_factory(wanted);
    if has_factory(factory) {
        Ok(wanted)
    } else {
        Err(MediaError::MissingElement {
            factory: factory.into(),
            package: package_of(factory),
        })
    }
}

fn encoder_factory(encoder: VideoEncoder) -> &'static str {
    match encoder {
        VideoEncoder::OpenH264 => "openh264enc",
        VideoEncoder::X264 | VideoEncoder::Auto => "x264enc",
    }
}

pub(crate) fn audio_factory(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Opus => "opusenc",
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
    let location = settings.segments_dir.join(format!("%08d.{SEGMENT_EXT}"));
    let location = location.to_str().ok_or_else(|| {
        MediaError::Settings(format!(
            "segments_dir {} is not valid UTF-8",
            settings.segments_dir.display()
        ))
    })?;
    // MPEG-TS: HLS players take it as is, and a file cut short by a crash is a run of
    // self-contained 188-byte packets that plays up to the cut.
    let muxer = make(SEGMENT_MUXER)?;
    let sink = make("splitmuxsink")?;
    sink.set_property("muxer", &muxer);
    sink.set_property("location", location);
    sink.set_property("start-index", start);
    sink.set_property("max-size-time", settings.segment_ms * 1_000_000);
    // Asks the encoder for a keyframe at each time split, so segments end on time.
    sink.set_property("send-keyframe-requests", true);
    Ok(sink)
}

/// The raw video elements of a source, first to last.
fn video_source(source: &Source) -> Result<Vec<gst::Element>, MediaError> {
    match source {
        Source::Test => {
            let src = make("videotestsrc")?;
            src.set_property("is-live", true);
            // A moving picture, so the encoder does real work and frames differ.
            src.set_property_from_str("pattern", "ball");
            Ok(vec![src])
        }
    }
}

/// The raw audio elements of a source, first to last.
fn audio_source(source: &Source) -> Result<Vec<gst::Element>, MediaError> {
    match source {
        Source::Test => {
            let src = make("audiotestsrc")?;
            src.set_property("is-live", true);
            src.set_property_from_str("wave", "sine");
            Ok(vec![src])
        }
    }
}

fn video_encoder(
    settings: &MediaSettings,
    which: VideoEncoder,
) -> Result<gst::Element, MediaError> {
    let gop = settings.framerate.saturating_mul(2);
    match which {
        VideoEncoder::OpenH264 => {
            let enc = make("openh264enc")?;
            enc.set_property_from_str("rate-control", "bitrate");
            enc.set_property("bitrate", settings.video_bitrate_kbps.saturating_mul(1000));
            enc.set_property("gop-size", gop);
            Ok(enc)
        }
        VideoEncoder::X264 | VideoEncoder::Auto => {
            let enc = make("x264enc")?;
            // No B-frames nor lookahead: a forced keyframe comes out at once.
            enc.set_property_from_str("tune", "zerolatency");
            enc.set_property_from_str("speed-preset", "veryfast");
            enc.set_property("key-int-max", gop);
            enc.set_property("bitrate", settings.video_bitrate_kbps);
            Ok(enc)
        }
    }
}

fn video_caps(settings: &MediaSettings) -> Result<gst::Element, MediaError> {
    // I420: x264enc fed anything else may pick High 4:4:4, which few players decode.
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", settings.width as i32)
        .field("height", settings.height as i32)
        .field(
            "framerate",
            gst::Fraction::new(settings.framerate as i32, 1),
        )
        .build();
    let filter = make("capsfilter")?;
    filter.set_property("caps", &caps);
    Ok(filter)
}

/// Add the video chain; splitmuxsink's keyframe requests travel up it to the encoder.
fn add_video_branch(
    pipeline: &gst::Pipeline,
    settings: &MediaSettings,
    which: VideoEncoder,
    splitmux: &gst::Element,
) -> Result<(), MediaError> {
    let mut chain = video_source(&settings.source)?;
    chain.push(video_caps(settings)?);
    // The queue puts encoding on its own thread, so a slow frame never stalls capture.
    chain.push(make("queue")?);
    chain.push(video_encoder(settings, which)?);
    chain.push(make("h264parse")?);
    add_chain(pipeline, &chain, splitmux, "video")
}

/// Add the audio chain; returns the `volume` element (software mute).
fn add_audio_branch(
    pipeline: &gst::Pipeline,
    settings: &MediaSettings,
    splitmux: &gst::Element,
) -> Result<gst::Element, MediaError> {
    let mut chain = audio_source(&settings.source)?;
    chain.push(make("audioconvert")?);
    chain.push(make("audioresample")?);
    let volume = make("volume")?;
    chain.push(volume.clone());
    chain.push(make("queue")?);
    chain.push(make(audio_factory(settings.audio))?);
    if settings.audio == AudioCodec::Aac {
        // Frames the encoder's raw AAC for the muxer (mpegtsmux wants ADTS or codec data).
        chain.push(make("aacparse")?);
    }
    add_chain(pipeline, &chain, splitmux, "audio_%u")?;
    Ok(volume)
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
