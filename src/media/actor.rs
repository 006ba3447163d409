//! The media actor: one thread that owns the capture pipeline and its bus.
//!
//! Owns: starting, cutting and stopping capture on `SetCapture`, muting, tagging each segment
//! with the recordings that were capturing while it was written, sealing closed segments and
//! reporting [`MediaFact`]s in order (the recorded sound's levels among them). Must not touch: SQLite, MQTT, the rules.
//!
//! Commands and bus messages arrive on one channel, in the order they happened (the bus's
//! sync handler forwards each message from the streaming thread as it is posted).
//!
//! Tagging goes by the pipeline's running time, not by when messages arrive: splitmuxsink
//! reports a segment only once its first GOP is complete, up to a GOP after capture. Each set
//! change is recorded with the running time of its cut; a segment opening at running time `r`
//! belongs to the last change at or before `r`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use tokio::sync::{mpsc as tokio_mpsc, oneshot};

use super::devices;
use super::inputs::{self, DeviceInputs, InputEvent, Kind};
use super::pipeline::{self, Capture, CaptureState};
use super::progress::MediaProgress;
use super::seal::seal_file;
use super::sources::Channels;
use super::{
    Marks, MediaCommand, MediaError, MediaFact, MediaSettings, SealedFile, Source, VideoEncoder,
};
use crate::protocol::{DeviceHealth, Id};
use crate::segments::{relative_path, seq_of};

/// How long stopping may take to see the last segment closed before the pipeline is dropped.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// `shutdown` waits a little longer than the actor's own bound, then gives up on it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// How often the open segment is looked at, and flushed to the disk when it grew. The muxer
/// writes a GOP at a time (splitmuxsink holds each until the next keyframe), so this fsyncs
/// once per GOP (0.5 s, see `pipeline::video_encoder`), within a tick of the GOP reaching the
/// file: a power cut loses about a GOP plus a tick plus the fsync beyond the file on disk,
/// under the 1 s RPO. (A blind fsync every 0.5 s lost up to 866 ms, every 0.25 s up to 995 ms
/// in the QEMU power-cut campaign, and cost twice the journal commits.)
const TICK: Duration = Duration::from_millis(100);
/// A flush slower than this is logged: the RPO assumes the disk keeps well under it.
const SLOW_FLUSH: Duration = Duration::from_millis(200);
/// How often lost devices are retried, device health is checked and the hardware mute read.
const DEVICE_CHECK: Duration = Duration::from_secs(1);

pub(crate) enum Msg {
    Command(MediaCommand),
    /// A bus message of the pipeline of that generation (older ones are ignored).
    Bus(u64, gst::Message),
    /// A bus message of the device pipeline of that input generation.
    Input(u64, gst::Message),
    /// The device pipeline of that input generation delivered its first buffer.
    Flowing(u64),
    Shutdown(Option<oneshot::Sender<()>>),
}

/// The daemon's side of the media actor; cheap to clone. When the last clone is dropped
/// without [`MediaHandle::shutdown`], capture stops as on shutdown, without anyone waiting.
#[derive(Clone)]
pub struct MediaHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    tx: mpsc::Sender<Msg>,
    progress: MediaProgress,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        // After `shutdown` the actor is gone and this send fails harmlessly.
        let _ = self.tx.send(Msg::Shutdown(None));
    }
}

impl MediaHandle {
    /// Whether capture runs and when buffers last reached the segment writer (the watchdog's
    /// media check).
    pub fn progress(&self) -> MediaProgress {
        self.inner.progress.clone()
    }

    /// Queue a command; never blocks (the queue is unbounded: commands are few and small).
    /// The outcome comes back as facts.
    pub fn send(&self, command: MediaCommand) {
        if self.inner.tx.send(Msg::Command(command)).is_err() {
            tracing::error!("media has stopped; command dropped");
        }
    }

    /// Stop capture with an EOS, wait (bounded) until the last segment is sealed and reported,
    /// then end the actor. The facts channel must have room or be read meanwhile: the last
    /// `Sealed` facts come through it.
    pub async fn shutdown(self) {
        let (done, wait) = oneshot::channel();
        if self.inner.tx.send(Msg::Shutdown(Some(done))).is_err() {
            return;
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, wait).await.is_err() {
            tracing::error!("media did not stop within {SHUTDOWN_GRACE:?}; leaving it behind");
        }
    }
}

