//! The recording rules (`docs/recording-rules.md`) as a pure state machine.
//!
//! Owns: every decision about who may record what, when recordings start, pause, stop, are
//! discarded, converted or completed, and what the device publishes about it.
//! Must not touch: I/O, clocks, channels, randomness. Time arrives as a value (`Now`); facts
//! from media, catalog and upload arrive as `Input`s; everything the world must do leaves as
//! `Output`s. Read this module side by side with the spec: each rule id is named where it is
//! enforced.
//!
//! Layout: `cloud` (C1–C8, D1, M1), `local` (L1–L3, X1), `commands` (authorisation, X3, L5
//! and E2 commands), `features` (W1–W4, T1: watermarks and transcription by tier), `lifecycle` (snapshots, E1, C6, restore, segments, conversion),
//! `views` (the published state and capture set), `state` (shared memory and transitions),
//! `transitions` (the table of legal state changes, each with the rules that allow it).
//! The one event the engine logs itself is a refused illegal transition: a bug, never input.
//!
//! # Decisions where the spec is silent
//!
//! - **Replies.** Every command gets exactly one reply; an ok reply carries the state after
//!   the command. Outputs come in the order: effects and events as they happen, the capture
//!   set, the state (if changed), the reply.
//! - **Check order for a start**: meeting and presence, role or permission (C1, L1), "already
//!   running" (C3: ok with the current state; the same for one's own local recording), X1,
//!   availability (no upload target → `conflict`, D1, C7 → `licence_expired`, C8 →
//!   `quota_exhausted`), and M1 last, so `needs_confirmation` is only asked for a start that
//!   would otherwise succeed.
//! - **Published state.** Emitted when it differs from the last one emitted, ignoring the
//!   running clocks (`recorded_ms`); a sealed segment refreshes the clocks and counts as a
//!   change. `recorded_ms` is monotonic time spent in `recording` (pauses excluded). Views
//!   exist for the participants of an active meeting only. `local` lists the live
//!   (recording or paused) local recordings of the current meeting; finished ones are told
//!   by events and `list_recordings`. `cloud.state` is
//!   `unavailable` (when none is live) without an upload target, without a valid device
//!   licence (D1) or with an expired account licence (C7); an exhausted quota only shows as
//!   `remaining_s: 0`. An account without `licence_expires_at` has nothing to expire.
//! - **C2.** `request_cloud` by a host or co-host is a `conflict` (they start it directly);
//!   while cloud is live it is ok and changes nothing. It is refused up front when cloud
//!   recording could not start (D1, C7, C8, no upload target). Approving needs the request
//!   to be pending (`not_found` otherwise). `approve_cloud` has no `silent`/`unmute`, so when
//!   muted (M1) the approver unmutes first or starts with `silent: true`. A direct start
//!   clears the pending requests: they are satisfied.
//! - **C8.** The bitrate is measured device-wide from sealed cloud segments (the encoder is
//!   the device's), the reference figure until then. Unknown or missing tiers get the
//!   smallest quota (1 GiB). A start needs more than the headroom left; a running recording
//!   stops once the headroom no longer fits (checked on snapshots, sealed segments, ticks).
//! - **L1/L2.** Co-hosts are ordinary participants for local recording. `allow_local` and
//!   `forbid_local` naming the host are a `conflict` (the host may always record). Forbidding
//!   someone under `all` switches to `selected` with everyone else present allowed, so the
//!   forbid takes effect. Every refused local start relays `local_record_requested` to the
//!   host again.
//! - **X1** applies to the one who started the live cloud recording (`started_by`).
//! - **X3.** Pause or resume of something already paused or running is ok and changes
//!   nothing; acting with nothing covered is a `conflict`. Resume is not a start: D1, C7 and
//!   M1 do not apply to it (running recordings finish).
//! - **L4.** A too-short local recording gets `recording_stopped` (to the host team and the
//!   owner) and then `recording_discarded` (to the owner).
//! - **L5/E2 commands** act on recordings, mostly after their meeting: they need no active
//!   meeting. Allowed: the recording's host as last seen (`RecordingInfo.host`, kept current
//!   while its meeting runs), the current host of that same meeting, administrators, and for
//!   `stop_conversion`/`finalize` the owner. `finalize` of a cloud recording (upload failed)
//!   retries completion. Deleting a live recording or a running conversion is a `conflict`.
//! - **Admins** may use `status`, `list_recordings`, `mute`, `stop_conversion`, `finalize`,
//!   `share`, `delete` and `preview`; anything else is `forbidden`. `preview` takes a picture
//!   now: of what is recorded, or when nothing is and no meeting is active, of the camera. A
//!   meeting that is on and not recorded is `forbidden`: nobody there agreed to a picture.
//! - **Restore.** The version applied before the restart is restored too: until a snapshot
//!   applies, one older than it is stale, while the same version (the broker's retained copy)
//!   applies again, since the engine holds no meeting yet.
//!   Live cloud recordings wait as `paused` for the first applied snapshot:
//!   resumable if it is the same meeting and active, otherwise stopped and completed (E1,
//!   reason `meeting_ended`). Live local recordings and interrupted conversions become
//!   `needs_finalize` (L5). Stopped local ones are converted when their meeting is seen to be
//!   over; stopped cloud ones get `CompleteCloud` again at once (completion was interrupted).
//! - **Shutdown** sends `SetCapture []`, freezes the clocks and saves the rows with their
//!   live states; afterwards the engine emits no more capture changes.
//! - **W1–W4, T1** (`features`): a missing or unknown tier is the lowest; unusable `settings`
//!   are all off and told once (`settings_refused`); tier refusals are told once while they
//!   last; the marks ride on `SetCapture`, so a change cuts a segment; the transcription
//!   flag is set on a recording while transcription is in force and never cleared.
//! - **Memory.** The engine keeps the current meeting's recordings and those of older
//!   meetings with work under way (live, stopped, converting); facts about recordings it no
//!   longer knows (a late `ConversionFinished`, `CloudCompleted`) are ignored.
//! - `DiskFull` and `MediaFailed` stop every live recording (reasons `disk_full`,
//!   `device_lost`); they do not block later starts, since no input reports recovery.
//! - **Disk budget** (issue item 7, `storage`). `Storage` carries the bytes the device may
//!   still write; until the first one nothing is refused for room. A start (both kinds,
//!   `approve_cloud`, and `request_cloud` up front like C8) is refused with `disk_full` when
//!   less than `min_room_ms` of recording fits, checked with availability, before M1. On
//!   `Storage` and sealed segments, every live recording stops (reason `disk_full`, kept as
//!   usual) once less than `quota_headroom_ms` fits. The bitrate is measured from every
//!   sealed segment (all are files on this disk), the C8 figure until then. The engine does
//!   not subtract sealed bytes itself: the daemon reports the room again after each seal.

