//! The core loop: feeds every fact into the rules engine and carries out the plan the
//! dispatcher makes of its outputs.
//!
//! Owns: the `Engine` and the order of side effects: catalog first (one transaction), then
//! MQTT, then media, uploads and conversions. Must not touch: SQLite, GStreamer or the broker
//! directly — it talks to their owners through handles and channels — nor decide anything the
//! dispatcher (`dispatch`), admission (`admission`), the media barrier (`barrier`) or the
//! schedule (`schedule`) decide.
//!
//! Durability: replies and events are written to the catalog's outbox in the same transaction
//! as the recording rows they report, and leave the outbox only when the broker acknowledged
//! them, so a crash or a broker outage never loses a `recording_ready` or a reply.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::admission::{Admission, Admitted};
use super::alarms::{Device, Fact};
use super::barrier::{MediaBarrier, MEDIA_RELEASE_TIMEOUT};
use super::catalog_thread::CatalogHandle;
use super::clock::{self, Clock};
use super::conversion::{ConversionDone, Conversions};
use super::dispatch::{self, to_json, Plan};
use super::housekeeping;
use super::notify::Notifier;
use super::schedule;
use super::silence::SilenceMeter;
use super::status::StatusBoard;
use super::watchdog::Watchdog;
use crate::auth::Verifier;
use crate::catalog::{Op, SegmentRecord};
use crate::completeness::{Mark, MarkKind};
use crate::config::StorageConfig;
use crate::control::{Destination, Inbound, Outbound, ResponseAddr, Topic};
use crate::media::{DeviceKind, MediaCommand, MediaFact, MediaHandle, SealedFile};
use crate::protocol::{
    AudioLevels, Command, DeviceHealth, DeviceRole, ErrorBody, ErrorCode, Id, LevelsDoc,
    MeetingState, RecordingInfo, RecordingKind, Reply, Timestamp,
};
use crate::rules::{Effect, Engine, Input, Output, SealedSegment};
use crate::segments::{self, ByteLedger};
use crate::upload::{UploadCommand, UploadFact, UploadHandle};

/// What the core is built from: the engine and the handles of the adapters it drives.
pub struct Wiring {
    pub engine: Engine,
    pub verifier: Verifier,
    pub catalog: CatalogHandle,
    pub media: MediaHandle,
    /// `None` without an `[upload]` section (cloud recording is then unavailable).
    pub uploader: Option<UploadHandle>,
    pub to_control: mpsc::Sender<Outbound>,
    pub conversions: Conversions,
    /// Decides each tick whether to ping systemd's watchdog (core turning, media progressing).
    pub watchdog: Watchdog,
    pub storage: StorageConfig,
    /// Bytes of segments not yet released, as the catalog counted them at start.
    pub ledger: ByteLedger,
    /// `transcription.model_dir`, for `status`.
    pub transcription_model: PathBuf,
}

pub struct Core {
    engine: Engine,
    admission: Admission,
    catalog: CatalogHandle,
    media: MediaHandle,
    uploader: Option<UploadHandle>,
    to_control: mpsc::Sender<Outbound>,
    conversions: Conversions,
    status: StatusBoard,
    notifier: Notifier,
    watchdog: Watchdog,
    clock: Clock,
    /// The last state published, for republishing after a reconnect.
    last_state: Option<Vec<u8>>,
    /// Kind of every recording seen, to tag cloud segments for upload.
    kinds: HashMap<Id, RecordingKind>,
    barrier: MediaBarrier,
    storage_dir: PathBuf,
    storage: StorageConfig,
    /// Bytes of segments not yet released; the core only forwards it the facts.
    ledger: ByteLedger,
    /// Silent time of the segment being written, saved with it when it is sealed.
    silence: SilenceMeter,
}

/// The channels the core listens on.
pub struct CoreInputs {
    pub inbound: mpsc::Receiver<Inbound>,
    pub media: mpsc::Receiver<MediaFact>,
    pub conversions: mpsc::Receiver<ConversionDone>,
    pub upload: mpsc::Receiver<UploadFact>,
}

