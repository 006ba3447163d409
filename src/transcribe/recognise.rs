//! The recogniser: a recording's sound through `pocketsphinx`, at the lowest CPU priority.
//!
//! Owns: the pipeline `source → demuxer → queue → decodebin → audioconvert → audioresample
//! (16 kHz mono S16, the warm-up's primer played first: [`super::warmup`]) → pocketsphinx →
//! fakesink`, reading its hypotheses off the bus, and the priority of its threads. Must not
//! touch: the files it reads (only read), cue shaping.
//!
//! The source is either a file (the local MP4, through `parsebin`) or a recording's segments
//! (media's [`recording_source`](crate::media::recording_source) placing them on the
//! recording's timeline exactly as the MP4 is, so paused time is absent, through `tsdemux`).
//! Times are counted from the earliest buffer any stream of the demuxer gives, which is where
//! the MP4 (and the HLS) starts.
//!
//! Priority: every streaming thread of the pipeline is a thread of its own at nice 19 (see
//! [`super::priority`]), so capture, at the default priority, always goes first; the caller's
//! thread only waits on the bus and keeps its priority.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use tokio_util::sync::CancellationToken;

use super::cues::{Collector, Utterance};
use super::priority::LowPriorityPool;
use super::{Model, TranscribeError};
use crate::media::{self, make};

/// How often the pipeline's caller looks at its cancel token and progress.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(200);
/// A pipeline whose sound does not move on for this long is stuck.
const STALL: Duration = Duration::from_secs(120);

/// What to transcribe.
#[derive(Clone, Copy, Debug)]
pub enum Audio<'a> {
    /// A media file: the local MP4 (or any file `parsebin` reads).
    File(&'a Path),
    /// A recording's sealed segments, in order, plaintext.
    Segments(&'a [PathBuf]),
}

/// One hypothesis as posted, with its raw time (ns of the demuxer's timeline).
#[derive(Debug)]
enum Heard {
    Partial(String, u64),
    Final(String, u64),
}

/// What the streaming threads share with the caller.
#[derive(Default)]
struct Shared {
    heard: Mutex<Vec<Heard>>,
    /// The earliest buffer time of any demuxed stream, ns (`u64::MAX` until one is seen).
    zero: AtomicU64,
    /// The end (pts + duration) of the last buffer the recogniser took, ns.
    sound_end: AtomicU64,
    /// Whether the recogniser hears the warm-up's primer ([`super::warmup`]).
    priming: Arc<super::warmup::Priming>,
    /// Set once the recogniser has been linked to a sound stream.
    has_sound: std::sync::atomic::AtomicBool,
    /// The nice value of each streaming thread as it started.
    thread_nice: Mutex<Vec<i32>>,
}

/// Run the recogniser over `audio` to its end; blocking. The utterances' times are in ms of
/// the recording's timeline.
pub fn recognise(
    audio: Audio<'_>,
    model: &Model,
    cancel: &CancellationToken,
) -> Result<Vec<Utterance>, TranscribeError> {
    let shared = run_pipeline(audio, model, cancel)?;
    if !shared.has_sound.load(Ordering::SeqCst) {
        return Err(TranscribeError::NoSound);
    }
    tracing::debug!(threads = ?shared.thread_nice.lock().map(|n| n.clone()).unwrap_or_default(), "nice values of the recogniser's threads");
    Ok(collect(&shared))
}

fn run_pipeline(
    audio: Audio<'_>,
    model: &Model,
    cancel: &CancellationToken,
) -> Result<Arc<Shared>, TranscribeError> {
    gst::init().map_err(|e| TranscribeError::Pipeline(e.to_string()))?;
    let shared = Arc::new(Shared {
        zero: AtomicU64::new(u64::MAX),
        ..Shared::default()
    });
    let pipeline = build(audio, model, &shared, cancel)?;
    let result = run(&pipeline, &shared, cancel);
    let _ = pipeline.set_state(gst::State::Null);
    result.map(|()| shared)
}

fn collect(shared: &Shared) -> Vec<Utterance> {
    let zero = match shared.zero.load(Ordering::SeqCst) {
        u64::MAX => 0,
        z => z,
    };
    let ms = |ns: u64| ns.saturating_sub(zero) / 1_000_000;
    let mut collector = Collector::default();
    let heard = std::mem::take(&mut *shared.heard.lock().unwrap_or_else(|p| p.into_inner()));
    for h in heard {
        match h {
            Heard::Partial(text, ns) => collector.partial(&text, ms(ns)),
            Heard::Final(text, ns) => collector.final_hypothesis(&text, ms(ns)),
        }
    }
    collector.into_utterances()
}

fn build(
    audio: Audio<'_>,
    model: &Model,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> Result<gst::Pipeline, TranscribeError> {
    let pipeline = gst::Pipeline::with_name("transcribe");
    let (src, demux) = match audio {
        Audio::File(path) => {
            let src = make("filesrc")?;
            src.set_property("location", path.to_string_lossy().as_ref());
            (src, make("parsebin")?)
        }
        Audio::Segments(segments) => (media::recording_source(segments, cancel)?, make("tsdemux")?),
    };
    pipeline.add_many([&src, &demux]).map_err(perr)?;
    src.link(&demux).map_err(perr)?;
    let recogniser = recogniser_chain(&pipeline, model, shared)?;
    let weak = pipeline.downgrade();
    let linked = shared.clone();
    demux.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        watch_first_buffer(pad, &linked);
        if let Err(e) = link_stream(&pipeline, pad, &recogniser, &linked) {
            tracing::error!(error = %e, "cannot link a stream of the recording to the recogniser");
            let msg =
                gst::message::Error::builder(gst::CoreError::Negotiation, &e.to_string()).build();
            let _ = pipeline.post_message(msg);
        }
    });
    watch_bus(&pipeline, shared)?;
    Ok(pipeline)
}

