//! The upload actor: one tokio task that drains the queue, writes manifests, shares and
//! deletes, and reports facts.
//!
//! Owns: which jobs are in flight, the link gate (closed while the store is unreachable or
//! refusing, probed with backoff), the bandwidth limiter's rate (full, or the live share), the
//! recordings waiting for completion, and the retries of manifest, share and delete work.
//! Must not touch: the rules, MQTT, media; catalog rows other than the upload queue's.
//!
//! Retry policy, by [`Scope`]: a link failure closes the gate and probes the store every
//! 100 → 500 ms (jittered, each probe bounded to 2 s), so uploads are back at full rate within
//! about a second of the link returning; a store-wide refusal (credentials, bucket, 5xx) backs off 1 s → 60 s and then
//! lets one upload through before the others; an object's own failure delays only that job,
//! 2 s → 5 min. Every failure is written to its job's row, so nothing is forgotten on restart.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest as _;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::error::{Failure, Scope, UploadError};
use super::limiter::Limiter;
use super::manifest::{self, ManifestSegment};
use super::store::{FileToSend, Store};
use super::transcript::{self, TranscriptSource};
use super::{UploadCommand, UploadFact, UploadSettings, LIVE_FLOOR_BYTES_PER_S};
use crate::catalog::{Catalog, PendingWork, UploadJob, UploadState};
use crate::completeness;
use crate::crypt::SegmentKey;
use crate::protocol::{CompletenessReport, CompletenessSummary, Id, RecordingInfo, Timestamp};
use crate::segments::{self, DecryptKey, Released};

/// The longest a job's own backoff grows; also the clock-step guard of `claim_upload`.
const MAX_JOB_BACKOFF: Duration = Duration::from_secs(300);
const LINK_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(500));
const STORE_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
const JOB_BACKOFF_BASE: Duration = Duration::from_secs(2);
/// How often the queue is looked at without a reason (due retries, completion grace).
const TICK: Duration = Duration::from_millis(500);
/// Link throughput is sampled over windows this long while uploads run at full rate.
const METER_WINDOW: Duration = Duration::from_secs(2);

/// The daemon's side of the upload actor; cheap to clone.
#[derive(Clone, Debug)]
pub struct UploadHandle {
    tx: mpsc::UnboundedSender<UploadCommand>,
}

impl UploadHandle {
    /// Queues a command; never blocks. Results come back as facts.
    pub fn send(&self, command: UploadCommand) {
        if self.tx.send(command).is_err() {
            error!("the upload actor has stopped; command dropped");
        }
    }
}

/// Starts the upload actor on the current tokio runtime. It opens its own connection to the
/// catalog at `catalog_path` (WAL mode lets it share the file with the daemon's) and reads
/// segment files relative to `storage_dir`. It stops when `cancel` fires; uploads cut off
/// then are sent again at the next start.
pub fn spawn(
    settings: UploadSettings,
    catalog_path: &Path,
    storage_dir: &Path,
    facts: mpsc::Sender<UploadFact>,
    cancel: CancellationToken,
) -> Result<UploadHandle, UploadError> {
    settings.validate()?;
    let store = Store::new(
        &settings.store,
        settings.clock_offset_s,
        settings.stall_timeout,
    )?;
    let mut catalog = Catalog::open(catalog_path)?;
    catalog.recover_uploads(Timestamp::now())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let limiter = Arc::new(Limiter::new(settings.rate_cap));
    info!(
        endpoint = %settings.store.endpoint,
        bucket = %settings.store.bucket,
        rate_cap = ?settings.rate_cap,
        live_share_percent = settings.live_share_percent,
        "upload actor started"
    );
    let transcripts = settings
        .transcription_model
        .clone()
        .map(|model_dir| TranscriptSource {
            model_dir,
            storage_dir: storage_dir.to_owned(),
            segment_key: settings.segment_key.clone(),
            cancel: cancel.child_token(),
        });
    let actor = Actor {
        store: Arc::new(store),
        catalog: Arc::new(Mutex::new(catalog)),
        storage_dir: storage_dir.to_owned(),
        transcripts,
        facts,
        limiter,
        live: false,
        meter: Meter::new(0),
        link_estimate: None,
        work: JoinSet::new(),
        in_flight: HashMap::new(),
        // Probe first: wrong credentials or a missing bucket show in the status at once.
        gate: Gate {
            state: GateState::Closed {
                until: Instant::now(),
                scope: Scope::Link,
            },
            failures: 0,
        },
        completing: BTreeMap::new(),
        ops: VecDeque::new(),
        last_error: None,
        last_error_scope: Some(Scope::Link),
        health_sent: None,
        settings,
    };
    tokio::spawn(actor.run(rx, cancel));
    Ok(UploadHandle { tx })
}