/// Start the media actor. `next_seq` numbers the first segment (one past the catalog's last).
/// Fails at once on bad settings or a missing GStreamer element, not at the first recording.
pub fn spawn(
    settings: MediaSettings,
    next_seq: u64,
    facts: tokio_mpsc::Sender<MediaFact>,
) -> Result<MediaHandle, MediaError> {
    super::init()?;
    validate(&settings, next_seq)?;
    let encoder = pipeline::resolve_encoder(settings.encoder)?;
    for factory in [
        "splitmuxsink",
        pipeline::SEGMENT_MUXER,
        "h264parse",
        "level",
    ] {
        pipeline::make(factory)?;
    }
    pipeline::make(pipeline::audio_factory(settings.audio))?;
    if settings.audio == super::AudioCodec::Aac {
        pipeline::make("aacparse")?;
    }
    for factory in needed_factories(&settings) {
        pipeline::make(factory)?;
    }
    tracing::info!(?encoder, source = ?settings.source, "media settings accepted");
    std::fs::create_dir_all(&settings.segments_dir)
        .map_err(|e| MediaError::io(&settings.segments_dir, e))?;
    let (tx, rx) = mpsc::channel();
    let progress = MediaProgress::default();
    let actor = Actor {
        settings,
        encoder,
        next_seq,
        facts,
        tx: tx.clone(),
        rx,
        deferred: VecDeque::new(),
        recordings: Vec::new(),
        marks: Marks::default(),
        muted: false,
        sharing: false,
        running: None,
        generation: 0,
        health: None,
        devices_checked: Instant::now(),
        progress: progress.clone(),
    };
    let on_panic = actor.facts.clone();
    thread::Builder::new()
        .name("media".into())
        .spawn(move || {
            // A bug here must not pass silently: the daemon hears of it like any failure.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actor.run())).is_err() {
                let message = "the media actor panicked; restart the daemon".to_owned();
                let _ = on_panic.blocking_send(MediaFact::Failed { message });
            }
        })
        .map_err(|e| MediaError::Pipeline(format!("cannot start the media thread: {e}")))?;
    Ok(MediaHandle {
        inner: Arc::new(HandleInner { tx, progress }),
    })
}

/// The elements a source and layout need, checked at spawn so a missing plugin is named at
/// start, not at the first recording.
fn needed_factories(s: &MediaSettings) -> Vec<&'static str> {
    let mut f = Vec::new();
    let content = s.content.is_some();
    if content && s.pip && !s.multistream {
        f.push("compositor");
    }
    if s.source == Source::V4l2 {
        f.extend([
            "v4l2src",
            "jpegdec",
            "videoconvert",
            "videoscale",
            "videorate",
            "intervideosrc",
            "intervideosink",
            "alsasrc",
            "interaudiosrc",
            "interaudiosink",
        ]);
    }
    f
}

/// The same bounds as the config's (`config::keys`), so settings written out by hand (tests,
/// benches) cannot ask for what the config would refuse.
fn validate(s: &MediaSettings, next_seq: u64) -> Result<(), MediaError> {
    use crate::config::keys::{
        Bounds, FRAMERATE, HEIGHT, SEGMENT_SECONDS, VIDEO_BITRATE_KBPS, WIDTH,
    };
    let bad = |m: String| Err(MediaError::Settings(m));
    let outside = |value: u32, b: Bounds| {
        (!b.range().contains(&value))
            .then(|| format!("{} {value} must be {} to {}", b.key, b.min, b.max))
    };
    if let Some(m) = [
        outside(s.width, WIDTH),
        outside(s.height, HEIGHT),
        outside(s.framerate, FRAMERATE),
        outside(s.video_bitrate_kbps, VIDEO_BITRATE_KBPS),
    ]
    .into_iter()
    .flatten()
    .next()
    {
        return bad(m);
    }
    if s.width % 2 == 1 || s.height % 2 == 1 {
        return bad(format!("size {}x{} must be even", s.width, s.height));
    }
    let segments = u64::from(SEGMENT_SECONDS.min) * 1000..=u64::from(SEGMENT_SECONDS.max) * 1000;
    if !segments.contains(&s.segment_ms) {
        return bad(format!(
            "segment_ms {} must be {} to {} ({})",
            s.segment_ms,
            segments.start(),
            segments.end(),
            SEGMENT_SECONDS.key
        ));
    }
    if s.segments_dir.file_name().is_none() {
        return bad(format!(
            "segments_dir {} must name a folder",
            s.segments_dir.display()
        ));
    }
    if next_seq > i32::MAX as u64 {
        return bad(format!("next_seq {next_seq} exceeds {}", i32::MAX));
    }
    Ok(())
}