impl Core {
    pub fn new(wiring: Wiring) -> Core {
        Core {
            engine: wiring.engine,
            admission: Admission::new(wiring.verifier, wiring.catalog.clone()),
            catalog: wiring.catalog,
            media: wiring.media,
            uploader: wiring.uploader,
            to_control: wiring.to_control,
            conversions: wiring.conversions,
            status: StatusBoard::new(wiring.transcription_model),
            notifier: Notifier::default(),
            watchdog: wiring.watchdog,
            clock: Clock::new(),
            last_state: None,
            kinds: HashMap::new(),
            barrier: MediaBarrier::default(),
            storage_dir: wiring.storage.dir.clone(),
            storage: wiring.storage,
            ledger: wiring.ledger,
            silence: SilenceMeter::default(),
        }
    }

    /// Gives the engine the recordings that were live at the last stop and the last meeting
    /// version it applied, then the storage budget, before the first command can arrive.
    pub async fn restore(&mut self, restored: Vec<RecordingInfo>, meeting_version: Option<u64>) {
        for r in &restored {
            self.kinds.insert(r.recording_id.clone(), r.kind);
        }
        if let Some(version) = meeting_version {
            self.feed(Input::RestoreMeetingVersion(version), None).await;
        }
        self.feed(Input::Restore(restored), None).await;
        self.refresh_room().await;
    }

    /// Tells systemd the daemon is ready (READY=1).
    pub fn ready(&self) {
        self.notifier.ready();
    }