/// Whether new work may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GateState {
    Open,
    /// After a store-wide failure: one upload at a time until one succeeds.
    Trial,
    Closed {
        until: Instant,
        scope: Scope,
    },
    Probing,
}

#[derive(Debug)]
struct Gate {
    state: GateState,
    failures: u32,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            state: GateState::Open,
            failures: 0,
        }
    }
}

impl Gate {
    fn close(&mut self, scope: Scope) {
        let (base, max) = match scope {
            Scope::Link => LINK_BACKOFF,
            _ => STORE_BACKOFF,
        };
        let wait = crate::retry::jittered(base, max, self.failures);
        self.failures = self.failures.saturating_add(1);
        self.state = GateState::Closed {
            until: Instant::now() + wait,
            scope,
        };
        debug!(
            ?scope,
            wait_ms = wait.as_millis() as u64,
            "upload gate closed"
        );
    }

    fn succeeded(&mut self) {
        if matches!(self.state, GateState::Open | GateState::Trial) {
            self.state = GateState::Open;
            self.failures = 0;
        }
    }

    fn slots(&self, concurrency: usize) -> usize {
        match self.state {
            GateState::Open => concurrency,
            GateState::Trial => 1,
            _ => 0,
        }
    }
}

/// The health last reported, to report only changes.
#[derive(Debug, PartialEq)]
struct Health {
    pending: u64,
    pending_bytes: u64,
    last_error: Option<String>,
    oldest_pending: Option<Timestamp>,
    store_reachable: bool,
}

/// A recording waiting for its last uploads before its manifest (E1).
#[derive(Debug)]
struct Completion {
    info: RecordingInfo,
    /// T1 in force for the recording: its transcript goes with it.
    transcription: bool,
    jobs_seen: usize,
    last_change: Instant,
}

/// Manifest, share and delete work: retried until done. Share and delete are also kept in the
/// catalog (`row`) until done, so a restart resumes them; manifests are found again from the
/// recordings waiting for completion.
#[derive(Clone, Debug)]
enum RecordingOp {
    Manifest {
        info: RecordingInfo,
        jobs: Vec<UploadJob>,
        transcription: bool,
        /// Issue 14 item 4; `None` when the catalog could not give its evidence.
        completeness: Option<Box<CompletenessReport>>,
    },
    Share {
        row: i64,
        info: RecordingInfo,
        jobs: Vec<UploadJob>,
        shared: bool,
        /// The manifest is written again whole: with its report.
        completeness: Option<Box<CompletenessReport>>,
    },
    Delete {
        row: i64,
        recording_id: Id,
        keys: Vec<String>,
    },
}

enum Outcome {
    Completed {
        location: String,
        completeness: Option<CompletenessSummary>,
    },
    Shared,
    Deleted {
        objects: u64,
    },
}

enum Done {
    Upload {
        job: Box<UploadJob>,
        key: String,
        result: Result<String, Failure>,
    },
    Probe(Result<(), Failure>),
    Op {
        op: RecordingOp,
        result: Result<Outcome, Failure>,
    },
}

/// Measures the link while uploads run unthrottled, for the live share without a cap.
#[derive(Debug)]
struct Meter {
    since: Instant,
    total: u64,
    busy: bool,
}

impl Meter {
    fn new(total: u64) -> Meter {
        Meter {
            since: Instant::now(),
            total,
            busy: true,
        }
    }
}