/// audioconvert → audioresample → 16 kHz mono → pocketsphinx → fakesink; returns its head.
fn recogniser_chain(
    pipeline: &gst::Pipeline,
    model: &Model,
    shared: &Arc<Shared>,
) -> Result<gst::Element, TranscribeError> {
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("format", "S16LE")
            .field("rate", 16_000i32)
            .field("channels", 1i32)
            .build(),
    );
    if let Some(pad) = caps.static_pad("src") {
        super::warmup::dither(&pad);
        super::warmup::attach(&pad, shared.priming.clone());
    }
    let sphinx = make("pocketsphinx")?;
    sphinx.set_property("hmm", model.hmm.to_string_lossy().as_ref());
    sphinx.set_property("lm", model.lm.to_string_lossy().as_ref());
    sphinx.set_property("dict", model.dict.to_string_lossy().as_ref());
    let sink = make("fakesink")?;
    sink.set_property("sync", false);
    let chain = [&convert, &resample, &caps, &sphinx, &sink];
    pipeline.add_many(chain).map_err(perr)?;
    gst::Element::link_many(chain).map_err(perr)?;
    let pad = sphinx
        .static_pad("sink")
        .ok_or_else(|| TranscribeError::Pipeline("pocketsphinx without a sink pad".into()))?;
    let progress = shared.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            if let Some(pts) = buffer.pts() {
                let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                progress
                    .sound_end
                    .fetch_max(end.nseconds(), Ordering::SeqCst);
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(convert)
}

/// The first sound stream goes to the recogniser (through a queue and decodebin); any other
/// stream (the picture, a second sound) to a fakesink, undecoded.
fn link_stream(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    recogniser: &gst::Element,
    shared: &Shared,
) -> Result<(), TranscribeError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let is_sound = caps
        .structure(0)
        .is_some_and(|s| s.name().starts_with("audio/"));
    let first_sound = is_sound && !shared.has_sound.swap(true, Ordering::SeqCst);
    if !first_sound {
        let sink = make("fakesink")?;
        sink.set_property("sync", false);
        pipeline.add(&sink).map_err(perr)?;
        sink.sync_state_with_parent().map_err(perr)?;
        let sink_pad = sink
            .static_pad("sink")
            .ok_or_else(|| TranscribeError::Pipeline("fakesink without a sink pad".into()))?;
        return pad.link(&sink_pad).map(|_| ()).map_err(perr);
    }
    let queue = make("queue")?;
    let decode = make("decodebin")?;
    pipeline.add_many([&queue, &decode]).map_err(perr)?;
    queue.link(&decode).map_err(perr)?;
    let head = recogniser.downgrade();
    decode.connect_pad_added(move |_, decoded| {
        let Some(head) = head.upgrade() else { return };
        if let Some(sink) = head.static_pad("sink") {
            if !sink.is_linked() {
                if let Err(e) = decoded.link(&sink) {
                    tracing::error!(error = ?e, "cannot link the decoded sound to the recogniser");
                }
            }
        }
    });
    for element in [&decode, &queue] {
        element.sync_state_with_parent().map_err(perr)?;
    }
    let sink_pad = queue
        .static_pad("sink")
        .ok_or_else(|| TranscribeError::Pipeline("queue without a sink pad".into()))?;
    pad.link(&sink_pad).map(|_| ()).map_err(perr)
}

/// Keeps the earliest buffer time of `pad` in `shared.zero`, from its first buffer.
fn watch_first_buffer(pad: &gst::Pad, shared: &Arc<Shared>) {
    let shared = shared.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(pts) = info.buffer().and_then(|b| b.pts().or(b.dts())) {
            shared.zero.fetch_min(pts.nseconds(), Ordering::SeqCst);
        }
        gst::PadProbeReturn::Remove
    });
}

