//! The core loop: feeds every fact into the rules engine and carries out what it decides.
//!
//! Owns: the `Engine`, the order of side effects (catalog first, then MQTT, then media and
//! conversions) and the command de-duplication. Must not touch: SQLite, GStreamer or the
//! broker directly — it talks to their owners through handles and channels.
//!
//! Durability: replies and events are written to the catalog's outbox in the same transaction
//! as the recording rows they report, and leave the outbox only when the broker acknowledged
//! them, so a crash or a broker outage never loses a `recording_ready` or a reply.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::conversion::{ConversionDone, Conversions};
use super::housekeeping;
use super::notify::Notifier;
use super::status::StatusBoard;
use super::store::Store;
use super::watchdog::Watchdog;
use crate::auth::{Refusal, Verifier};
use crate::catalog::{Op, SegmentRecord};
use crate::config::StorageConfig;
use crate::control::{Destination, Envelope, Inbound, Outbound, ResponseAddr, Topic};
use crate::media::{MediaCommand, MediaFact, MediaHandle, SealedFile};
use crate::protocol::{
    Action, Actor, Command, DeviceHealth, ErrorBody, ErrorCode, Id, MeetingState, RecordingKind,
    Reply, Timestamp,
};
use crate::rules::{CommandContext, Effect, Engine, Input, Now, Output, SealedSegment};
use crate::upload::{UploadCommand, UploadFact, UploadHandle};