use std::collections::BTreeSet;

mod cloud;
mod commands;
mod devices;
mod features;
mod lifecycle;
mod local;
mod state;
mod storage;
mod transitions;
mod views;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use features::{audio_payload, Marks, VideoMark};
use state::{DeviceLicence, Meter, Rec};

use crate::protocol::{
    Command, CompletenessSummary, Event, Id, Licence, LocalPolicy, Meeting, MeetingSnapshot,
    RecordingGap, RecordingInfo, Reply, StateDoc, StopReason, Timestamp,
};

/// Time as the engine sees it: wall clock for timestamps and licence comparisons, monotonic
/// milliseconds for durations (a wall-clock step must not change how long anything lasted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub wall: Timestamp,
    pub mono_ms: u64,
}

/// Settings the rules need; built from the validated config by [`RulesConfig::from_config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesConfig {
    /// Cloud recording needs an upload target; without one `cloud.state` is `unavailable`.
    pub cloud_available: bool,
    /// L4: local recordings shorter than this (paused time excluded) are discarded.
    pub min_local_ms: u64,
    /// C8: bitrate assumed before one is measured (the spec's 300 MB per hour).
    pub reference_bytes_per_s: u64,
    /// C8: how far ahead the quota stop looks, in recorded milliseconds: the daemon sets one
    /// and a half segments, so the stop lands before the next segment could cross the limit.
    pub quota_headroom_ms: u64,
    /// Disk budget: a start needs room for this much recording, in milliseconds.
    pub min_room_ms: u64,
    /// W1: the watermark text when the meeting gives none.
    pub device_id: String,
}

impl RulesConfig {
    /// The rules' settings for this device: cloud needs an `[upload]` table, and the quota
    /// stop looks one and a half segments ahead, so that it lands before the next segment
    /// could cross the limit.
    pub fn from_config(config: &crate::config::Config) -> RulesConfig {
        RulesConfig {
            cloud_available: config.upload.is_some(),
            // One and a half segments ahead: the quota stop must land before the next
            // segment could cross the limit.
            quota_headroom_ms: u64::from(config.media.segment_seconds) * 1500,
            device_id: config.device_id.clone(),
            ..RulesConfig::default()
        }
    }
}