struct Actor {
    settings: UploadSettings,
    store: Arc<Store>,
    catalog: Arc<Mutex<Catalog>>,
    storage_dir: PathBuf,
    /// T1: how transcripts are made; `None` without a model configured.
    transcripts: Option<TranscriptSource>,
    facts: mpsc::Sender<UploadFact>,
    limiter: Arc<Limiter>,
    live: bool,
    meter: Meter,
    link_estimate: Option<u64>,
    work: JoinSet<Done>,
    in_flight: HashMap<(u64, Id), AbortHandle>,
    gate: Gate,
    completing: BTreeMap<Id, Completion>,
    ops: VecDeque<(Instant, RecordingOp)>,
    last_error: Option<String>,
    last_error_scope: Option<Scope>,
    health_sent: Option<Health>,
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<UploadCommand>,
        cancel: CancellationToken,
    ) {
        self.resume_ops().await;
        loop {
            self.start_work().await;
            self.measure();
            self.report_health().await;
            tokio::select! {
                () = cancel.cancelled() => break,
                command = rx.recv() => match command {
                    Some(c) => self.command(c).await,
                    None => break,
                },
                Some(done) = self.work.join_next(), if !self.work.is_empty() => {
                    if let Ok(done) = done {
                        self.finished(done).await;
                    }
                }
                () = tokio::time::sleep(TICK) => {}
            }
        }
        self.stop().await;
    }

    /// Cut-off uploads go back to the queue now rather than at the next start.
    async fn stop(mut self) {
        self.work.abort_all();
        let ids: Vec<(u64, Id)> = self.in_flight.keys().cloned().collect();
        let _ = self
            .db(move |c| {
                for (seq, recording) in &ids {
                    c.upload_failed(*seq, recording, "interrupted by shutdown", Timestamp::now())?;
                }
                Ok(())
            })
            .await;
        info!("upload actor stopped");
    }

    // -----------------------------------------------------------------------------------------
    // Commands

    async fn command(&mut self, command: UploadCommand) {
        match command {
            UploadCommand::Wake => {}
            UploadCommand::MeetingLive(live) => {
                self.live = live;
                self.apply_rate();
            }
            UploadCommand::Complete {
                recording,
                transcription,
            } => {
                info!(recording = %recording.recording_id, transcription, "completion requested");
                self.completing.insert(
                    recording.recording_id.clone(),
                    Completion {
                        info: recording,
                        transcription,
                        jobs_seen: usize::MAX,
                        last_change: Instant::now(),
                    },
                );
            }
            UploadCommand::Share {
                recording_id,
                shared,
            } => self.share(recording_id, shared).await,
            UploadCommand::Delete { recording_id } => self.delete(recording_id).await,
        }
    }

    async fn share(&mut self, recording_id: Id, shared: bool) {
        if let Some(c) = self.completing.get_mut(&recording_id) {
            // Not complete yet: the manifest will be written with the new flag.
            c.info.shared = shared;
            self.fact(UploadFact::Shared {
                recording_id,
                shared,
            })
            .await;
            return;
        }
        let id = recording_id.clone();
        let found = self
            .db(move |c| match c.recording(&id)? {
                Some(info) => Ok(Some((
                    c.queue_share(&id, shared)?,
                    info,
                    c.upload_jobs_of(&id)?,
                ))),
                None => Ok(None),
            })
            .await;
        match found {
            Some(Some((row, mut info, jobs))) => {
                info.shared = shared;
                let completeness = self.completeness(&info).await;
                self.queue_op(RecordingOp::Share {
                    row,
                    info,
                    jobs,
                    shared,
                    completeness,
                });
            }
            Some(None) => warn!(recording = %recording_id, "share: no such recording"),
            None => {}
        }
    }

    async fn delete(&mut self, recording_id: Id) {
        self.completing.remove(&recording_id);
        self.ops.retain(|(_, op)| op_recording(op) != &recording_id);
        let in_flight: Vec<(u64, Id)> = self
            .in_flight
            .keys()
            .filter(|(_, r)| r == &recording_id)
            .cloned()
            .collect();
        for k in in_flight {
            if let Some(handle) = self.in_flight.remove(&k) {
                handle.abort();
            }
        }
        let id = recording_id.clone();
        let prefix = self.settings.key_prefix.clone();
        let queued = self
            .db(move |c| {
                let jobs = c.upload_jobs_of(&id)?;
                let info = c.recording(&id)?;
                let keys = object_keys(&prefix, info.as_ref(), &jobs);
                Ok((c.queue_delete(&id, &keys)?, keys))
            })
            .await;
        if let Some((row, keys)) = queued {
            self.queue_op(RecordingOp::Delete {
                row,
                recording_id,
                keys,
            });
        }
    }

    /// Share and delete work a restart cut short, back in the queue.
    async fn resume_ops(&mut self) {
        let Some(pending) = self
            .db(|c| {
                let mut found = Vec::new();
                for op in c.pending_ops()? {
                    let info = c.recording(&op.recording_id)?;
                    let jobs = c.upload_jobs_of(&op.recording_id)?;
                    found.push((op, info, jobs));
                }
                Ok(found)
            })
            .await
        else {
            return;
        };
        for (op, info, jobs) in pending {
            info!(recording = %op.recording_id, work = ?op.work, "resuming unfinished recording work");
            match (op.work, info) {
                (PendingWork::Share { shared }, Some(mut info)) => {
                    info.shared = shared;
                    let completeness = self.completeness(&info).await;
                    self.queue_op(RecordingOp::Share {
                        row: op.row,
                        info,
                        jobs,
                        shared,
                        completeness,
                    });
                }
                (PendingWork::Share { .. }, None) => {
                    let row = op.row;
                    let _ = self.db(move |c| c.op_done(row)).await;
                }
                (PendingWork::Delete { keys }, _) => self.queue_op(RecordingOp::Delete {
                    row: op.row,
                    recording_id: op.recording_id,
                    keys,
                }),
            }
        }
    }

    fn queue_op(&mut self, op: RecordingOp) {
        self.ops.push_back((Instant::now(), op));
    }

    // -----------------------------------------------------------------------------------------
    // Starting work

    async fn start_work(&mut self) {
        self.open_gate_if_due();
        self.check_completions().await;
        let slots = self.gate.slots(self.settings.concurrency);
        if slots == 0 {
            return;
        }
        self.start_ops();
        while self.in_flight.len() < slots {
            let claimed = self
                .db(|c| c.claim_upload(Timestamp::now(), MAX_JOB_BACKOFF.as_millis() as i64))
                .await;
            let Some(Some(job)) = claimed else { break };
            self.start_upload(job);
        }
    }

    fn open_gate_if_due(&mut self) {
        if let GateState::Closed { until, .. } = self.gate.state {
            if Instant::now() >= until {
                self.gate.state = GateState::Probing;
                let store = self.store.clone();
                let prefix = self.settings.key_prefix.clone();
                self.work
                    .spawn(async move { Done::Probe(store.probe(&prefix).await) });
            }
        }
    }

    fn start_upload(&mut self, job: UploadJob) {
        let key = self.segment_key(&job);
        let store = self.store.clone();
        let limiter = self.limiter.clone();
        let path = self.storage_dir.join(&job.segment.path);
        let segment_key = self.settings.segment_key.clone();
        let id = (job.segment.seq, job.recording_id.clone());
        debug!(segment = job.segment.seq, recording = %job.recording_id, key = %key, "upload started");
        let handle = self.work.spawn(async move {
            let result = send_segment(&store, limiter, &path, segment_key, &job, &key).await;
            Done::Upload {
                job: Box::new(job),
                key,
                result,
            }
        });
        self.in_flight.insert(id, handle);
    }

    fn start_ops(&mut self) {
        let now = Instant::now();
        let mut later = VecDeque::new();
        while let Some((due, op)) = self.ops.pop_front() {
            if due > now {
                later.push_back((due, op));
                continue;
            }
            let store = self.store.clone();
            let prefix = self.settings.key_prefix.clone();
            let transcripts = self.transcripts.clone();
            self.work.spawn(async move {
                let result = run_op(&store, &prefix, &op, transcripts.as_ref()).await;
                Done::Op { op, result }
            });
        }
        self.ops = later;
    }

    /// Recordings whose every job is uploaded and whose last segment is surely sealed get
    /// their manifest written.
    async fn check_completions(&mut self) {
        let ids: Vec<Id> = self.completing.keys().cloned().collect();
        for id in ids {
            let query_id = id.clone();
            let Some((jobs, later)) = self
                .db(move |c| {
                    let jobs = c.upload_jobs_of(&query_id)?;
                    let last = jobs.last().map_or(0, |j| j.segment.seq);
                    let later = !jobs.is_empty() && c.segment_after_without(last, &query_id)?;
                    Ok((jobs, later))
                })
                .await
            else {
                continue;
            };
            let Some(c) = self.completing.get_mut(&id) else {
                continue;
            };
            if c.jobs_seen != jobs.len() {
                c.jobs_seen = jobs.len();
                c.last_change = Instant::now();
            }
            let all_sent = jobs.iter().all(|j| j.state == UploadState::Uploaded);
            let sealed = later || c.last_change.elapsed() >= self.settings.seal_grace;
            if all_sent && sealed {
                let Some(c) = self.completing.remove(&id) else {
                    continue;
                };
                info!(recording = %id, segments = jobs.len(), "all segments uploaded; writing the manifest");
                let completeness = self.completeness(&c.info).await;
                self.queue_op(RecordingOp::Manifest {
                    info: c.info,
                    jobs,
                    transcription: c.transcription,
                    completeness,
                });
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Results

    async fn finished(&mut self, done: Done) {
        match done {
            Done::Upload { job, key, result } => {
                self.in_flight
                    .remove(&(job.segment.seq, job.recording_id.clone()));
                if self.in_flight.is_empty() {
                    self.meter.busy = false;
                }
                match result {
                    Ok(etag) => self.uploaded(*job, key, etag).await,
                    Err(f) => self.upload_failed(*job, f).await,
                }
            }
            Done::Probe(Ok(())) => {
                info!("the store answers again; uploads resume");
                self.gate.state = match self.gate.state {
                    GateState::Probing if self.last_scope_was_link() => GateState::Open,
                    _ => GateState::Trial,
                };
            }
            Done::Probe(Err(f)) => {
                self.note_error(&f);
                self.gate.close(f.scope());
            }
            Done::Op { op, result } => self.op_finished(op, result).await,
        }
    }

    /// Whether the store answers: not while the gate is shut or probing for a link failure
    /// (nor before the first probe, which starts as one).
    fn store_reachable(&self) -> bool {
        match self.gate.state {
            GateState::Open | GateState::Trial => true,
            GateState::Closed { scope, .. } => scope != Scope::Link,
            GateState::Probing => !self.last_scope_was_link(),
        }
    }

    fn last_scope_was_link(&self) -> bool {
        // Probing follows Closed; the scope was dropped then, so ask the last error's scope.
        self.last_error_scope == Some(Scope::Link)
    }

    async fn uploaded(&mut self, job: UploadJob, key: String, etag: String) {
        let (seq, recording_id, bytes) =
            (job.segment.seq, job.recording_id.clone(), job.segment.bytes);
        let k = key.clone();
        let r = recording_id.clone();
        let marked = self.db(move |c| c.mark_uploaded(seq, &r, &k, &etag)).await;
        self.gate.succeeded();
        self.last_error = None;
        match marked {
            Some(true) => {
                info!(segment = seq, recording = %recording_id, bytes, key = %key, "segment uploaded");
                self.fact(UploadFact::Uploaded {
                    seq,
                    recording_id,
                    bytes,
                })
                .await;
            }
            Some(false) => {
                // Deleted while it was on its way: remove what just arrived.
                info!(segment = seq, recording = %recording_id, "uploaded after its recording was deleted; removing it");
                let (id, keys) = (recording_id.clone(), vec![key]);
                let queued = self
                    .db(move |c| Ok((c.queue_delete(&id, &keys)?, keys)))
                    .await;
                if let Some((row, keys)) = queued {
                    self.queue_op(RecordingOp::Delete {
                        row,
                        recording_id,
                        keys,
                    });
                }
            }
            None => {}
        }
    }

    async fn upload_failed(&mut self, job: UploadJob, failure: Failure) {
        let scope = failure.scope();
        warn!(segment = job.segment.seq, recording = %job.recording_id, attempts = job.attempts + 1, error = %failure, "upload failed");
        self.note_error(&failure);
        let next = match scope {
            Scope::Object => {
                let wait = crate::retry::jittered(JOB_BACKOFF_BASE, MAX_JOB_BACKOFF, job.attempts);
                Timestamp(Timestamp::now().0 + wait.as_millis() as i64)
            }
            // The gate does the waiting; the job is due as soon as it opens.
            Scope::Link | Scope::Store => Timestamp::now(),
        };
        if scope != Scope::Object && matches!(self.gate.state, GateState::Open | GateState::Trial) {
            self.gate.close(scope);
        }
        let message = failure.to_string();
        let (seq, id) = (job.segment.seq, job.recording_id);
        let _ = self
            .db(move |c| c.upload_failed(seq, &id, &message, next))
            .await;
    }

    async fn op_finished(&mut self, op: RecordingOp, result: Result<Outcome, Failure>) {
        let recording_id = op_recording(&op).clone();
        match result {
            Ok(Outcome::Completed {
                location,
                completeness,
            }) => {
                info!(recording = %recording_id, location = %location, "cloud recording complete");
                self.fact(UploadFact::Completed {
                    recording_id,
                    location,
                    completeness,
                })
                .await;
            }
            Ok(Outcome::Shared) => {
                let RecordingOp::Share { row, shared, .. } = op else {
                    return;
                };
                let _ = self.db(move |c| c.op_done(row)).await;
                self.fact(UploadFact::Shared {
                    recording_id,
                    shared,
                })
                .await;
            }
            Ok(Outcome::Deleted { objects }) => {
                let local = self.remove_local_copies(&recording_id).await;
                if let RecordingOp::Delete { row, .. } = op {
                    let _ = self.db(move |c| c.op_done(row)).await;
                }
                info!(recording = %recording_id, objects, files = local.segments,
                    freed_bytes = local.bytes, "cloud recording deleted");
                self.fact(UploadFact::Deleted {
                    recording_id,
                    objects,
                    files: local.segments as u64,
                    freed_bytes: local.bytes,
                })
                .await;
            }
            Err(f) => {
                warn!(recording = %recording_id, error = %f, "recording work failed; will retry");
                self.note_error(&f);
                let wait = match f.scope() {
                    Scope::Object => JOB_BACKOFF_BASE,
                    scope => {
                        if matches!(self.gate.state, GateState::Open | GateState::Trial) {
                            self.gate.close(scope);
                        }
                        Duration::ZERO
                    }
                };
                self.ops.push_back((Instant::now() + wait, op));
            }
        }
    }

    /// Removes the local files only the deleted recording needed and marks them released
    /// (`segments::release`: folder fsynced first). Files that cannot be removed stay
    /// unreleased, for eviction to retry.
    async fn remove_local_copies(&mut self, recording_id: &Id) -> Released {
        let (id, storage) = (recording_id.clone(), self.storage_dir.clone());
        self.db(move |c| {
            let only_ours = c.segments_only_of(&id)?;
            segments::release(c, &storage, only_ours, Timestamp::now())
        })
        .await
        .unwrap_or_default()
    }

    // -----------------------------------------------------------------------------------------
    // Rate, health, helpers

    fn apply_rate(&mut self) {
        let rate = match self.live {
            false => self.settings.rate_cap,
            true => {
                let base = self
                    .settings
                    .rate_cap
                    .or(self.link_estimate)
                    .unwrap_or(LIVE_FLOOR_BYTES_PER_S * 4);
                let share = base.saturating_mul(u64::from(self.settings.live_share_percent)) / 100;
                // The floor keeps a backlog moving however low the link estimate fell (say,
                // measured while the store was down), but never above a configured cap.
                let cap = self.settings.rate_cap.unwrap_or(u64::MAX);
                Some(share.max(LIVE_FLOOR_BYTES_PER_S).min(cap))
            }
        };
        info!(live = self.live, rate = ?rate, "upload rate set");
        self.limiter.set_rate(rate);
        self.meter = Meter::new(self.limiter.total());
    }

    /// Samples the link's throughput while uploads run at full rate without a cap.
    fn measure(&mut self) {
        if self.live || self.settings.rate_cap.is_some() {
            return;
        }
        if self.meter.since.elapsed() < METER_WINDOW {
            return;
        }
        let total = self.limiter.total();
        if self.meter.busy && !self.in_flight.is_empty() {
            let secs = self.meter.since.elapsed().as_secs_f64();
            let sample = ((total - self.meter.total) as f64 / secs) as u64;
            let decayed = self.link_estimate.map_or(0, |e| e - e / 10);
            self.link_estimate = Some(sample.max(decayed));
        }
        self.meter = Meter::new(total);
    }

    fn note_error(&mut self, failure: &Failure) {
        self.last_error = Some(failure.to_string());
        self.last_error_scope = Some(failure.scope());
    }

    async fn report_health(&mut self) {
        let backlog = self
            .db(|c| Ok((c.upload_backlog()?, c.oldest_pending_upload()?)))
            .await;
        let Some(((pending, pending_bytes), oldest_pending)) = backlog else {
            return;
        };
        let store_reachable = self.store_reachable();
        let now = Health {
            pending,
            pending_bytes,
            last_error: self.last_error.clone(),
            oldest_pending,
            store_reachable,
        };
        if self.health_sent.as_ref() == Some(&now) {
            return;
        }
        let fact = UploadFact::Health {
            pending,
            pending_bytes,
            last_error: self.last_error.clone(),
            oldest_pending,
            store_reachable,
        };
        // Never wait for room: a newer health report will follow.
        if self.facts.try_send(fact).is_ok() {
            self.health_sent = Some(now);
        }
    }

    async fn fact(&self, fact: UploadFact) {
        if self.facts.send(fact).await.is_err() {
            debug!("nobody listens to upload facts any more");
        }
    }

    fn segment_key(&self, job: &UploadJob) -> String {
        let dir = manifest::recording_dir(
            &self.settings.key_prefix,
            &job.creator,
            &job.meeting_id,
            &job.recording_id,
        );
        format!(
            "{dir}{}",
            manifest::segment_name(job.segment.seq, &job.segment.path)
        )
    }

    /// Runs `f` on the catalog in a blocking thread (SQLite fsyncs). Errors are logged and
    /// shown in the status; the caller retries on a later turn.
    /// The recording's completeness report (issue 14 item 4) from the catalog's evidence;
    /// `None`, logged, when the catalog cannot give it: the manifest goes without.
    async fn completeness(&mut self, info: &RecordingInfo) -> Option<Box<CompletenessReport>> {
        let (id, created_at) = (info.recording_id.clone(), info.created_at);
        let evidence = self
            .db(move |c| c.completeness_evidence(&id, created_at))
            .await?;
        let report = completeness::report(&info.recording_id, created_at, &evidence);
        info!(recording = %info.recording_id, recorded_ms = report.summary.recorded_ms,
            covered_ms = report.summary.covered_ms, gaps = report.gaps.len(), "completeness report made");
        Some(Box::new(report))
    }

    async fn db<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Catalog) -> Result<T, crate::catalog::CatalogError> + Send + 'static,
    ) -> Option<T> {
        let catalog = self.catalog.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut c = catalog.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("catalog task failed: {e}")));
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                error!(error = %e, "upload queue: catalog access failed");
                self.last_error = Some(format!("the upload queue could not use the catalog: {e}"));
                None
            }
        }
    }
}

