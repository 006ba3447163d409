//! The recording rules (`shared/spec/recording-rules.md`) as a pure state machine.
//!
//! Owns: every decision about who may record what, when recordings start, pause, stop, are
//! discarded, converted or completed, and what the device publishes about it.
//! Must not touch: I/O, clocks, channels, randomness. Time arrives as a value (`Now`); facts
//! from media, catalog and upload arrive as `Input`s; everything the world must do leaves as
//! `Output`s. Read this module side by side with the spec: each rule id is named where it is
//! enforced.

use crate::protocol::{
    Command, Event, Id, Licence, Meeting, MeetingSnapshot, RecordingInfo, Reply, StateDoc,
    Timestamp,
};

/// Time as the engine sees it: wall clock for timestamps and licence comparisons, monotonic
/// milliseconds for durations (a wall-clock step must not change how long anything lasted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub wall: Timestamp,
    pub mono_ms: u64,
}

/// Settings the rules need; built by the daemon from the validated config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesConfig {
    /// Cloud recording needs an upload target; without one `cloud.state` is `unavailable`.
    pub cloud_available: bool,
    /// L4: local recordings shorter than this (paused time excluded) are discarded.
    pub min_local_ms: u64,
    /// C8: bitrate assumed before one is measured (the spec's 300 MB per hour).
    pub reference_bytes_per_s: u64,
    /// C8: how far ahead the quota stop looks, in recorded milliseconds (about one segment).
    pub quota_headroom_ms: u64,
}

impl Default for RulesConfig {
    fn default() -> RulesConfig {
        RulesConfig {
            cloud_available: true,
            min_local_ms: 10_000,
            reference_bytes_per_s: 300_000_000 / 3600,
            quota_headroom_ms: 4_000,
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

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Recordings the catalog holds from before a restart (reconciled), given once at start.
    Restore(Vec<RecordingInfo>),
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
    /// The microphone's capture switch as media last read it.
    MicMuted(bool),
    ConversionFinished {
        recording_id: Id,
        result: Result<String, String>,
    },
    /// E1: every segment and the manifest of a cloud recording are uploaded.
    CloudCompleted {
        recording_id: Id,
        location: String,
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

/// Work for the adapters.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// The set of recordings capturing now changed: media cuts a segment at a keyframe and tags
    /// what follows with these ids. Empty: capture stops (EOS, last segment sealed).
    SetCapture { recordings: Vec<Id> },
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
}

/// The rules' whole state. Create with [`Engine::new`], feed with [`Engine::handle`].
#[derive(Clone, Debug)]
pub struct Engine {
    config: RulesConfig,
    next_recording: u64,
}

impl Engine {
    /// `next_recording` seeds recording ids (`r-<n>`) so they stay unique across restarts.
    pub fn new(config: RulesConfig, next_recording: u64) -> Engine {
        Engine {
            config,
            next_recording,
        }
    }

    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Output> {
        let _ = (input, now, &self.config, self.next_recording);
        Vec::new()
    }
}