impl Default for RulesConfig {
    fn default() -> RulesConfig {
        RulesConfig {
            cloud_available: true,
            min_local_ms: 10_000,
            reference_bytes_per_s: 300_000_000 / 3600,
            quota_headroom_ms: 4_000,
            min_room_ms: 60_000,
            device_id: "roomrec".into(),
        }
    }
}

/// Catalog facts a command needs, looked up by the daemon before the command reaches the
/// engine, so that the engine decides without I/O.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandContext {
    /// For commands naming a `recording_id`: that recording, if the catalog has it.
    pub recording: Option<RecordingInfo>,
    /// For `list_recordings`: the matching recordings.
    pub listing: Vec<RecordingInfo>,
}

/// A sealed media segment, as reported by media after the catalog recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    pub seq: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// The recordings that were capturing during this segment.
    pub recordings: Vec<Id>,
}

/// L5: a local recording's MP4, converted.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    pub location: String,
    /// Segment files that were missing or corrupt, in recording order: the MP4 keeps real
    /// time across each.
    pub gaps: Vec<RecordingGap>,
    /// The figures of the report written beside the MP4, for `conversion_done`; `None`
    /// when it could not be written (the MP4 is the recording all the same).
    pub completeness: Option<CompletenessSummary>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Recordings the catalog holds from before a restart (reconciled), given once at start.
    Restore(Vec<RecordingInfo>),
    /// The version of the last snapshot applied before a restart, given once at start.
    RestoreMeetingVersion(u64),
    Meeting(MeetingSnapshot),
    Licence(Option<Licence>),
    Command(Command, CommandContext),
    SegmentSealed(SealedSegment),
    /// Media could not capture (device gone for good, encoder failure): recordings stop.
    MediaFailed {
        reason: MediaFailure,
        message: String,
    },
    /// The disk has no room for more media: recordings stop, keeping what they have.
    DiskFull,
    /// Disk budget: bytes the device may still write, `min(free - min_free_bytes, max_bytes -
    /// used)` saturating; sent periodically and after each sealed segment.
    Storage {
        room_bytes: u64,
    },
    /// The microphone's capture switch as media last read it.
    MicMuted(bool),
    /// What is wrong with the capture devices now, one phrase each (e.g. "the camera is
    /// missing"); empty when all are usable. Starts are refused while any is not.
    DevicesUnusable(Vec<String>),
    /// A device vanished mid-recording (`back: false`) or returned (`back: true`): the
    /// recording goes on; the host team is told.
    DeviceChanged {
        device: String,
        back: bool,
    },
    /// L5: the MP4's location and the gaps it keeps real time across (segment files missing
    /// or corrupt), or why there is no MP4.
    ConversionFinished {
        recording_id: Id,
        result: Result<Converted, String>,
    },
    /// E1: every segment and the manifest of a cloud recording are uploaded.
    CloudCompleted {
        recording_id: Id,
        location: String,
        /// The figures of the report the manifest carries, for `recording_ready`.
        completeness: Option<CompletenessSummary>,
    },
    /// Periodic: quota, licence expiry.
    Tick,
    /// SIGTERM: stop capturing; running recordings stay resumable.
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFailure {
    DeviceLost,
    Encoder,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Exactly one per `Input::Command`.
    Reply(Reply),
    Event(Event),
    /// The whole state, emitted whenever it differs from the last one emitted.
    State(StateDoc),
    Effect(Effect),
}

impl Output {
    /// The reply, when this output is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Output::Reply(r) => Some(r),
            _ => None,
        }
    }
}

/// Work for the adapters.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// The set of recordings capturing now, or the marks in force for them, changed: media
    /// cuts a segment at a keyframe and tags what follows with these ids and marks it with
    /// `marks` (W4: a settings change takes effect at the next segment). Empty: capture stops
    /// (EOS, last segment sealed).
    SetCapture { recordings: Vec<Id>, marks: Marks },
    /// Switch the microphone's capture (M1).
    SetMuted(bool),
    /// Persist the meeting snapshot that was just applied.
    SaveMeeting {
        version: Option<u64>,
        meeting: Option<Meeting>,
    },
    /// Persist this recording's new row (insert or update).
    SaveRecording(RecordingInfo),
    /// L5: turn a stopped local recording into one MP4.
    Convert { recording_id: Id },
    /// L5: stop a running conversion; the recording becomes `needs_finalize`.
    StopConversion { recording_id: Id },
    /// L4: the recording is too short; its media may be released.
    Discard { recording_id: Id },
    /// E1: upload the rest of this cloud recording and its manifest, then report completion.
    CompleteCloud { recording_id: Id },
    /// E2: rewrite the manifest's shared flag.
    Share { recording_id: Id, shared: bool },
    /// E2: remove the recording's objects and local copies.
    Delete { recording_id: Id },
    /// An admin's `preview`: media publishes a confidence picture now (of the recorded
    /// picture while capturing, else of the camera).
    TakePreview,
}