    /// Runs until `cancel` fires, then stops recordings cleanly (segments sealed and catalogued).
    pub async fn run(mut self, mut inputs: CoreInputs, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(schedule::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(fact) = inputs.media.recv() => self.on_media(fact).await,
                Some(msg) = inputs.inbound.recv() => self.on_inbound(msg).await,
                Some(done) = inputs.conversions.recv() => self.on_conversion(done).await,
                Some(fact) = inputs.upload.recv() => self.on_upload(fact).await,
                _ = tick.tick() => {
                    ticks += 1;
                    self.on_tick(ticks).await;
                }
            }
        }
        self.shutdown(inputs).await;
    }

    async fn on_inbound(&mut self, msg: Inbound) {
        match msg {
            Inbound::Meeting { snapshot, envelope } => {
                let checked = self.admission.verifier().check_meeting(
                    &envelope.topic,
                    &envelope.payload,
                    &envelope.signatures,
                );
                match (checked, snapshot) {
                    (Err(refusal), _) => {
                        warn!(reason = refusal.reason(), detail = %refusal,
                            "ignored a meeting snapshot: auth.require_signed_meeting is on")
                    }
                    (Ok(()), Ok(snapshot)) => self.feed(Input::Meeting(snapshot), None).await,
                    (Ok(()), Err(reason)) => {
                        warn!(%reason, "ignored a meeting snapshot that could not be read")
                    }
                }
            }
            Inbound::Licence(Ok(licence)) => self.feed(Input::Licence(licence), None).await,
            Inbound::Licence(Err(reason)) => {
                warn!(%reason, "ignored a licence message that could not be read")
            }
            Inbound::Command {
                command: Ok(cmd),
                respond_to,
                envelope,
            } => {
                let admitted = self.admission.admit(&cmd, &envelope).await;
                self.on_command(cmd, admitted, respond_to).await
            }
            Inbound::Command {
                command: Err(e),
                respond_to,
                envelope: _,
            } => {
                warn!(command = e.id.as_deref().unwrap_or("-"), reason = %e.message, "refused a malformed command");
                let reply = Reply::err(e.id, ErrorBody::new(ErrorCode::BadRequest, e.message));
                self.send_reply(to_json(&reply), respond_to).await;
            }
            Inbound::Connected => self.on_connected().await,
            Inbound::Disconnected { reason } => {
                self.status.broker_connected = false;
                self.notifier
                    .status(&format!("broker unreachable: {reason}"));
            }
            Inbound::Delivered(id) => {
                if let Err(e) = self.catalog.call(move |c| c.ack_outbox(id)).await {
                    warn!(outbox = id, error = %e, "could not clear a delivered outbox message");
                }
            }
        }
    }

    async fn on_command(
        &mut self,
        cmd: Command,
        admitted: Admitted,
        respond_to: Option<ResponseAddr>,
    ) {
        match admitted {
            Admitted::Run(facts) => {
                info!(command = %cmd.id, actor = %cmd.actor, action = cmd.action.name(), "command received");
                self.feed(Input::Command(cmd, facts), respond_to).await
            }
            Admitted::Repeat(first_reply) => self.send_reply(first_reply, respond_to).await,
            Admitted::Refused(error) => {
                let reply = Reply::err(Some(cmd.id.to_string()), error);
                self.send_reply(to_json(&reply), respond_to).await;
            }
        }
    }

    /// Runs one input through the engine and carries out the plan made of its outputs.
    async fn feed(&mut self, input: Input, respond_to: Option<ResponseAddr>) {
        let outputs = self.engine.handle(input, self.clock.now());
        let plan = dispatch::plan(&outputs, Timestamp::now());
        self.execute(plan, respond_to).await;
    }

    async fn execute(&mut self, plan: Plan, respond_to: Option<ResponseAddr>) {
        self.kinds.extend(plan.kinds);
        self.commit_and_publish(plan.batch, plan.messages).await;
        if let (Some(addr), Some(json)) = (respond_to, plan.response) {
            self.send_response(addr, json).await;
        }
        if let Some(state) = plan.state {
            self.notifier.status(&state.summary);
            self.last_state = Some(state.json.clone());
            self.publish(Outbound::device(Topic::State, state.json, true))
                .await;
        }
        for effect in plan.effects {
            if let Some(effect) = self.barrier.pass(effect, Instant::now()) {
                self.carry_out(effect).await;
            }
        }
    }

    /// Commits `batch`, then publishes `messages` with the outbox ids it returned, in order.
    async fn commit_and_publish(&mut self, batch: Vec<Op>, messages: Vec<(Topic, Vec<u8>)>) {
        let ids = self.commit(batch).await;
        for (i, (topic, payload)) in messages.into_iter().enumerate() {
            let mut msg = Outbound::device(topic, payload, false);
            msg.outbox_id = ids.get(i).copied();
            self.publish(msg).await;
        }
    }

    /// Gives the alarm table a fact; alarms raised or cleared go out as events (through the
    /// outbox, like the engine's) and in a fresh status.
    async fn observe(&mut self, fact: Fact) {
        let now = self.clock.now();
        let changes = self.status.alarms.observe(fact, now);
        if changes.is_empty() {
            return;
        }
        let events: Vec<Output> = changes
            .iter()
            .map(|change| Output::Event(change.event(now.wall)))
            .collect();
        let plan = dispatch::plan(&events, now.wall);
        self.commit_and_publish(plan.batch, plan.messages).await;
        self.publish_status().await;
    }

    /// Publishes the recorded sound's level (QoS 0, never stored) and lets the alarms see it.
    async fn on_levels(&mut self, levels: AudioLevels) {
        let rms_dbfs = levels.rms_dbfs;
        self.silence.heard(rms_dbfs);
        let doc = LevelsDoc {
            at: self.clock.now().wall,
            levels,
        };
        self.publish(Outbound::device(Topic::Levels, to_json(&doc), false))
            .await;
        self.observe(Fact::Levels { rms_dbfs }).await;
    }

    /// Writes the batch in one transaction; returns the outbox ids of its messages in order.
    async fn commit(&self, batch: Vec<Op>) -> Vec<i64> {
        if batch.is_empty() {
            return Vec::new();
        }
        self.catalog
            .call(move |c| c.apply(&batch))
            .await
            .unwrap_or_else(|e| {
                error!(error = %e, "catalog write failed; publishing without the outbox");
                Vec::new()
            })
    }

    async fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::SetCapture { recordings, marks } => {
                self.barrier.capturing(&recordings);
                let capturing = !recordings.is_empty();
                self.media
                    .send(MediaCommand::SetCapture { recordings, marks });
                self.observe(Fact::Capturing(capturing)).await;
            }
            Effect::SetMuted(muted) => self.media.send(MediaCommand::SetMuted(muted)),
            Effect::TakePreview => self.media.send(MediaCommand::TakePreview),
            Effect::Convert { recording_id } => self.start_conversion(recording_id).await,
            Effect::StopConversion { recording_id } => self.conversions.cancel(&recording_id),
            Effect::Discard { recording_id } => {
                // Segments stay on disk until housekeeping releases them; nothing is deleted
                // in the middle of a meeting.
                info!(recording = %recording_id, "recording discarded (too short)");
            }
            Effect::CompleteCloud { recording_id } => self.complete_cloud(recording_id).await,
            Effect::Share {
                recording_id,
                shared,
            } => self.to_uploader(UploadCommand::Share {
                recording_id,
                shared,
            }),
            Effect::Delete { recording_id } => {
                self.to_uploader(UploadCommand::Delete { recording_id })
            }
            Effect::SaveMeeting { meeting, .. } => {
                // D2/D3: the content is shown (or recorded as its own stream) while sharing.
                let sharing = meeting
                    .as_ref()
                    .is_some_and(|m| m.sharing && m.state == MeetingState::Active);
                self.media.send(MediaCommand::SetSharing(sharing));
                // Only the uploader cares (bandwidth share); without one there is nothing to do.
                if let Some(uploader) = &self.uploader {
                    let live = meeting.is_some_and(|m| m.state == MeetingState::Active);
                    uploader.send(UploadCommand::MeetingLive(live));
                }
            }
            // Saved with the batch.
            Effect::SaveRecording(_) => {}
        }
    }

    fn to_uploader(&self, command: UploadCommand) {
        match &self.uploader {
            Some(u) => u.send(command),
            None => warn!(
                ?command,
                "no upload target is configured; nothing to do in the cloud"
            ),
        }
    }

    /// E1: the uploader writes the manifest once every segment is in the store.
    async fn complete_cloud(&mut self, recording_id: Id) {
        let rid = recording_id.clone();
        match self.catalog.call(move |c| c.recording(&rid)).await {
            Ok(Some(recording)) => self.to_uploader(UploadCommand::Complete {
                // T1: the rules saved whether transcription was in force with the recording.
                transcription: recording.transcription,
                recording,
            }),
            Ok(None) => {
                error!(recording = %recording_id, "cloud recording to complete is not in the catalog")
            }
            Err(e) => {
                error!(recording = %recording_id, error = %e, "cloud recording not completed: cannot read it from the catalog")
            }
        }
    }

    async fn on_upload(&mut self, fact: UploadFact) {
        match fact {
            UploadFact::Completed {
                recording_id,
                location,
                completeness,
            } => {
                let input = Input::CloudCompleted {
                    recording_id,
                    location,
                    completeness,
                };
                self.feed(input, None).await;
            }
            UploadFact::Health {
                pending,
                pending_bytes,
                last_error,
                oldest_pending,
                store_reachable,
            } => {
                if self.status.set_uploads(pending, pending_bytes, last_error) {
                    self.publish_status().await;
                }
                let fact = Fact::Uploads {
                    oldest_pending,
                    store_reachable,
                };
                self.observe(fact).await;
            }
            UploadFact::Deleted { freed_bytes, .. } => {
                // The deleted recording's local segments are gone: the budget has room again.
                self.ledger.released(freed_bytes);
                self.refresh_room().await;
            }
            UploadFact::Uploaded { .. } | UploadFact::Shared { .. } => {}
        }
    }

    async fn start_conversion(&mut self, recording_id: Id) {
        let rid = recording_id.clone();
        let lookup = self
            .catalog
            .call(move |c| {
                let info = c.recording(&rid)?;
                // Without its evidence the MP4 is made all the same, with no report.
                let evidence = info.as_ref().and_then(|i| {
                    c.completeness_evidence(&rid, i.created_at)
                        .map_err(|e| warn!(recording = %rid, error = %e, "no completeness report: its evidence cannot be read"))
                        .ok()
                });
                Ok((info, c.segments_of(&rid)?, evidence))
            })
            .await;
        let (info, segments, evidence) = match lookup {
            Ok((Some(info), segments, evidence)) => (info, segments, evidence),
            Ok((None, _, _)) => {
                return self
                    .conversions
                    .fail(recording_id, "the recording is not in the catalog".into())
            }
            Err(e) => return self.conversions.fail(recording_id, e.to_string()),
        };
        // T1: `info.transcription`, saved by the rules with the recording, says whether the
        // job also writes a transcript.
        self.conversions.start(&info, segments, evidence);
    }

    /// Carries out the held effects that may go now: released, or held too long.
    async fn run_ready(&mut self) {
        for effect in self.barrier.ready(Instant::now(), MEDIA_RELEASE_TIMEOUT) {
            self.carry_out(effect).await;
        }
    }

    async fn on_conversion(&mut self, done: ConversionDone) {
        self.conversions.finished(&done.recording_id);
        let input = Input::ConversionFinished {
            recording_id: done.recording_id,
            result: done.result,
        };
        self.feed(input, None).await;
    }

    async fn on_media(&mut self, fact: MediaFact) {
        match fact {
            MediaFact::Sealed(file) => self.on_sealed(file).await,
            MediaFact::Muted(muted) => {
                self.observe(Fact::Muted(muted)).await;
                self.feed(Input::MicMuted(muted), None).await
            }
            MediaFact::Levels(levels) => self.on_levels(levels).await,
            MediaFact::Picture(look) => {
                let fact = Fact::Picture {
                    black: look.black,
                    frozen: look.frozen,
                };
                self.observe(fact).await
            }
            // Retained, so a console that opens the device sees the latest picture at once.
            MediaFact::Preview(jpeg) => {
                self.publish(Outbound::device(Topic::Preview, jpeg, true))
                    .await
            }
            MediaFact::Failed { message } => {
                error!(%message, "media pipeline failed");
                self.status.media_error();
                // Torn down: nothing captures until the rules ask again.
                self.observe(Fact::Capturing(false)).await;
                let input = Input::MediaFailed {
                    reason: crate::rules::MediaFailure::Encoder,
                    message,
                };
                self.feed(input, None).await;
            }
            MediaFact::Released { recordings } => {
                self.barrier.released(&recordings);
                self.run_ready().await;
            }
            MediaFact::DiskFull { message } => {
                error!(%message, "the disk is full; recordings stop and keep what they have");
                self.observe(Fact::Capturing(false)).await;
                self.feed(Input::DiskFull, None).await;
            }
            MediaFact::Devices { camera, microphone } => {
                info!(?camera, ?microphone, "capture devices");
                self.status.camera = camera;
                self.status.microphone = microphone;
                let problems = device_problems(camera, microphone);
                self.feed(Input::DevicesUnusable(problems), None).await;
                self.publish_status().await;
                let usable = Fact::DevicesUsable {
                    camera: camera == DeviceHealth::Ok,
                    microphone: microphone == DeviceHealth::Ok,
                };
                self.observe(usable).await;
            }
            MediaFact::DeviceLost {
                kind,
                device,
                message,
            } => {
                warn!(%device, ?kind, %message, "capture device lost; recording goes on without it");
                self.mark_device(MarkKind::DeviceLost(device_role(kind)))
                    .await;
                let input = Input::DeviceChanged {
                    device,
                    back: false,
                };
                self.feed(input, None).await;
                if let Some(device) = alarm_device(kind) {
                    self.observe(Fact::DeviceLost(device)).await;
                }
            }
            MediaFact::DeviceBack { kind, device } => {
                info!(%device, ?kind, "capture device back");
                self.mark_device(MarkKind::DeviceBack(device_role(kind)))
                    .await;
                self.feed(Input::DeviceChanged { device, back: true }, None)
                    .await;
                if let Some(device) = alarm_device(kind) {
                    self.observe(Fact::DeviceBack(device)).await;
                }
            }
        }
    }

    /// Keeps a device's loss or return for the completeness reports of what records now.
    async fn mark_device(&self, kind: MarkKind) {
        let mark = Mark {
            at: Timestamp::now(),
            kind,
        };
        if let Err(e) = self.catalog.call(move |c| c.add_mark(None, &mark)).await {
            warn!(error = %e, ?kind, "the device mark was not saved; completeness reports will miss it");
        }
    }

    async fn on_sealed(&mut self, file: SealedFile) {
        let path = self.encrypt_sealed(&file).await;
        let record = SegmentRecord {
            seq: file.seq,
            path,
            bytes: file.bytes,
            duration_ms: file.duration_ms,
            sha256: file.sha256.clone(),
            sealed_at: Timestamp::now(),
            silent_ms: self.silence.take(file.duration_ms),
        };
        let cloud = file
            .recordings
            .iter()
            .find(|r| self.kinds.get(*r) == Some(&RecordingKind::Cloud))
            .cloned();
        let tags = file.recordings.clone();
        let result = self
            .catalog
            .call(move |c| c.seal_segment(&record, &tags, cloud.as_ref()))
            .await;
        match result {
            Ok(()) => {
                info!(segment = file.seq, bytes = file.bytes, duration_ms = file.duration_ms,
                recordings = ?file.recordings.iter().map(Id::as_str).collect::<Vec<_>>(), "segment sealed")
            }
            Err(e) => {
                error!(segment = file.seq, error = %e, "segment file kept but not catalogued; it will be reported at the next start")
            }
        }
        self.ledger.sealed(file.bytes);
        let sealed = SealedSegment {
            seq: file.seq,
            bytes: file.bytes,
            duration_ms: file.duration_ms,
            recordings: file.recordings,
        };
        self.feed(Input::SegmentSealed(sealed), None).await;
        self.refresh_room().await;
    }

    /// The path to catalogue for a sealed segment: `segments::keep_sealed` encrypts it at rest
    /// first (durably, before the catalog names it) when the config says so.
    async fn encrypt_sealed(&self, file: &SealedFile) -> String {
        let keys = segments::Keys::from_config(&self.storage);
        let (storage, path) = (self.storage_dir.clone(), file.path.clone());
        let job =
            tokio::task::spawn_blocking(move || segments::keep_sealed(&keys, &storage, &path));
        job.await.unwrap_or_else(|e| {
            error!(segment = file.seq, error = %e, "segment encryption task failed; it stays in clear on disk");
            file.path.clone()
        })
    }

    async fn on_connected(&mut self) {
        self.status.broker_connected = true;
        if let Some(state) = self.last_state.clone() {
            self.publish(Outbound::device(Topic::State, state, true))
                .await;
        }
        self.publish_status().await;
        self.republish_outbox().await;
    }

    /// Publishes again what the broker had not acknowledged before the connection dropped.
    async fn republish_outbox(&mut self) {
        let items = match self.catalog.call(|c| c.pending_outbox()).await {
            Ok(items) => items,
            Err(e) => return error!(error = %e, "outbox not republished: cannot read it"),
        };
        if !items.is_empty() {
            info!(
                count = items.len(),
                "republishing messages the broker had not acknowledged"
            );
        }
        for item in items {
            let Some(topic) = topic_from_suffix(&item.topic) else {
                continue;
            };
            let mut msg = Outbound::device(topic, item.payload, item.retain);
            msg.outbox_id = Some(item.id);
            self.publish(msg).await;
        }
    }

    /// Tells the engine how much the storage budget still allows (issue: local disk budget).
    async fn refresh_room(&mut self) {
        let free = crate::segments::free_bytes(&self.storage_dir).unwrap_or(0);
        let room_bytes = housekeeping::room_bytes(&self.storage, free, self.ledger.used());
        self.feed(Input::Storage { room_bytes }, None).await;
        let remaining_record_s = self.engine.remaining_record_s();
        self.observe(Fact::Room { remaining_record_s }).await;
    }

    /// Releases segments past their retention that nothing needs any more (uploaded and
    /// verified, converted and checked, or discarded).
    async fn evict_expired(&mut self) {
        let (dir, retention) = (self.storage_dir.clone(), self.storage.retention());
        let result = self
            .catalog
            .call(move |c| housekeeping::evict(c, &dir, retention, Timestamp::now(), u64::MAX))
            .await;
        let report = match result {
            Ok(report) => report,
            Err(e) => return warn!(error = %e, "retention pass failed"),
        };
        self.ledger.released(report.freed_bytes);
        if report.released > 0 {
            info!(
                segments = report.released,
                bytes = report.freed_bytes,
                "released segments past their retention"
            );
        }
        if !report.failed.is_empty() {
            warn!(failed = ?report.failed, "some segments could not be removed; retrying later");
        }
    }

    async fn on_tick(&mut self, tick: u64) {
        let due = schedule::due(tick);
        self.feed(Input::Tick, None).await;
        match clock::synchronised() {
            Some(synchronised) => self.observe(Fact::Clock { synchronised }).await,
            None => self.observe(Fact::Tick).await,
        }
        if due.eviction {
            self.evict_expired().await;
        }
        self.refresh_room().await;
        if self.barrier.is_holding() {
            self.run_ready().await;
        }
        self.watchdog.on_core_turn(&self.notifier);
        if due.status {
            self.publish_status().await;
        }
        if due.prune {
            self.forget_old_commands().await;
        }
    }

    async fn forget_old_commands(&self) {
        let cutoff = Timestamp(Timestamp::now().0 - schedule::COMMAND_MEMORY.as_millis() as i64);
        let pruned = self
            .catalog
            .call(move |c| {
                c.prune_commands(cutoff)?;
                c.prune_nonces(cutoff)
            })
            .await;
        if let Err(e) = pruned {
            warn!(error = %e, "could not forget old command ids and nonces; retrying in an hour");
        }
    }

    async fn publish_status(&mut self) {
        let mut doc = self.status.snapshot(&self.catalog, &self.storage_dir).await;
        doc.storage.remaining_record_s = self.engine.remaining_record_s();
        self.publish(Outbound::device(Topic::Status, to_json(&doc), true))
            .await;
    }

    /// A reply decided outside the engine (refused, malformed, repeated): published, not stored.
    async fn send_reply(&mut self, json: Vec<u8>, respond_to: Option<ResponseAddr>) {
        self.publish(Outbound::device(Topic::Reply, json.clone(), false))
            .await;
        if let Some(addr) = respond_to {
            self.send_response(addr, json).await;
        }
    }

    async fn send_response(&mut self, addr: ResponseAddr, json: Vec<u8>) {
        let msg = Outbound {
            to: Destination::Response(addr),
            payload: json,
            retain: false,
            outbox_id: None,
        };
        self.publish(msg).await;
    }

    async fn publish(&self, msg: Outbound) {
        // Control drains this channel even while disconnected; a full channel means it is
        // gone, and the outbox keeps what matters.
        if self.to_control.send(msg).await.is_err() {
            warn!("MQTT session has stopped; message kept only if it is in the outbox");
        }
    }

    /// Stops capture, seals the last segment, and leaves every recording resumable.
    async fn shutdown(mut self, mut inputs: CoreInputs) {
        info!("stopping: sealing the last segment");
        self.notifier.stopping();
        self.feed(Input::Shutdown, None).await;
        self.conversions.cancel_all();
        let media = self.media.clone();
        media.shutdown().await;
        while let Ok(fact) = inputs.media.try_recv() {
            self.on_media(fact).await;
        }
        self.conversions.wait_all().await;
        info!("recordings stopped and catalogued");
    }
}