fn op_recording(op: &RecordingOp) -> &Id {
    match op {
        RecordingOp::Manifest { info, .. } | RecordingOp::Share { info, .. } => &info.recording_id,
        RecordingOp::Delete { recording_id, .. } => recording_id,
    }
}

/// Every key the recording may have in the bucket: its segments, playlists, transcript and
/// manifest.
fn object_keys(prefix: &str, info: Option<&RecordingInfo>, jobs: &[UploadJob]) -> Vec<String> {
    let dir = match (info, jobs.first()) {
        (Some(i), _) => manifest::recording_dir(prefix, &i.owner, &i.meeting_id, &i.recording_id),
        (None, Some(j)) => {
            manifest::recording_dir(prefix, &j.creator, &j.meeting_id, &j.recording_id)
        }
        (None, None) => return Vec::new(),
    };
    let mut keys: Vec<String> = jobs
        .iter()
        .map(|j| {
            format!(
                "{dir}{}",
                manifest::segment_name(j.segment.seq, &j.segment.path)
            )
        })
        .collect();
    // A transcribed recording's objects too (T1); absent ones are skipped when deleting.
    keys.extend(
        jobs.iter()
            .map(|j| format!("{dir}{}", manifest::subtitle_name(j.segment.seq))),
    );
    for name in [
        manifest::SUBTITLES_NAME,
        manifest::MASTER_NAME,
        manifest::PLAYLIST_NAME,
        manifest::MANIFEST_NAME,
    ] {
        keys.push(format!("{dir}{name}"));
    }
    keys
}