/// The segment being written now.
struct Open {
    seq: u64,
    location: PathBuf,
    start_ns: u64,
    recordings: Vec<Id>,
    /// The file's length at its last flush.
    flushed_len: u64,
}

struct Running {
    capture: Capture,
    /// The device pipelines feeding it (`None` with the test source).
    inputs: Option<DeviceInputs>,
    generation: u64,
    open: Option<Open>,
    /// `(running time of the cut in ns, recordings from then on)`, oldest first.
    changes: Vec<(u64, Vec<Id>)>,
}

impl Running {
    fn recordings_at(&mut self, start_ns: u64) -> Vec<Id> {
        tags_at(&mut self.changes, start_ns)
    }
}

/// The recordings of a segment whose first frame has running time `start_ns`: those of the
/// last change at or before it. Earlier changes are done with and dropped.
fn tags_at(changes: &mut Vec<(u64, Vec<Id>)>, start_ns: u64) -> Vec<Id> {
    let current = changes
        .iter()
        .rposition(|(at, _)| *at <= start_ns)
        .unwrap_or(0);
    changes.drain(..current);
    changes
        .first()
        .map(|(_, set)| set.clone())
        .unwrap_or_default()
}

/// How a bus message left the pipeline.
enum BusOutcome {
    Continue,
    Eos,
    /// The pipeline failed and is already torn down.
    Failed,
}

struct Actor {
    settings: MediaSettings,
    encoder: VideoEncoder,
    next_seq: u64,
    facts: tokio_mpsc::Sender<MediaFact>,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    /// Messages put aside while stopping, handled next in order.
    deferred: VecDeque<Msg>,
    /// The recordings capturing now (sorted, no duplicates).
    recordings: Vec<Id>,
    /// The marks of the segments written from the last cut on (W1–W4).
    marks: Marks,
    muted: bool,
    sharing: bool,
    running: Option<Running>,
    generation: u64,
    /// The device health last reported (V4L2 only).
    health: Option<(DeviceHealth, DeviceHealth)>,
    devices_checked: Instant,
    progress: MediaProgress,
}

impl Actor {
    fn run(mut self) {
        self.check_devices();
        let mut next_tick = Instant::now() + TICK;
        loop {
            if Instant::now() >= next_tick {
                // A busy queue must not starve the tick (and its fsync).
                self.tick();
                next_tick = Instant::now() + TICK;
            }
            let msg = match self.deferred.pop_front() {
                Some(m) => m,
                None => match self
                    .rx
                    .recv_timeout(next_tick.saturating_duration_since(Instant::now()))
                {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.tick();
                        next_tick = Instant::now() + TICK;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            match msg {
                Msg::Command(c) => self.on_command(c),
                Msg::Input(generation, m) => {
                    let event = self.inputs_mut().and_then(|i| i.on_message(generation, &m));
                    self.on_input_event(event);
                }
                Msg::Flowing(generation) => {
                    let event = self.inputs_mut().and_then(|i| i.on_flowing(generation));
                    self.on_input_event(event);
                }
                Msg::Bus(generation, m) => {
                    if let BusOutcome::Eos = self.on_bus(generation, &m) {
                        // EOS without our asking: a live source should never end by itself.
                        self.fail(false, "the capture source ended unexpectedly".into());
                    }
                }
                Msg::Shutdown(reply) => {
                    self.stop_capture();
                    if let Some(r) = reply {
                        let _ = r.send(());
                    }
                    break;
                }
            }
        }
        tracing::info!("media stopped");
    }

    fn on_command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::SetMuted(muted) => self.set_muted(muted),
            MediaCommand::SetSharing(sharing) => {
                self.sharing = sharing;
                if let Some(r) = &self.running {
                    r.capture.set_sharing(sharing);
                }
                tracing::info!(sharing, "content sharing set");
            }
            MediaCommand::SetCapture {
                mut recordings,
                marks,
            } => {
                recordings.sort();
                recordings.dedup();
                self.set_capture(recordings, marks);
            }
        }
    }

    fn set_capture(&mut self, recordings: Vec<Id>, marks: Marks) {
        tracing::info!(
            recordings = ?recordings,
            video_mark = marks.video.name(),
            audio_mark = marks.audio.is_some(),
            "capture set"
        );
        let changed = recordings != self.recordings || marks != self.marks;
        self.recordings = recordings;
        self.marks = marks;
        match (self.running.is_some(), self.recordings.is_empty()) {
            (false, false) => self.start_capture(),
            (true, true) => self.stop_capture(),
            (true, false) if changed => self.cut(),
            _ => {}
        }
    }