/// The alarm of a lost device: the camera's and the microphone's (the content input is
/// optional, its loss no alarm).
/// What a capture device is for, as the completeness report's marks name it.
fn device_role(kind: DeviceKind) -> DeviceRole {
    match kind {
        DeviceKind::Camera => DeviceRole::Camera,
        DeviceKind::Microphone => DeviceRole::Microphone,
        DeviceKind::Content => DeviceRole::Content,
    }
}

fn alarm_device(kind: DeviceKind) -> Option<Device> {
    match kind {
        DeviceKind::Camera => Some(Device::Camera),
        DeviceKind::Microphone => Some(Device::Microphone),
        DeviceKind::Content => None,
    }
}

/// What is wrong with each capture device, for the rules' `device_unavailable`.
fn device_problems(camera: DeviceHealth, microphone: DeviceHealth) -> Vec<String> {
    [("the camera", camera), ("the microphone", microphone)]
        .into_iter()
        .filter_map(|(device, health)| match health {
            DeviceHealth::Ok => None,
            DeviceHealth::Missing => Some(format!("{device} is missing")),
            // Present but not usable: no allowed format, or it failed to start.
            DeviceHealth::Error => Some(format!(
                "{device} is present but unusable (no format within the configured limits, or it failed)"
            )),
        })
        .collect()
}

fn topic_from_suffix(s: &str) -> Option<Topic> {
    [Topic::Reply, Topic::State, Topic::Events, Topic::Status]
        .into_iter()
        .find(|t| t.suffix() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_problems_say_missing_or_unusable_per_device() {
        use DeviceHealth::{Error, Missing, Ok};
        assert!(device_problems(Ok, Ok).is_empty());
        assert_eq!(device_problems(Missing, Ok), ["the camera is missing"]);
        let both = device_problems(Error, Missing);
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(
            both[0].starts_with("the camera is present but unusable"),
            "{both:?}"
        );
        assert_eq!(both[1], "the microphone is missing");
    }

    #[test]
    fn every_published_topic_is_found_again_from_its_outbox_suffix() {
        for topic in [Topic::Reply, Topic::State, Topic::Events, Topic::Status] {
            assert_eq!(topic_from_suffix(topic.suffix()), Some(topic));
        }
        assert_eq!(topic_from_suffix("cmd"), None);
    }
}