/// Checks the file against its sealed checksum, skips it if the store already holds it
/// (only after an earlier attempt), else sends it. Returns the verified ETag.
async fn send_segment(
    store: &Store,
    limiter: Arc<Limiter>,
    path: &Path,
    segment_key: Option<SegmentKey>,
    job: &UploadJob,
    key: &str,
) -> Result<String, Failure> {
    let file = hash_file(
        path.to_owned(),
        (job.segment.seq, segment_key),
        job.segment.bytes,
        job.segment.sha256.clone(),
    )
    .await?;
    if job.attempts > 0 {
        if let Some(obj) = store.head(key).await? {
            let md5 = hex::encode(file.md5);
            let complete = obj.bytes == file.bytes
                && obj.meta_sha256.as_deref() == Some(job.segment.sha256.as_str())
                && obj
                    .etag
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&md5));
            if complete {
                info!(segment = job.segment.seq, recording = %job.recording_id, "already in the store with the right checksum; not sent again");
                return Ok(md5);
            }
        }
    }
    store.put_file(key, &file, limiter).await
}

/// Reads the file once for MD5 and SHA-256, and refuses it if it is not what was sealed. A
/// segment encrypted at rest is decrypted to memory first (authenticated as segment `seq`,
/// so a tampered or swapped file is refused before any byte leaves) and sent from there.
async fn hash_file(
    path: PathBuf,
    (seq, segment_key): (u64, Option<SegmentKey>),
    bytes: u64,
    sha256: String,
) -> Result<FileToSend, Failure> {
    let display = path.display().to_string();
    let local = |detail: String| Failure::LocalFile {
        path: display.clone(),
        detail,
    };
    let hashed = tokio::task::spawn_blocking(move || -> Result<FileToSend, String> {
        let key = segment_key.map(DecryptKey::new);
        let plaintext = segments::decrypted(key.as_ref(), seq, &path).map_err(|e| e.to_string())?;
        if let Some(data) = plaintext {
            return Ok(FileToSend {
                bytes: data.len() as u64,
                md5: md5::Md5::digest(&data).into(),
                sha256: sha2::Sha256::digest(&data).into(),
                data: Some(bytes::Bytes::from(data)),
                path,
            });
        }
        hash_plain(path).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| local(e.to_string()))?
    .map_err(local)?;
    if hashed.bytes != bytes || hex::encode(hashed.sha256) != sha256 {
        return Err(local(format!(
            "it is not the file that was sealed ({} bytes and SHA-256 {} recorded, {} bytes and {} on disk)",
            bytes,
            sha256,
            hashed.bytes,
            hex::encode(hashed.sha256)
        )));
    }
    Ok(hashed)
}

fn hash_plain(path: PathBuf) -> std::io::Result<FileToSend> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(&path)?;
    let mut md5 = md5::Md5::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        total += n as u64;
    }
    Ok(FileToSend {
        path,
        data: None,
        bytes: total,
        md5: md5.finalize().into(),
        sha256: sha.finalize().into(),
    })
}