    /// Close the segment being written; tag what follows with the current set and mark it
    /// with the current marks (W4: from the first frame of the new segment).
    fn cut(&mut self) {
        let recordings = self.recordings.clone();
        let Some(running) = &mut self.running else {
            return;
        };
        match running.capture.running_time_ns() {
            Some(now) => {
                running.capture.cut_at(now);
                running.capture.mark_from(now, &self.marks);
                running.changes.push((now, recordings));
            }
            // Not playing yet, so nothing is captured: the new set simply applies from start.
            None => running.changes = vec![(0, recordings)],
        }
    }

    fn start_capture(&mut self) {
        self.generation += 1;
        let generation = self.generation;
        let channels = Channels::new();
        let state = CaptureState {
            muted: self.muted,
            sharing: self.sharing,
            marks: self.marks.clone(),
        };
        let capture = match Capture::build(
            &self.settings,
            self.encoder,
            self.next_seq,
            state,
            &channels,
        ) {
            Ok(c) => c,
            Err(e) => return self.report_error(e),
        };
        let inputs = match self.start_inputs(&channels) {
            Ok(i) => i,
            Err(message) => {
                // Nothing was captured: no segment to keep, just say which device and why.
                tracing::error!(%message, "capture cannot start");
                self.check_devices();
                self.report(MediaFact::Failed { message });
                return;
            }
        };
        let bus = match capture.pipeline.bus() {
            Some(b) => b,
            None => return self.report_error(MediaError::Pipeline("pipeline has no bus".into())),
        };
        let tx = self.tx.clone();
        // Forward from the posting thread at once, so messages and commands keep their order.
        bus.set_sync_handler(move |_, m| {
            let _ = tx.send(Msg::Bus(generation, m.clone()));
            gst::BusSyncReply::Drop
        });
        self.running = Some(Running {
            capture,
            inputs,
            generation,
            open: None,
            changes: vec![(0, self.recordings.clone())],
        });
        self.progress.started();
        let started = self.running.as_ref().map(|r| r.capture.play());
        if let Some(Err(e)) = started {
            self.fail(false, e.to_string());
            return;
        }
        tracing::info!(first_segment = self.next_seq, "capture started");
    }