/// How long a conversion waits for media to seal a recording's last segment (normally well
/// under a second) before going ahead anyway.
const MEDIA_RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Wall clock for names and licence checks, monotonic for durations (see `rules::Now`).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Now {
        Now {
            wall: Timestamp::now(),
            mono_ms: self.start.elapsed().as_millis() as u64,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

pub struct Core {
    pub engine: Engine,
    /// Signature checks of admin commands and snapshots, at the edge before the engine.
    pub auth: Verifier,
    pub store: Store,
    pub media: MediaHandle,
    /// `None` without an `[upload]` section (cloud recording is then unavailable).
    pub uploader: Option<UploadHandle>,
    pub to_control: mpsc::Sender<Outbound>,
    pub conversions: Conversions,
    pub status: StatusBoard,
    pub notifier: Notifier,
    /// Decides each tick whether to ping systemd's watchdog (core turning, media progressing).
    pub watchdog: Watchdog,
    pub clock: Clock,
    /// The last state published, for republishing after a reconnect.
    pub last_state: Option<Vec<u8>>,
    /// Kind of every recording seen, to tag cloud segments for upload.
    pub kinds: HashMap<Id, RecordingKind>,
    /// Recordings media may still have unsealed segments for (sent to capture, not released).
    pub capturing: HashSet<Id>,
    /// Conversions and completions waiting for media to release their recording, so they
    /// never miss the last segment.
    pub deferred: Vec<(Effect, Instant)>,
    pub storage_dir: PathBuf,
    pub storage: StorageConfig,
    /// Bytes of segments not yet released, kept as a running total (a catalog sum per tick
    /// would scan a table that grows by tens of thousands of rows a day).
    pub used_bytes: u64,
}

/// The channels the core listens on.
pub struct CoreInputs {
    pub inbound: mpsc::Receiver<Inbound>,
    pub media: mpsc::Receiver<MediaFact>,
    pub conversions: mpsc::Receiver<ConversionDone>,
    pub upload: mpsc::Receiver<UploadFact>,
}

impl Core {
    /// Runs until `cancel` fires, then stops recordings cleanly (segments sealed and catalogued).
    pub async fn run(mut self, mut inputs: CoreInputs, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
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
                let checked = self.auth.check_meeting(
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
                if let Actor::Admin(name) = &cmd.actor {
                    if let Err(error) = self.authenticate(name, &envelope).await {
                        warn!(command = %cmd.id, actor = %cmd.actor, action = cmd.action.name(),
                            reason = ?error.reason, detail = %error.message, "refused an admin command");
                        // Not stored in the command log: an unsigned message must not be able
                        // to fix the answer to an id a real admin command may use later.
                        let reply = Reply::err(Some(cmd.id.to_string()), error);
                        self.send_reply(&reply, respond_to, None).await;
                        return;
                    }
                }
                self.on_command(cmd, respond_to).await
            }
            Inbound::Command {
                command: Err(e),
                respond_to,
                envelope: _,
            } => {
                warn!(command = e.id.as_deref().unwrap_or("-"), reason = %e.message, "refused a malformed command");
                let reply = Reply::err(e.id, ErrorBody::new(ErrorCode::BadRequest, e.message));
                self.send_reply(&reply, respond_to, None).await;
            }
            Inbound::Connected => self.on_connected().await,
            Inbound::Disconnected { reason } => {
                self.status.broker_connected = false;
                self.notifier
                    .status(&format!("broker unreachable: {reason}"));
            }
            Inbound::Delivered(id) => {
                if let Err(e) = self.store.call(move |c| c.ack_outbox(id)).await {
                    warn!(outbox = id, error = %e, "could not clear a delivered outbox message");
                }
            }
        }
    }

    /// Checks an admin command's signature, freshness and nonce (`crate::auth`). Done before
    /// de-duplication, so an exact replay is refused as such rather than answered; a sender
    /// that retries signs again (new nonce, same id) and gets the first answer.
    async fn authenticate(&mut self, admin: &str, envelope: &Envelope) -> Result<(), ErrorBody> {
        let now = Timestamp::now();
        let forbidden = |r: Refusal| {
            let mut body = ErrorBody::new(ErrorCode::Forbidden, r.to_string());
            body.reason = Some(r.reason().to_owned());
            body
        };
        let verified = self
            .auth
            .check_admin(
                admin,
                &envelope.topic,
                &envelope.payload,
                &envelope.signatures,
                now,
            )
            .map_err(forbidden)?;
        let Some(v) = verified else {
            warn!(
                admin,
                "accepted an unsigned admin command (auth.allow_unsigned_admin)"
            );
            return Ok(());
        };
        let (key_id, nonce, signed_at) = (v.key_id.clone(), v.nonce.clone(), v.signed_at);
        let claimed = self
            .store
            .call(move |c| c.claim_nonce(&key_id, &nonce, signed_at, now))
            .await;
        match claimed {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(forbidden(Refusal::Replayed(v.nonce))),
            // Fail closed: without the nonce memory a replay could not be told apart.
            Ok(Err(e)) => {
                error!(error = %e, "cannot record a signed command's nonce; refusing it");
                Err(ErrorBody::new(
                    ErrorCode::Internal,
                    "the device cannot check this signed command for replay (catalog error); try again",
                ))
            }
            Err(e) => {
                error!(error = %e, "catalog unavailable; refusing a signed command");
                Err(ErrorBody::new(
                    ErrorCode::Internal,
                    "the device cannot check this signed command for replay (catalog unavailable); try again",
                ))
            }
        }
    }

    async fn on_command(&mut self, cmd: Command, respond_to: Option<ResponseAddr>) {
        let id = cmd.id.to_string();
        let lookup = id.clone();
        match self.store.call(move |c| c.command_reply(&lookup)).await {
            Ok(Ok(Some(stored))) => {
                info!(command = %id, "answered a repeated command with its first reply");
                self.send_raw_reply(stored.into_bytes(), respond_to).await;
                return;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                warn!(command = %id, error = %e, "command log unreadable; handling the command anyway")
            }
            Err(e) => {
                warn!(command = %id, error = %e, "catalog unavailable; handling the command anyway")
            }
        }
        info!(command = %id, actor = %cmd.actor, action = cmd.action.name(), "command received");
        let ctx = self.context_for(&cmd).await;
        self.feed(Input::Command(cmd, ctx), respond_to).await;
    }

    /// Looks up the catalog facts a command needs, so the engine can decide without I/O.
    async fn context_for(&self, cmd: &Command) -> CommandContext {
        let mut ctx = CommandContext::default();
        match &cmd.action {
            Action::StopConversion { recording_id }
            | Action::Finalize { recording_id }
            | Action::Share { recording_id, .. }
            | Action::Delete { recording_id } => {
                let rid = recording_id.clone();
                if let Ok(Ok(r)) = self.store.call(move |c| c.recording(&rid)).await {
                    ctx.recording = r;
                }
            }
            Action::ListRecordings { state } => {
                let filter = *state;
                if let Ok(Ok(list)) = self.store.call(move |c| c.recordings(filter)).await {
                    ctx.listing = list;
                }
            }
            _ => {}
        }
        ctx
    }

    /// Runs one input through the engine and carries out its outputs.
    pub async fn feed(&mut self, input: Input, respond_to: Option<ResponseAddr>) {
        let outputs = self.engine.handle(input, self.clock.now());
        self.apply(outputs, respond_to).await;
    }

    async fn apply(&mut self, outputs: Vec<Output>, respond_to: Option<ResponseAddr>) {
        let at = Timestamp::now();
        let mut ops = Vec::new();
        let mut messages = Vec::new(); // (topic, payload) in outbox order
        let mut replies = Vec::new();
        let mut state = None;
        let mut effects = Vec::new();
        for out in outputs {
            match out {
                Output::Reply(reply) => {
                    let json = to_json(&reply);
                    if let Some(id) = &reply.id {
                        ops.push(Op::StoreReply {
                            command_id: id.clone(),
                            reply_json: String::from_utf8_lossy(&json).into_owned(),
                            at,
                        });
                    }
                    ops.push(Op::Outbox {
                        topic: Topic::Reply.suffix().into(),
                        payload: json.clone(),
                        retain: false,
                    });
                    messages.push((Topic::Reply, json.clone()));
                    replies.push(json);
                }
                Output::Event(event) => {
                    info!(event = ?event.kind, recording = ?event.recording_id.as_ref().map(Id::as_str),
                        reason = ?event.reason, "event");
                    let json = to_json(&event);
                    ops.push(Op::Outbox {
                        topic: Topic::Events.suffix().into(),
                        payload: json.clone(),
                        retain: false,
                    });
                    messages.push((Topic::Events, json));
                }
                Output::State(doc) => {
                    self.notifier.status(&super::status::summary(&doc));
                    state = Some(to_json(&doc));
                }
                Output::Effect(effect) => {
                    if let Some(op) = self.persist_op(&effect, at) {
                        ops.push(op);
                    }
                    effects.push(effect);
                }
            }
        }
        let ids = self.commit(ops).await;
        for (i, (topic, payload)) in messages.into_iter().enumerate() {
            let mut msg = Outbound::device(topic, payload, false);
            msg.outbox_id = ids.get(i).copied();
            self.publish(msg).await;
        }
        if let (Some(addr), Some(json)) = (respond_to, replies.pop()) {
            self.send_response(addr, json).await;
        }
        if let Some(json) = state {
            self.last_state = Some(json.clone());
            self.publish(Outbound::device(Topic::State, json, true))
                .await;
        }
        for effect in effects {
            self.carry_out(effect).await;
        }
    }

    fn persist_op(&mut self, effect: &Effect, at: Timestamp) -> Option<Op> {
        match effect {
            Effect::SaveRecording(info) => {
                self.kinds.insert(info.recording_id.clone(), info.kind);
                info!(recording = %info.recording_id, meeting = %info.meeting_id,
                    kind = info.kind.as_str(), state = info.state.as_str(), "recording saved");
                Some(Op::SaveRecording(info.clone()))
            }
            Effect::SaveMeeting { version, meeting } => Some(Op::SaveMeeting {
                version: *version,
                meeting: meeting.clone(),
                at,
            }),
            _ => None,
        }
    }

    /// Writes the batch in one transaction; returns the outbox ids of its messages in order.
    async fn commit(&self, ops: Vec<Op>) -> Vec<i64> {
        if ops.is_empty() {
            return Vec::new();
        }
        match self.store.call(move |c| c.apply(&ops)).await {
            Ok(Ok(ids)) => ids,
            Ok(Err(e)) => {
                error!(error = %e, "catalog write failed; publishing without the outbox");
                Vec::new()
            }
            Err(e) => {
                error!(error = %e, "catalog unavailable; publishing without the outbox");
                Vec::new()
            }
        }
    }

    async fn carry_out(&mut self, effect: Effect) {
        if waits_for_media(&effect).is_some_and(|id| self.capturing.contains(id)) {
            self.deferred.push((effect, Instant::now()));
            return;
        }
        match effect {
            Effect::SetCapture { recordings } => {
                self.capturing.extend(recordings.iter().cloned());
                self.media.send(MediaCommand::SetCapture { recordings })
            }

            Effect::SetMuted(muted) => self.media.send(MediaCommand::SetMuted(muted)),
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
        match self.store.call(move |c| c.recording(&rid)).await {
            Ok(Ok(Some(recording))) => self.to_uploader(UploadCommand::Complete { recording }),
            Ok(Ok(None)) => {
                error!(recording = %recording_id, "cloud recording to complete is not in the catalog")
            }
            Ok(Err(e)) => {
                error!(recording = %recording_id, error = %e, "cannot read the cloud recording to complete")
            }
            Err(e) => {
                error!(recording = %recording_id, error = %e, "catalog unavailable; cloud recording not completed")
            }
        }
    }

    async fn on_upload(&mut self, fact: UploadFact) {
        match fact {
            UploadFact::Completed {
                recording_id,
                location,
            } => {
                let input = Input::CloudCompleted {
                    recording_id,
                    location,
                };
                self.feed(input, None).await;
            }
            UploadFact::Health {
                pending,
                pending_bytes,
                last_error,
            } => {
                if self.status.set_uploads(pending, pending_bytes, last_error) {
                    self.publish_status().await;
                }
            }
            UploadFact::Uploaded { .. }
            | UploadFact::Shared { .. }
            | UploadFact::Deleted { .. } => {}
        }
    }

    async fn start_conversion(&mut self, recording_id: Id) {
        let rid = recording_id.clone();
        let lookup = self
            .store
            .call(move |c| {
                Ok::<_, crate::catalog::CatalogError>((c.recording(&rid)?, c.segments_of(&rid)?))
            })
            .await;
        let (info, segments) = match lookup {
            Ok(Ok((Some(info), segments))) => (info, segments),
            Ok(Ok((None, _))) => {
                return self
                    .conversions
                    .fail(recording_id, "the recording is not in the catalog".into())
            }
            Ok(Err(e)) => {
                return self
                    .conversions
                    .fail(recording_id, format!("catalog error: {e}"))
            }
            Err(e) => return self.conversions.fail(recording_id, e.to_string()),
        };
        let paths = segments
            .iter()
            .map(|s| self.storage_dir.join(&s.path))
            .collect();
        self.conversions.start(&info, paths);
    }

    /// Carries out deferred effects whose recording media has released, and those for which
    /// `overdue` says waiting longer is worse than missing a segment.
    async fn run_deferred(&mut self, overdue: impl Fn(Instant) -> bool) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(effect, since)| {
                waits_for_media(effect).is_none_or(|id| !self.capturing.contains(id))
                    || overdue(*since)
            });
        self.deferred = waiting;
        for (effect, since) in ready {
            if let Some(id) = waits_for_media(&effect) {
                if self.capturing.remove(id) {
                    warn!(recording = %id, waited_s = since.elapsed().as_secs(),
                        "media never confirmed the last segment; going ahead without waiting longer");
                }
            }
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
            MediaFact::Muted(muted) => self.feed(Input::MicMuted(muted), None).await,
            MediaFact::Failed { message } => {
                error!(%message, "media pipeline failed");
                self.status.media_error();
                let input = Input::MediaFailed {
                    reason: crate::rules::MediaFailure::Encoder,
                    message,
                };
                self.feed(input, None).await;
            }
            MediaFact::Released { recordings } => {
                for id in &recordings {
                    self.capturing.remove(id);
                }
                self.run_deferred(|_| false).await;
            }
            MediaFact::DiskFull { message } => {
                error!(%message, "the disk is full; recordings stop and keep what they have");
                self.feed(Input::DiskFull, None).await;
            }
            MediaFact::Devices { camera, microphone } => {
                info!(?camera, ?microphone, "capture devices");
                self.status.camera = camera;
                self.status.microphone = microphone;
                let problems = device_problems(camera, microphone);
                self.feed(Input::DevicesUnusable(problems), None).await;
                self.publish_status().await;
            }
            MediaFact::DeviceLost { device, message } => {
                warn!(%device, %message, "capture device lost; recording goes on without it");
                let input = Input::DeviceChanged {
                    device,
                    back: false,
                };
                self.feed(input, None).await;
            }
            MediaFact::DeviceBack { device } => {
                info!(%device, "capture device back");
                self.feed(Input::DeviceChanged { device, back: true }, None)
                    .await;
            }
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
        };
        let cloud = file
            .recordings
            .iter()
            .find(|r| self.kinds.get(*r) == Some(&RecordingKind::Cloud))
            .cloned();
        let tags = file.recordings.clone();
        let result = self
            .store
            .call(move |c| c.seal_segment(&record, &tags, cloud.as_ref()))
            .await;
        match result {
            Ok(Ok(())) => {
                info!(segment = file.seq, bytes = file.bytes, duration_ms = file.duration_ms,
                recordings = ?file.recordings.iter().map(Id::as_str).collect::<Vec<_>>(), "segment sealed")
            }
            Ok(Err(e)) => {
                error!(segment = file.seq, error = %e, "segment file kept but not catalogued; it will be reported at the next start")
            }
            Err(e) => {
                error!(segment = file.seq, error = %e, "catalog unavailable; segment file kept")
            }
        }
        self.used_bytes = self.used_bytes.saturating_add(file.bytes);
        let sealed = SealedSegment {
            seq: file.seq,
            bytes: file.bytes,
            duration_ms: file.duration_ms,
            recordings: file.recordings,
        };
        self.feed(Input::SegmentSealed(sealed), None).await;
        self.refresh_room().await;
    }

    /// With `storage.encrypt_segments`, replaces the sealed plaintext by its encrypted file
    /// (durably, before the catalog names it) and returns the path to catalogue. The size and
    /// SHA-256 catalogued stay the media's own: uploads send the plaintext, quotas count it.
    /// If encryption fails the plaintext is kept and catalogued: losing media is worse than
    /// one segment stored in clear, and the error says so.
    async fn encrypt_sealed(&self, file: &SealedFile) -> String {
        let key = match (&self.storage.segment_key, self.storage.encrypt_segments) {
            (Some(key), true) => key.clone(),
            _ => return file.path.clone(),
        };
        let plain = self.storage_dir.join(&file.path);
        let seq = file.seq;
        let started = Instant::now();
        let job =
            tokio::task::spawn_blocking(move || crate::crypt::encrypt_file(&key, seq, &plain));
        match job.await {
            Ok(Ok(_)) => {
                tracing::debug!(
                    segment = seq,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "segment encrypted at rest"
                );
                format!("{}{}", file.path, crate::crypt::ENC_SUFFIX)
            }
            Ok(Err(e)) => {
                error!(segment = seq, error = %e, "cannot encrypt a sealed segment; it stays in clear on disk");
                file.path.clone()
            }
            Err(e) => {
                error!(segment = seq, error = %e, "segment encryption task failed; it stays in clear on disk");
                file.path.clone()
            }
        }
    }

    async fn on_connected(&mut self) {
        self.status.broker_connected = true;
        if let Some(state) = self.last_state.clone() {
            self.publish(Outbound::device(Topic::State, state, true))
                .await;
        }
        self.publish_status().await;
        match self.store.call(|c| c.pending_outbox()).await {
            Ok(Ok(items)) => {
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
            Ok(Err(e)) => error!(error = %e, "could not read the outbox"),
            Err(e) => error!(error = %e, "catalog unavailable; outbox not republished"),
        }
    }

    /// Tells the engine how much the storage budget still allows (issue: local disk budget).
    pub async fn refresh_room(&mut self) {
        let free = super::status::free_bytes(&self.storage_dir).unwrap_or(0);
        let room_bytes = housekeeping::room_bytes(&self.storage, free, self.used_bytes);
        self.feed(Input::Storage { room_bytes }, None).await;
    }

    /// Releases segments past their retention that nothing needs any more (uploaded and
    /// verified, converted and checked, or discarded).
    async fn evict_expired(&mut self) {
        let (dir, retention) = (self.storage_dir.clone(), self.storage.retention());
        let result = self
            .store
            .call(move |c| housekeeping::evict(c, &dir, retention, Timestamp::now(), u64::MAX))
            .await;
        match result {
            Ok(Ok(report)) => {
                self.used_bytes = self.used_bytes.saturating_sub(report.freed_bytes);
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
            Ok(Err(e)) => warn!(error = %e, "retention pass failed"),
            Err(e) => warn!(error = %e, "catalog unavailable; retention pass skipped"),
        }
    }

    async fn on_tick(&mut self, ticks: u64) {
        self.feed(Input::Tick, None).await;
        if ticks % 60 == 1 {
            self.evict_expired().await;
        }
        self.refresh_room().await;
        if !self.deferred.is_empty() {
            self.run_deferred(|since| since.elapsed() > MEDIA_RELEASE_TIMEOUT)
                .await;
        }
        self.watchdog.on_core_turn(&self.notifier);
        if ticks % 30 == 0 {
            self.publish_status().await;
        }
        if ticks % 3600 == 0 {
            // The dedupe log only has to outlive MQTT redelivery and sender retries.
            let cutoff = Timestamp(Timestamp::now().0 - 7 * 24 * 3600 * 1000);
            let _ = self.store.call(move |c| c.prune_commands(cutoff)).await;
            // Nonces are kept far longer than the signing window, so a clock that jumps
            // (a wrong clock corrected by NTP) cannot reopen the window for a captured command.
            let _ = self.store.call(move |c| c.prune_nonces(cutoff)).await;
        }
    }

    pub async fn publish_status(&mut self) {
        let mut doc = self.status.snapshot(&self.store, &self.storage_dir).await;
        doc.storage.remaining_record_s = self.engine.remaining_record_s();
        self.publish(Outbound::device(Topic::Status, to_json(&doc), true))
            .await;
    }

    async fn send_reply(
        &mut self,
        reply: &Reply,
        respond_to: Option<ResponseAddr>,
        outbox_id: Option<i64>,
    ) {
        let json = to_json(reply);
        let mut msg = Outbound::device(Topic::Reply, json.clone(), false);
        msg.outbox_id = outbox_id;
        self.publish(msg).await;
        if let Some(addr) = respond_to {
            self.send_response(addr, json).await;
        }
    }

    async fn send_raw_reply(&mut self, json: Vec<u8>, respond_to: Option<ResponseAddr>) {
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

/// Effects that need every segment of their recording sealed first.
fn waits_for_media(effect: &Effect) -> Option<&Id> {
    match effect {
        Effect::Convert { recording_id } | Effect::CompleteCloud { recording_id } => {
            Some(recording_id)
        }
        _ => None,
    }
}

fn topic_from_suffix(s: &str) -> Option<Topic> {
    [Topic::Reply, Topic::State, Topic::Events, Topic::Status]
        .into_iter()
        .find(|t| t.suffix() == s)
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our own types always serialise; an empty object is a visible failure rather than a crash.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
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
}