async fn run_op(
    store: &Store,
    prefix: &str,
    op: &RecordingOp,
    transcripts: Option<&TranscriptSource>,
) -> Result<Outcome, Failure> {
    match op {
        RecordingOp::Manifest {
            info,
            jobs,
            transcription,
            completeness,
        } => {
            let dir =
                manifest::recording_dir(prefix, &info.owner, &info.meeting_id, &info.recording_id);
            let segments = manifest_segments(jobs);
            // T1: the subtitle rendition first, so the master never names a missing one.
            let transcript = match (transcription, transcripts) {
                (true, Some(source)) => {
                    transcript::upload(store, &dir, &info.recording_id, jobs, &segments, source)
                        .await?
                }
                _ => false,
            };
            let playlist_key = format!("{dir}{}", manifest::PLAYLIST_NAME);
            store
                .put_bytes(
                    &playlist_key,
                    manifest::hls_playlist(&segments).into_bytes(),
                )
                .await?;
            let master_key = format!("{dir}{}", manifest::MASTER_NAME);
            if transcript {
                store
                    .put_bytes(
                        &master_key,
                        manifest::master_playlist(&segments).into_bytes(),
                    )
                    .await?;
            }
            let report = completeness.as_deref();
            let json = manifest::manifest_json(info, &segments, info.shared, transcript, report);
            store
                .put_bytes(&format!("{dir}{}", manifest::MANIFEST_NAME), json)
                .await?;
            // With a transcript, the master playlist is what a player opens to get both.
            let location = if transcript { master_key } else { playlist_key };
            Ok(Outcome::Completed {
                location: store.object_url(&location),
                completeness: report.map(|r| r.summary.clone()),
            })
        }
        RecordingOp::Share {
            info,
            jobs,
            shared,
            completeness,
            ..
        } => {
            let dir =
                manifest::recording_dir(prefix, &info.owner, &info.meeting_id, &info.recording_id);
            let transcript = transcript::present(store, &dir).await?;
            let segments = manifest_segments(jobs);
            let report = completeness.as_deref();
            let json = manifest::manifest_json(info, &segments, *shared, transcript, report);
            store
                .put_bytes(&format!("{dir}{}", manifest::MANIFEST_NAME), json)
                .await?;
            Ok(Outcome::Shared)
        }
        RecordingOp::Delete { keys, .. } => {
            let mut objects = 0;
            for key in keys {
                // Only some recordings have a transcript; a store may answer a DELETE of a
                // missing object with success, which must not count as an object removed.
                if manifest::is_transcript_key(key) && store.head(key).await?.is_none() {
                    continue;
                }
                if store.delete(key).await? {
                    objects += 1;
                }
            }
            Ok(Outcome::Deleted { objects })
        }
    }
}