    /// EOS, wait (bounded) until the last segment is closed and sealed, then drop the pipeline.
    fn stop_capture(&mut self) {
        let Some(generation) = self.running.as_ref().map(|r| r.generation) else {
            return;
        };
        // Stopping is bounded by STOP_TIMEOUT; the media requirement ends with the capture.
        self.progress.stopped();
        if !self.running.as_ref().is_some_and(|r| r.capture.send_eos()) {
            tracing::warn!("the pipeline did not take the EOS");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Msg::Bus(g, m)) => match self.on_bus(g, &m) {
                    BusOutcome::Continue => continue,
                    BusOutcome::Failed => return,
                    BusOutcome::Eos if g == generation => break,
                    BusOutcome::Eos => continue,
                },
                // Handled after the stop, in the order received.
                Ok(other) => self.deferred.push_back(other),
                Err(_) => {
                    tracing::error!("no EOS within {STOP_TIMEOUT:?}; stopping the pipeline anyway");
                    self.teardown(true);
                    return;
                }
            }
        }
        self.teardown(false);
        tracing::info!("capture stopped");
    }

    /// Stop the pipeline; `salvage` seals the segment it was writing if that file plays.
    fn teardown(&mut self, salvage: bool) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.progress.stopped();
        running.capture.stop();
        if let Some(mut inputs) = running.inputs {
            inputs.stop();
        }
        if let (true, Some(open)) = (salvage, running.open) {
            self.salvage(open);
        }
        self.release_all(&running.changes);
    }

    fn on_bus(&mut self, generation: u64, msg: &gst::Message) -> BusOutcome {
        if self.running.as_ref().map(|r| r.generation) != Some(generation) {
            return BusOutcome::Continue; // from a pipeline already torn down
        }
        use gst::MessageView;
        match msg.view() {
            MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    if let Some(levels) = pipeline::read_levels(msg.src(), s) {
                        self.report(MediaFact::Levels(levels));
                    } else if let Some(jpeg) = super::preview::read_picture(s) {
                        self.report(MediaFact::Preview(jpeg));
                    } else {
                        self.on_element(s);
                    }
                }
            }
            MessageView::Eos(_) => return BusOutcome::Eos,
            MessageView::Error(e) => {
                let no_space = e.error().matches(gst::ResourceError::NoSpaceLeft);
                let source = msg.src().map(|s| s.path_string().to_string());
                let message = format!(
                    "{} (from {}; {})",
                    e.error(),
                    source.unwrap_or_default(),
                    e.debug().unwrap_or_default()
                );
                self.fail(no_space, message);
                return BusOutcome::Failed;
            }
            MessageView::Warning(w) => {
                tracing::warn!(warning = %w.error(), debug = ?w.debug(), "GStreamer warning");
            }
            MessageView::Latency(_) => {
                if let Some(r) = &self.running {
                    let _ = r.capture.pipeline.recalculate_latency();
                }
            }
            _ => {}
        }
        if self.running.is_none() {
            return BusOutcome::Failed; // sealing failed and tore it down
        }
        BusOutcome::Continue
    }

    fn on_element(&mut self, s: &gst::StructureRef) {
        let name = s.name();
        if name != "splitmuxsink-fragment-opened" && name != "splitmuxsink-fragment-closed" {
            return;
        }
        let (Ok(location), Ok(running_time)) =
            (s.get::<String>("location"), s.get::<u64>("running-time"))
        else {
            tracing::error!(message = %s, "splitmuxsink message without location or time");
            return;
        };
        let location = PathBuf::from(location);
        if name == "splitmuxsink-fragment-opened" {
            self.on_opened(location, running_time);
        } else {
            self.on_closed(location, running_time);
        }
    }

    fn on_opened(&mut self, location: PathBuf, start_ns: u64) {
        let Some(seq) = seq_of(&location) else {
            tracing::error!(location = %location.display(), "segment name is not a number");
            return;
        };
        if let Some(r) = &self.running {
            r.capture.request_aux_keyframe();
        }
        // Never reuse a number: even a segment that is never sealed keeps its file.
        self.next_seq = seq + 1;
        self.progress.advanced();
        if let Some(r) = &mut self.running {
            let recordings = r.recordings_at(start_ns);
            tracing::debug!(segment = seq, recordings = ?recordings, start_ns, "segment opened");
            r.open = Some(Open {
                seq,
                location,
                start_ns,
                recordings,
                flushed_len: 0,
            });
        }
    }

    fn on_closed(&mut self, location: PathBuf, end_ns: u64) {
        let open = self.running.as_mut().and_then(|r| r.open.take());
        let open = match open {
            Some(o) if o.location == location => o,
            other => {
                tracing::error!(location = %location.display(), "closed a segment never opened");
                let Some(seq) = seq_of(&location) else { return };
                let start_ns = other.map_or(end_ns, |o| o.start_ns);
                let recordings = self
                    .running
                    .as_mut()
                    .map(|r| r.recordings_at(start_ns))
                    .unwrap_or_default();
                Open {
                    seq,
                    location,
                    start_ns,
                    recordings,
                    flushed_len: 0,
                }
            }
        };
        let duration_ms = end_ns.saturating_sub(open.start_ns) / 1_000_000;
        if let Err(e) = self.seal_and_report(open, duration_ms) {
            // Never announce what is not durable; stop writing more of it.
            self.fail(matches!(e, MediaError::DiskFull(_)), e.to_string());
        }
    }

    fn seal_and_report(&mut self, open: Open, duration_ms: u64) -> Result<(), MediaError> {
        let sealed = seal_file(&open.location)?;
        let start_ns = open.start_ns;
        if holds_no_media(&open.location, sealed.bytes) {
            // A capture stopped within a second of a cut can close a file before any frame
            // reached it; catalogued, it would be a "sealed" segment that does not play.
            tracing::warn!(
                segment = open.seq,
                bytes = sealed.bytes,
                "segment closed with no media in it; dropped, not catalogued"
            );
            if let Err(e) = std::fs::remove_file(&open.location) {
                tracing::warn!(segment = open.seq, error = %e, "cannot remove the empty segment");
            }
            self.release_after(open.recordings, start_ns + duration_ms * 1_000_000);
            return Ok(());
        }
        let file = SealedFile {
            seq: open.seq,
            path: relative_path(&self.settings.segments_dir, &open.location),
            abs_path: open.location,
            bytes: sealed.bytes,
            duration_ms,
            sha256: sealed.sha256,
            recordings: open.recordings,
        };
        tracing::info!(
            segment = file.seq,
            recordings = ?file.recordings,
            bytes = file.bytes,
            duration_ms,
            "segment sealed"
        );
        let end_ns = start_ns + duration_ms * 1_000_000;
        let candidates = file.recordings.clone();
        self.report(MediaFact::Sealed(file));
        self.release_after(candidates, end_ns);
        Ok(())
    }

    /// Reports, of `candidates`, those that cannot appear in any later segment: not in the set
    /// in force at `end_ns`, in a later cut, or in the set capturing now.
    fn release_after(&mut self, candidates: Vec<Id>, end_ns: u64) {
        let later: &[(u64, Vec<Id>)] = match &self.running {
            Some(r) => {
                let from = r.changes.iter().rposition(|(at, _)| *at <= end_ns);
                &r.changes[from.unwrap_or(0)..]
            }
            None => &[],
        };
        let still =
            |id: &Id| self.recordings.contains(id) || later.iter().any(|(_, set)| set.contains(id));
        let released: Vec<Id> = candidates.into_iter().filter(|id| !still(id)).collect();
        if !released.is_empty() {
            self.report(MediaFact::Released {
                recordings: released,
            });
        }
    }

    /// After the pipeline ended (stop or failure) nothing more of its recordings will come.
    fn release_all(&mut self, changes: &[(u64, Vec<Id>)]) {
        let mut ids: Vec<Id> = changes.iter().flat_map(|(_, set)| set.clone()).collect();
        ids.sort();
        ids.dedup();
        ids.retain(|id| !self.recordings.contains(id));
        if !ids.is_empty() {
            self.report(MediaFact::Released { recordings: ids });
        }
    }

    /// After a failure, keep the segment that was being written if it plays: MPEG-TS stays
    /// readable up to its last complete packet. Nothing recorded is dropped silently.
    fn salvage(&mut self, open: Open) {
        let seq = open.seq;
        // Not a regular file (a device, or gone): nothing there to keep.
        if !std::fs::metadata(&open.location).is_ok_and(|m| m.is_file()) {
            tracing::warn!(
                segment = seq,
                "the cut segment is not a regular file; not announced"
            );
            return;
        }
        match super::probe(&open.location) {
            Ok(info) if info.duration_ms > 0 => {
                if let Err(e) = self.seal_and_report(open, info.duration_ms) {
                    tracing::error!(segment = seq, error = %e, "cannot seal the cut segment");
                }
            }
            Ok(_) => tracing::warn!(segment = seq, "the cut segment is empty; not announced"),
            Err(e) => tracing::warn!(segment = seq, error = %e, "the cut segment does not play"),
        }
    }

    /// Tear the pipeline down (keeping what plays) and report; the next `SetCapture` restarts.
    fn fail(&mut self, disk_full: bool, message: String) {
        tracing::error!(disk_full, %message, "capture failed");
        self.teardown(true);
        self.report(if disk_full {
            MediaFact::DiskFull { message }
        } else {
            MediaFact::Failed { message }
        });
    }

    /// Start the device pipelines (V4L2); `Err` is the message for `Failed`.
    fn start_inputs(&mut self, channels: &Channels) -> Result<Option<DeviceInputs>, String> {
        if self.settings.source != Source::V4l2 {
            return Ok(None);
        }
        let (inputs, events) =
            DeviceInputs::start(&self.settings, channels, &self.tx).map_err(|e| e.to_string())?;
        for e in events {
            self.on_input_event(Some(e));
        }
        Ok(Some(inputs))
    }

    fn inputs_mut(&mut self) -> Option<&mut DeviceInputs> {
        self.running.as_mut().and_then(|r| r.inputs.as_mut())
    }

    fn on_input_event(&mut self, event: Option<InputEvent>) {
        let Some(event) = event else { return };
        self.report(match event {
            InputEvent::Lost {
                device,
                role,
                message,
            } => MediaFact::DeviceLost {
                device,
                role,
                message,
            },
            InputEvent::Back { device, role } => MediaFact::DeviceBack { device, role },
        });
        self.check_devices();
    }

    /// Every [`TICK`]: flush the open segment if it grew; every [`DEVICE_CHECK`]: retry lost
    /// devices, report health changes, follow the hardware mute.
    fn tick(&mut self) {
        self.sync_open_segment();
        #[cfg(feature = "fault-injection")]
        if let Some(r) = &self.running {
            super::fault::stall_if_asked(&self.settings.segments_dir, &r.capture.pipeline);
            super::fault::silence_if_asked(&self.settings.segments_dir, &r.capture.pipeline);
        }
        if self.settings.source != Source::V4l2 || self.devices_checked.elapsed() < DEVICE_CHECK {
            return;
        }
        self.devices_checked = Instant::now();
        if let Some(inputs) = self.inputs_mut() {
            inputs.retry();
        }
        self.check_devices();
        self.follow_capture_switch();
    }

    /// RPO: flush the segment being written to the disk once it grew (see [`TICK`]), so
    /// power loss costs about a GOP and a tick beyond it (kill -9 only the GOP: written data
    /// is in the page cache). A restart adopts the cut file: MPEG-TS plays up to its last
    /// whole packet. Growth is also the watchdog's sign of media progress.
    fn sync_open_segment(&mut self) {
        let Some(open) = self.running.as_mut().and_then(|r| r.open.as_mut()) else {
            return;
        };
        let started = Instant::now();
        let flushed = std::fs::File::open(&open.location).and_then(|f| {
            let len = f.metadata()?.len();
            if len > open.flushed_len {
                f.sync_data()?;
            }
            Ok(len)
        });
        match flushed {
            Ok(len) if len > open.flushed_len => {
                open.flushed_len = len;
                self.progress.advanced();
                let took = started.elapsed();
                if took > SLOW_FLUSH {
                    tracing::warn!(segment = open.seq, took_ms = took.as_millis() as u64, "the disk is slow: flushing the open segment took longer than the recovery point allows for");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(segment = open.seq, error = %e, "cannot flush the open segment");
            }
        }
    }

    /// Report `Devices` when the camera's or microphone's health changed (V4L2 only: the test
    /// source has no devices and reports none).
    fn check_devices(&mut self) {
        if self.settings.source != Source::V4l2 {
            return;
        }
        let s = &self.settings;
        let inputs = self.running.as_ref().and_then(|r| r.inputs.as_ref());
        let camera = inputs
            .and_then(|i| i.health(Kind::Camera))
            .unwrap_or_else(|| {
                let limits = inputs::limits(s);
                devices::camera_health(
                    s.camera.as_deref(),
                    inputs::camera_match(s),
                    s.content.as_deref(),
                    limits,
                )
            });
        let microphone = inputs
            .and_then(|i| i.health(Kind::Microphone))
            .unwrap_or_else(
                || match devices::check_microphone(inputs::microphone_name(s)) {
                    Ok(()) => DeviceHealth::Ok,
                    Err(e) => e.health(),
                },
            );
        if self.health != Some((camera, microphone)) {
            tracing::info!(?camera, ?microphone, "device health");
            self.health = Some((camera, microphone));
            self.report(MediaFact::Devices { camera, microphone });
        }
    }

    /// M1: software mute always (the test source has nothing else); on V4L2 also the ALSA
    /// capture switch, so the room's own mute LED and other programs agree.
    fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
        if let Some(r) = &self.running {
            r.capture.set_muted(muted);
        }
        if self.settings.source == Source::V4l2 {
            let mic = inputs::microphone_name(&self.settings);
            match devices::set_capture_switch(mic, !muted) {
                Ok(true) => tracing::info!(muted, mic, "capture switch set"),
                Ok(false) => tracing::info!(mic, "no capture switch; software mute only"),
                Err(e) => tracing::warn!(error = %e, "software mute only"),
            }
        }
        tracing::info!(muted, "microphone mute set");
        self.report(MediaFact::Muted(muted));
    }

    /// Someone flipped the capture switch outside roomrec (mixer, hardware key): follow it.
    fn follow_capture_switch(&mut self) {
        let mic = inputs::microphone_name(&self.settings);
        let Some(on) = devices::capture_switch(mic) else {
            return;
        };
        if on == self.muted {
            let muted = !on;
            tracing::info!(muted, mic, "capture switch changed outside roomrec");
            self.muted = muted;
            if let Some(r) = &self.running {
                r.capture.set_muted(muted);
            }
            self.report(MediaFact::Muted(muted));
        }
    }

    fn report_error(&mut self, e: MediaError) {
        let disk_full = matches!(e, MediaError::DiskFull(_));
        self.fail(disk_full, e.to_string());
    }

    /// Facts are few; waiting for room in the daemon's channel is the right back-pressure.
    fn report(&self, fact: MediaFact) {
        if self.facts.blocking_send(fact).is_err() {
            tracing::warn!("nobody reads media facts any more");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_take_the_set_in_force_when_their_first_frame_was_captured() {
        let a = vec![Id::parse("A").unwrap()];
        let ab = vec![Id::parse("A").unwrap(), Id::parse("B").unwrap()];
        let mut changes = vec![(0, a.clone()), (3_000, ab.clone()), (6_000, vec![])];
        assert_eq!(tags_at(&mut changes, 0), a);
        assert_eq!(tags_at(&mut changes, 2_000), a);
        assert_eq!(tags_at(&mut changes, 3_000), ab);
        // Changes before the one used are dropped; later ones stay.
        assert_eq!(changes.len(), 2);
        assert_eq!(tags_at(&mut changes, 5_999), ab);
        assert_eq!(tags_at(&mut changes, 7_000), Vec::<Id>::new());
    }

    #[test]
    fn settings_are_checked() {
        let ok = MediaSettings::default();
        assert!(validate(&ok, 0).is_ok());
        let odd = MediaSettings {
            width: 321,
            ..ok.clone()
        };
        assert!(validate(&odd, 0).unwrap_err().to_string().contains("even"));
        let short = MediaSettings {
            segment_ms: 10,
            ..ok.clone()
        };
        assert!(validate(&short, 0).is_err());
        assert!(validate(&ok, u64::MAX).is_err());
    }

    /// Media once allowed 120 fps and half-second segments, which the config refuses: the
    /// bounds are now the config's, so media accepts exactly what a valid config can ask.
    #[test]
    fn settings_are_checked_against_the_config_bounds() {
        let ok = MediaSettings::default();
        let with = |edit: fn(&mut MediaSettings)| {
            let mut s = ok.clone();
            edit(&mut s);
            validate(&s, 0).map_err(|e| e.to_string())
        };
        type Edit = fn(&mut MediaSettings);
        let refused: [(Edit, &str); 6] = [
            (|s| s.framerate = 61, "media.framerate 61 must be 1 to 60"),
            (|s| s.framerate = 120, "media.framerate"),
            (
                |s| s.segment_ms = 500,
                "segment_ms 500 must be 1000 to 60000",
            ),
            (|s| s.segment_ms = 60_001, "media.segment_seconds"),
            (|s| s.width = 4098, "media.width"),
            (|s| s.video_bitrate_kbps = 99, "media.video_bitrate_kbps"),
        ];
        for (edit, needle) in refused {
            let e = with(edit).expect_err(needle);
            assert!(e.contains(needle), "{e}");
        }
        for edit in [
            |s: &mut MediaSettings| s.framerate = 60,
            |s: &mut MediaSettings| s.segment_ms = 1_000,
            |s: &mut MediaSettings| s.segment_ms = 60_000,
            |s: &mut MediaSettings| (s.width, s.height) = (160, 120),
            |s: &mut MediaSettings| (s.width, s.height) = (4096, 2160),
        ] {
            assert!(with(edit).is_ok());
        }
    }

    /// Whatever the config accepts at the edges of its bounds, media accepts as built.
    #[test]
    fn settings_from_any_valid_config_pass() {
        use crate::config::{keys, Config};
        for b in [
            keys::SEGMENT_SECONDS,
            keys::WIDTH,
            keys::HEIGHT,
            keys::FRAMERATE,
            keys::VIDEO_BITRATE_KBPS,
        ] {
            for value in [b.min, b.max] {
                let leaf = b.key.trim_start_matches("media.");
                let text = format!(
                    "device_id = \"d\"\n[mqtt]\nurl = \"mqtt://127.0.0.1\"\n\
                     [storage]\ndir = \"/srv/r\"\n[media]\nsource = \"test\"\n{leaf} = {value}\n"
                );
                let config = Config::from_toml_str(&text).expect(&text);
                let settings = MediaSettings::from_config(&config, "/srv/r/segments".into());
                assert!(validate(&settings, 0).is_ok(), "{}", text);
            }
        }
    }
}

/// True when a closed segment holds no timestamped packet (or nothing at all).
fn holds_no_media(path: &Path, bytes: u64) -> bool {
    bytes == 0
        || super::tsscan::ts_content(path)
            .is_ok_and(|c| c.duration_ms.is_none() && c.video_frames == 0)
}

#[cfg(test)]
mod empty_segment_tests {
    use super::holds_no_media;

    #[test]
    fn an_empty_or_timestampless_segment_holds_no_media() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("00000001.ts");
        std::fs::write(&empty, b"").expect("write");
        assert!(holds_no_media(&empty, 0));
        // 2 TS packets with no PES (a PAT-like header only): nothing plays.
        let mut bare = vec![0u8; 376];
        bare[0] = 0x47;
        bare[188] = 0x47;
        let header_only = dir.path().join("00000002.ts");
        std::fs::write(&header_only, &bare).expect("write");
        assert!(holds_no_media(&header_only, 376));
    }
}