/// The rules' whole state. Create with [`Engine::new`], feed with [`Engine::handle`].
#[derive(Clone, Debug)]
pub struct Engine {
    config: RulesConfig,
    next_recording: u64,
    /// The version of the last applied snapshot.
    version: Option<u64>,
    /// The version applied before the last restart: until a snapshot applies, an older one
    /// is stale (a replayed snapshot must not undo a newer one across a restart).
    restored_version: Option<u64>,
    /// The current meeting, active or ended; `None` when there is none.
    meeting: Option<Meeting>,
    licence: DeviceLicence,
    muted: bool,
    policy: LocalPolicy,
    allowed: BTreeSet<Id>,
    /// C2: requesters in the order they asked.
    pending: Vec<Id>,
    /// In creation order, which is also the order of `local` in the state.
    recs: Vec<Rec>,
    meter: Meter,
    /// Disk budget: the last `Input::Storage`; `None` until the daemon reports one.
    room_bytes: Option<u64>,
    /// Capture devices media reports missing, named for people.
    device_problems: Vec<String>,
    /// The last `SetCapture` sent.
    capture: Vec<Id>,
    /// The marks of the last `SetCapture` sent.
    marks: Marks,
    /// W2, W3, T1: what the tier refused of the current meeting's settings, as last told.
    refusals: features::Refusals,
    /// The current meeting's unreadable `settings`, as last told (`settings_refused`).
    settings_refused: Option<String>,
    /// After `Shutdown` media captures nothing more.
    capture_stopped: bool,
    last_doc: Option<StateDoc>,
}

impl Engine {
    /// `next_recording` seeds recording ids (`r-<n>`); the daemon takes it from the catalog
    /// (one past the largest id there), so ids stay unique across restarts.
    pub fn new(config: RulesConfig, next_recording: u64) -> Engine {
        Engine {
            config,
            next_recording,
            version: None,
            restored_version: None,
            meeting: None,
            licence: DeviceLicence::default(),
            muted: false,
            policy: LocalPolicy::default(),
            allowed: BTreeSet::new(),
            pending: Vec::new(),
            recs: Vec::new(),
            meter: Meter::default(),
            room_bytes: None,
            device_problems: Vec::new(),
            capture: Vec::new(),
            marks: Marks::default(),
            refusals: features::Refusals::default(),
            settings_refused: None,
            capture_stopped: false,
            last_doc: None,
        }
    }

    /// The state as it would be published now (for a first publication or a status page).
    pub fn state(&self, now: Now) -> StateDoc {
        self.doc(now)
    }

    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Output> {
        let mut out = Vec::new();
        let refresh = matches!(input, Input::SegmentSealed(_));
        match input {
            Input::Command(cmd, ctx) => return self.command(cmd, ctx, now),
            Input::Meeting(snap) => {
                if !self.snapshot(snap, now, &mut out) {
                    return out; // stale: no trace at all
                }
            }
            Input::Restore(rows) => self.restore(rows, &mut out),
            Input::RestoreMeetingVersion(v) => self.restored_version = Some(v),
            Input::Licence(licence) => self.set_licence(licence), // D1: running ones go on
            Input::SegmentSealed(seg) => self.sealed(seg, now, &mut out),
            Input::MediaFailed { .. } => self.stop_all(StopReason::DeviceLost, now, &mut out),
            Input::DiskFull => self.stop_all(StopReason::DiskFull, now, &mut out),
            Input::Storage { room_bytes } => self.set_room(room_bytes, now, &mut out),
            Input::MicMuted(muted) => self.muted = muted, // M1
            Input::DevicesUnusable(problems) => self.set_device_problems(problems),
            Input::DeviceChanged { device, back } => self.device_event(device, back, now, &mut out),
            Input::ConversionFinished {
                recording_id,
                result,
            } => self.conversion_finished(&recording_id, result, now, &mut out),
            Input::CloudCompleted {
                recording_id,
                location,
                completeness,
            } => self.cloud_completed(&recording_id, location, completeness, now, &mut out),
            Input::Tick => self.enforce_quota(now, &mut out), // C8; C7/D1 show via the state
            Input::Shutdown => self.shutdown(now, &mut out),
        }
        self.finish(now, refresh, &mut out);
        out
    }
}