/// Hypotheses are taken in the streaming thread as they are posted (so a final one gets the
/// time the sound had reached then); each task goes to the low-priority pool as it is made.
fn watch_bus(pipeline: &gst::Pipeline, shared: &Arc<Shared>) -> Result<(), TranscribeError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| TranscribeError::Pipeline("pipeline has no bus".into()))?;
    let shared = shared.clone();
    let pool = LowPriorityPool::new();
    bus.set_sync_handler(move |_, msg| match msg.view() {
        gst::MessageView::StreamStatus(s) => {
            pool.adopt(s);
            // The enter message is posted from the new thread itself.
            if s.get().0 == gst::StreamStatusType::Enter {
                if let Ok(mut nice) = shared.thread_nice.lock() {
                    nice.push(super::priority::this_threads_nice());
                }
            }
            gst::BusSyncReply::Drop
        }
        gst::MessageView::Element(e) => {
            if let Some(s) = e.structure().filter(|s| s.name() == "pocketsphinx") {
                heard(&shared, s);
            }
            gst::BusSyncReply::Drop
        }
        _ => gst::BusSyncReply::Pass,
    });
    Ok(())
}

fn heard(shared: &Shared, s: &gst::StructureRef) {
    let Ok(text) = s.get::<String>("hypothesis") else {
        return;
    };
    let finished = s.get::<bool>("final").unwrap_or(false);
    if shared.priming.is_active() {
        // The voice detector's response to the primer's onset, not the recording's sound.
        shared.priming.heard(finished);
        if finished {
            tracing::debug!(hypothesis = %text, "dropped an utterance heard in the warm-up");
        }
        return;
    }
    let heard = if finished {
        Heard::Final(text, shared.sound_end.load(Ordering::SeqCst))
    } else {
        match s.get::<u64>("timestamp") {
            Ok(ns) if ns != u64::MAX => Heard::Partial(text, ns),
            _ => return,
        }
    };
    if let Ok(mut list) = shared.heard.lock() {
        list.push(heard);
    }
}

fn run(
    pipeline: &gst::Pipeline,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Result<(), TranscribeError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| TranscribeError::Pipeline("pipeline has no bus".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| TranscribeError::Pipeline(start_failure(&bus)))?;
    let (mut seen, mut moved) = (0, Instant::now());
    loop {
        if cancel.is_cancelled() {
            return Err(TranscribeError::Cancelled);
        }
        let now = shared.sound_end.load(Ordering::SeqCst);
        if now != seen {
            (seen, moved) = (now, Instant::now());
        } else if moved.elapsed() > STALL {
            return Err(TranscribeError::Stalled(STALL.as_secs()));
        }
        let types = [gst::MessageType::Eos, gst::MessageType::Error];
        let Some(msg) = bus.timed_pop_filtered(POLL, &types) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => {
                return Err(TranscribeError::Pipeline(format!(
                    "{} ({})",
                    e.error(),
                    e.debug().unwrap_or_default()
                )))
            }
            _ => {}
        }
    }
}

/// The error the pipeline posted while refusing to start (a model pocketsphinx cannot load).
fn start_failure(bus: &gst::Bus) -> String {
    bus.timed_pop_filtered(gst::ClockTime::ZERO, &[gst::MessageType::Error])
        .and_then(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "the transcription pipeline refused to start".into())
}

fn perr(e: impl std::fmt::Display) -> TranscribeError {
    TranscribeError::Pipeline(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five seconds of a tone as a WAV file, made by GStreamer.
    fn tone(path: &Path) {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(&format!(
            "audiotestsrc num-buffers=250 samplesperbuffer=960 ! audio/x-raw,rate=48000 ! \
             wavenc ! filesink location={}",
            path.display()
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }

    #[test]
    fn every_streaming_thread_runs_at_nice_19_and_the_callers_priority_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tone.wav");
        tone(&wav);
        let model = Model::find(Path::new(super::super::DEFAULT_MODEL_DIR))
            .expect("Debian's pocketsphinx-en-us is installed (scripts/install-deps)");
        let before = super::super::priority::this_threads_nice();
        let shared = run_pipeline(Audio::File(&wav), &model, &CancellationToken::new()).unwrap();
        let nice = shared.thread_nice.lock().unwrap().clone();
        assert!(
            !nice.is_empty(),
            "the pipeline's threads were seen starting"
        );
        assert!(nice.iter().all(|n| *n == 19), "{nice:?}");
        assert_eq!(super::super::priority::this_threads_nice(), before);
        assert!(shared.has_sound.load(Ordering::SeqCst));
        assert!(
            shared.sound_end.load(Ordering::SeqCst) >= 4_900_000_000,
            "all of it heard"
        );
    }
}