fn manifest_segments(jobs: &[UploadJob]) -> Vec<ManifestSegment> {
    jobs.iter()
        .map(|j| ManifestSegment {
            seq: j.segment.seq,
            name: manifest::segment_name(j.segment.seq, &j.segment.path),
            bytes: j.segment.bytes,
            duration_ms: j.segment.duration_ms,
            sha256: j.segment.sha256.clone(),
            etag: j.etag.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        for n in 0..40 {
            let d = crate::retry::jittered(LINK_BACKOFF.0, LINK_BACKOFF.1, n);
            assert!(d <= LINK_BACKOFF.1, "{n}: {d:?}");
        }
        let early = crate::retry::jittered(STORE_BACKOFF.0, STORE_BACKOFF.1, 0);
        assert!(early >= Duration::from_millis(500) && early < Duration::from_secs(1));
        let late = crate::retry::jittered(STORE_BACKOFF.0, STORE_BACKOFF.1, 30);
        assert!(late >= Duration::from_secs(30) && late <= STORE_BACKOFF.1);
    }

    #[test]
    fn a_gate_closed_for_the_link_lets_nothing_through_then_opens_fully() {
        let mut gate = Gate::default();
        assert_eq!(gate.slots(3), 3);
        gate.close(Scope::Link);
        assert_eq!(gate.slots(3), 0);
        gate.state = GateState::Trial;
        assert_eq!(gate.slots(3), 1);
        gate.succeeded();
        assert_eq!((gate.slots(3), gate.failures), (3, 0));
    }
}
