//! Entry points for the fuzz targets in `fuzz/` (and for `tests/library/fuzz_corpus.rs`, which replays
//! the committed corpus and every input that once failed through the same code).
//!
//! Not an API: compiled only with the `fuzzing` feature (which `fuzz/` and the tests turn on,
//! never the shipped binaries), free to change. Each function takes arbitrary bytes, drives
//! the real decoders, the rules engine, the daemon's dispatcher (`daemon::dispatch`) and the
//! catalog the way the daemon does (decode, look up the command's catalog facts, feed the
//! engine, plan and save the batch), and panics when something that must hold for any input
//! does not.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, Op};
use crate::config::{Config, ConfigError, KEYS, SECTIONS};
use crate::daemon::admission::{facts_needed, FactsNeeded};
use crate::daemon::dispatch;
use crate::protocol::{
    Account, CloudState, Command, ErrorBody, ErrorCode, Id, Licence, Meeting, MeetingSnapshot,
    MeetingState, RecordingInfo, RecordingKind, RecordingState, Reply, StateDoc, Timestamp,
    MAX_PAYLOAD_BYTES,
};
use crate::rules::{
    CommandContext, Effect, Engine, Input, Now, Output, RulesConfig, SealedSegment,
};

/// 2027-01-01T00:00:00Z, the clock the harness starts at.
const T0: i64 = 1_798_761_600_000;
/// The version of the harness's meeting snapshot; a fuzzed snapshot must beat it to apply.
pub const SETUP_VERSION: u64 = 5;
/// At most this many commands are taken from one input (one per line).
const MAX_COMMANDS: usize = 64;

fn id(s: &str) -> Id {
    Id::parse(s).expect("harness ids are valid")
}

/// The meeting of the harness: creator and host u-1, co-host u-2, members u-3 and u-4.
pub fn setup_meeting() -> Meeting {
    Meeting {
        meeting_id: id("m-1"),
        state: MeetingState::Active,
        creator: id("u-1"),
        host: id("u-1"),
        cohosts: vec![id("u-2")],
        participants: ["u-1", "u-2", "u-3", "u-4"].map(id).to_vec(),
        sharing: false,
        account: Account {
            tier: Some("business".into()),
            licence_expires_at: Some(Timestamp(T0 + 365 * 86_400_000)),
            cloud_quota_bytes: Some(Some(400 << 30)),
            cloud_used_bytes: 1 << 20,
        },
        settings: Default::default(),
    }
}

/// The engine, the catalog and what the outputs said, as the daemon keeps them.
pub struct Harness {
    pub engine: Engine,
    /// `None` in [`Harness::realistic_fast`]: the command facts then come from `rows`, which
    /// hold what the catalog would (every saved row, as saved).
    pub catalog: Option<Catalog>,
    pub now: Now,
    /// The catalog rows as the engine saved them (`SaveRecording`).
    pub rows: BTreeMap<Id, RecordingInfo>,
    /// The last `SetCapture`.
    pub capture: Vec<Id>,
    /// The meeting of the last applied snapshot.
    pub meeting: Option<Meeting>,
    pub version: Option<u64>,
    seq: u64,
}

impl Harness {
    /// A device in the middle of a meeting: restored rows from before a restart (a cloud
    /// recording that resumes, a local one to finalize, a stopped one), a valid Rooms licence,
    /// room on disk, meeting m-1 at version [`SETUP_VERSION`], the cloud recording running
    /// again, local recording open to all and u-3 recording locally for 15 s.
    pub fn realistic() -> Harness {
        let mut h = Harness {
            engine: Engine::new(RulesConfig::default(), 100),
            catalog: Some(Catalog::open_in_memory().expect("in-memory catalog")),
            now: Now {
                wall: Timestamp(T0),
                mono_ms: 1_000,
            },
            rows: BTreeMap::new(),
            capture: Vec::new(),
            meeting: None,
            version: None,
            seq: 0,
        };
        let m = setup_meeting();
        // Rows from before a restart must have their meeting saved, as they would have been.
        h.save(vec![Op::SaveMeeting {
            version: Some(SETUP_VERSION - 1),
            meeting: Some(m.clone()),
            at: h.now.wall,
        }]);
        let row = |rid: &str, kind, state, owner: &str| RecordingInfo {
            recording_id: id(rid),
            meeting_id: id("m-1"),
            kind,
            owner: id(owner),
            started_by: id(owner),
            host: id("u-1"),
            state,
            created_at: Timestamp(T0 - 60_000),
            recorded_ms: 20_000,
            bytes: 1 << 20,
            shared: false,
            location: None,
            transcription: false,
        };
        let restored = vec![
            row(
                "r-90",
                RecordingKind::Cloud,
                RecordingState::Recording,
                "u-1",
            ),
            row("r-91", RecordingKind::Local, RecordingState::Paused, "u-4"),
            row("r-92", RecordingKind::Local, RecordingState::Stopped, "u-1"),
            row("r-93", RecordingKind::Local, RecordingState::Ready, "u-2"),
        ];
        h.save(restored.iter().cloned().map(Op::SaveRecording).collect());
        for r in &restored {
            h.rows.insert(r.recording_id.clone(), r.clone());
        }
        h.feed(Input::Restore(restored));
        h.feed(Input::Licence(Some(Licence {
            kind: "rooms".into(),
            valid_until: Timestamp(T0 + 30 * 86_400_000),
        })));
        h.feed(Input::Storage {
            room_bytes: 50 << 30,
        });
        h.snapshot(MeetingSnapshot {
            version: Some(SETUP_VERSION),
            meeting: Some(m),
        });
        for line in [
            r#"{"id":"s-1","actor":"u-1","action":"resume","target":"cloud"}"#,
            r#"{"id":"s-2","actor":"u-1","action":"set_local_policy","policy":"all"}"#,
            r#"{"id":"s-3","actor":"u-3","action":"start","kind":"local"}"#,
        ] {
            h.command(line.as_bytes());
        }
        h.advance(15_000);
        h.seal(4_000_000, 2_000);
        h
    }

    /// [`Harness::realistic`] without the catalog, cloned from one built per thread: the same
    /// state in microseconds instead of milliseconds, for the fuzz target that needs speed.
    pub fn realistic_fast() -> Harness {
        thread_local! {
            static PROTO: Harness = {
                let mut h = Harness::realistic();
                h.catalog = None;
                h
            };
        }
        PROTO.with(|p| Harness {
            engine: p.engine.clone(),
            catalog: None,
            now: p.now,
            rows: p.rows.clone(),
            capture: p.capture.clone(),
            meeting: p.meeting.clone(),
            version: p.version,
            seq: p.seq,
        })
    }

    pub fn advance(&mut self, ms: u64) {
        self.now.mono_ms += ms;
        self.now.wall = Timestamp(self.now.wall.0 + ms as i64);
    }

    /// Feeds one input, plans its outputs with the daemon's own dispatcher, keeps what the
    /// plan says and saves its batch as the daemon would.
    pub fn feed(&mut self, input: Input) -> Vec<Output> {
        let out = self.engine.handle(input, self.now);
        let plan = dispatch::plan(&out, self.now.wall);
        for op in &plan.batch {
            if let Op::SaveRecording(r) = op {
                if let Some(old) = self.rows.get(&r.recording_id) {
                    // The catalog's contract (`Op::SaveRecording`).
                    assert_eq!(old.meeting_id, r.meeting_id, "meeting of {r:?} changed");
                    assert_eq!(old.kind, r.kind, "kind of {r:?} changed");
                    assert_eq!(old.created_at, r.created_at, "creation of {r:?} changed");
                }
                self.rows.insert(r.recording_id.clone(), r.clone());
            }
        }
        for effect in &plan.effects {
            if let Effect::SetCapture { recordings, .. } = effect {
                self.capture = recordings.clone();
            }
        }
        let docs: Vec<&StateDoc> = out
            .iter()
            .filter_map(|o| match o {
                Output::State(doc) => Some(doc),
                _ => None,
            })
            .collect();
        assert!(
            docs.len() <= 1,
            "one input published the state {} times",
            docs.len()
        );
        if let (Some(doc), Some(state)) = (docs.first(), &plan.state) {
            round_trips(*doc);
            let published: StateDoc =
                serde_json::from_slice(&state.json).expect("the planned state reads back");
            assert_eq!(&&published, doc, "the planned state is not the engine's");
        }
        self.save(plan.batch);
        out
    }

    /// Saves a batch as the daemon does; the catalog refusing one loses rows, so it must not.
    fn save(&mut self, ops: Vec<Op>) {
        if let (false, Some(catalog)) = (ops.is_empty(), self.catalog.as_mut()) {
            if let Err(e) = catalog.apply(&ops) {
                panic!("the catalog refused the batch {ops:?}: {e}");
            }
        }
    }

    /// One `<p>/meeting` message, decoded. Returns the outputs (empty when stale).
    pub fn snapshot(&mut self, snap: MeetingSnapshot) -> Vec<Output> {
        let stale = matches!((snap.version, self.version), (Some(v), Some(last)) if v <= last);
        let before = format!("{:?}", self.engine);
        let (version, meeting) = (snap.version, snap.meeting.clone());
        let out = self.feed(Input::Meeting(snap));
        if stale {
            assert!(out.is_empty(), "a stale snapshot produced {out:?}");
            assert_eq!(
                format!("{:?}", self.engine),
                before,
                "a stale snapshot changed the engine"
            );
        } else {
            // An empty payload (no version) applies but keeps the last version: it only grows.
            if version.is_some() {
                self.version = version;
            }
            self.meeting = meeting.clone();
            // What the catalog gives back is what was applied (it is the restart's memory).
            if let Some(catalog) = &self.catalog {
                let saved = catalog.last_meeting().expect("catalog readable");
                let saved = saved.expect("a snapshot was saved");
                assert_eq!(saved.version, version, "saved version");
                assert_eq!(
                    saved.meeting, meeting,
                    "the saved meeting differs from the applied one"
                );
            }
        }
        self.check();
        out
    }

    /// One `<p>/cmd` payload, as the daemon handles it: a decode error gets `bad_request`,
    /// a command gets its catalog facts and goes to the engine; exactly one reply either way.
    pub fn command(&mut self, payload: &[u8]) -> Reply {
        let cmd = match Command::decode(payload) {
            Ok(cmd) => cmd,
            Err(e) => {
                assert!(!e.message.is_empty(), "a decode error without a message");
                if let Some(raw) = &e.id {
                    assert!(
                        Id::parse(raw).is_ok(),
                        "an invalid id {raw:?} kept for the reply"
                    );
                }
                let reply = Reply::err(e.id, ErrorBody::new(ErrorCode::BadRequest, e.message));
                round_trips(&reply);
                return reply;
            }
        };
        assert!(
            payload.len() <= MAX_PAYLOAD_BYTES,
            "an oversized command was decoded"
        );
        let ctx = self.context_for(&cmd);
        let cmd_id = cmd.id.to_string();
        let out = self.feed(Input::Command(cmd, ctx));
        let replies: Vec<&Reply> = out.iter().filter_map(Output::reply).collect();
        assert_eq!(replies.len(), 1, "replies to one command: {out:?}");
        assert!(
            matches!(out.last(), Some(Output::Reply(_))),
            "the reply comes last: {out:?}"
        );
        let reply = replies[0].clone();
        assert_eq!(reply.id.as_deref(), Some(cmd_id.as_str()), "reply id");
        assert_eq!(
            reply.ok,
            reply.error.is_none(),
            "ok exactly when no error: {reply:?}"
        );
        if reply.ok {
            assert!(reply.state.is_some(), "an ok reply carries the state");
        } else {
            let error = reply.error.as_ref().expect("error");
            assert!(!error.message.is_empty(), "an error without a message");
        }
        round_trips(&reply);
        // The catalog keeps the first answer for a repeated id (QoS 1 redelivery).
        if let Some(catalog) = &self.catalog {
            let stored = catalog.command_reply(&cmd_id).expect("catalog readable");
            assert!(stored.is_some(), "the reply to {cmd_id} was not stored");
        }
        self.check();
        reply
    }

    /// The catalog facts the daemon looks up before a command (`daemon::admission`).
    fn context_for(&self, cmd: &Command) -> CommandContext {
        let mut ctx = CommandContext::default();
        match facts_needed(&cmd.action) {
            FactsNeeded::Recording(recording_id) => {
                ctx.recording = match &self.catalog {
                    Some(c) => c.recording(recording_id).expect("catalog readable"),
                    None => self.rows.get(recording_id).cloned(),
                };
            }
            FactsNeeded::Listing(state) => {
                ctx.listing = match &self.catalog {
                    Some(c) => c.recordings(state).expect("catalog readable"),
                    None => (self.rows.values())
                        .filter(|r| state.is_none_or(|s| r.state == s))
                        .cloned()
                        .collect(),
                };
            }
            FactsNeeded::None => {}
        }
        ctx
    }

    /// A segment sealed for what is capturing now.
    pub fn seal(&mut self, bytes: u64, duration_ms: u64) {
        self.seq += 1;
        let recordings = self.capture.clone();
        self.feed(Input::SegmentSealed(SealedSegment {
            seq: self.seq,
            bytes,
            duration_ms,
            recordings,
        }));
        self.check();
    }

    pub fn tick(&mut self) {
        self.feed(Input::Tick);
        self.check();
    }

    /// Invariants recomputed from the outputs (rows saved, capture set sent, snapshot given),
    /// not from the engine's own bookkeeping.
    pub fn check(&self) {
        let live: Vec<&RecordingInfo> = self.rows.values().filter(|r| r.state.is_live()).collect();
        // C3: at most one live cloud recording.
        let clouds: Vec<&&RecordingInfo> = live
            .iter()
            .filter(|r| r.kind == RecordingKind::Cloud)
            .collect();
        assert!(clouds.len() <= 1, "live cloud recordings: {clouds:?}");
        // L6: media captures exactly the recordings in `recording`.
        let mut recording: Vec<&Id> = self
            .rows
            .values()
            .filter(|r| r.state == RecordingState::Recording)
            .map(|r| &r.recording_id)
            .collect();
        let mut capture: Vec<&Id> = self.capture.iter().collect();
        recording.sort();
        capture.sort();
        assert_eq!(capture, recording, "capture set vs rows in `recording`");
        let doc = self.engine.state(self.now);
        round_trips(&doc);
        let active = self
            .meeting
            .as_ref()
            .filter(|m| m.state == MeetingState::Active);
        // L3, E1: live local recordings belong to the active meeting and a present owner.
        for r in live.iter().filter(|r| r.kind == RecordingKind::Local) {
            let m = active.unwrap_or_else(|| panic!("{r:?} is live without an active meeting"));
            assert_eq!(r.meeting_id, m.meeting_id, "{r:?} outlived its meeting");
            assert!(m.participants.contains(&r.owner), "{r:?}: its owner left");
        }
        // Views exist exactly for the participants of an active meeting.
        match active {
            Some(m) => {
                let mut present: Vec<&Id> = m.participants.iter().collect();
                present.sort();
                present.dedup();
                let views: Vec<&Id> = doc.views.keys().collect();
                assert_eq!(views, present, "views vs participants");
            }
            None => assert!(doc.views.is_empty(), "views without an active meeting"),
        }
        match clouds.first().map(|c| c.state) {
            Some(RecordingState::Recording) => assert_eq!(doc.cloud.state, CloudState::Recording),
            Some(_) => assert_eq!(doc.cloud.state, CloudState::Paused),
            None => assert!(matches!(
                doc.cloud.state,
                CloudState::Idle | CloudState::Unavailable
            )),
        }
        assert_eq!(
            doc.meeting_version, self.version,
            "published meeting version"
        );
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("the device's own messages serialise")
}

/// What the device publishes reads back as the same value (other programs parse it).
fn round_trips<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = to_json(value);
    let back: T = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{} does not read back: {e}", String::from_utf8_lossy(&json)));
    assert_eq!(&back, value, "{}", String::from_utf8_lossy(&json));
}

/// Fuzz target `command`: each line of `data` is one `<p>/cmd` payload, handled 1.5 s after
/// the one before by a device in the middle of a meeting ([`Harness::realistic_fast`]).
pub fn command(data: &[u8]) {
    commands(Harness::realistic_fast(), data);
}

/// [`command`] with every batch saved to a real (in-memory) catalog and the command facts
/// read back from it, as the daemon does; slower, so the corpus test uses it.
pub fn command_with_catalog(data: &[u8]) {
    commands(Harness::realistic(), data);
}

fn commands(mut h: Harness, data: &[u8]) {
    for line in data.split(|&b| b == b'\n').take(MAX_COMMANDS) {
        h.advance(1_500);
        h.command(line);
    }
    // Time passes and media goes on; the device still answers.
    h.advance(5_000);
    h.seal(3_000_000, 2_000);
    h.tick();
    let reply = h.command(br#"{"id":"fz-end","actor":"u-1","action":"status"}"#);
    assert!(reply.ok, "status after the commands: {reply:?}");
}

/// Fuzz target `snapshot`: `data` is one `<p>/meeting` payload, applied to a device in the
/// middle of a meeting, then applied again (stale unless empty), then time, media and a
/// command from its host.
pub fn snapshot(data: &[u8]) {
    let snap = match MeetingSnapshot::decode(data) {
        Ok(snap) => snap,
        Err(message) => {
            assert!(!message.is_empty(), "a decode error without a message");
            return;
        }
    };
    let mut h = Harness::realistic();
    let again = snap.clone();
    let versioned = snap.version.is_some();
    h.snapshot(snap);
    let out = h.snapshot(again);
    if versioned {
        assert!(
            out.is_empty(),
            "the same snapshot twice changed something: {out:?}"
        );
    }
    h.advance(3_000);
    h.seal(3_000_000, 2_000);
    h.tick();
    let host = h
        .meeting
        .as_ref()
        .map_or("u-1".to_owned(), |m| m.host.to_string());
    for (n, action) in [
        r#""action":"status""#,
        r#""action":"start","kind":"cloud","silent":true"#,
        r#""action":"start","kind":"local""#,
        r#""action":"stop""#,
    ]
    .iter()
    .enumerate()
    {
        let line = format!(r#"{{"id":"fz-{n}","actor":"{host}",{action}}}"#);
        h.command(line.as_bytes());
    }
}

/// Fuzz target `config`: `data` as the TOML text of the config file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = Config::from_toml_str(text);
    match &first {
        Ok(config) => {
            assert!(!config.device_id.is_empty() && config.device_id.len() <= 64);
            let prefix = config.topic_prefix();
            assert!(!prefix.is_empty(), "empty topic prefix");
            assert!(
                !prefix.contains(['+', '#']),
                "wildcards in the topic prefix {prefix:?}"
            );
            assert!(!config.mqtt.host.is_empty(), "empty broker host");
            assert!(config.mqtt.port != 0, "broker port 0");
            let _ = config.storage.retention();
            assert!(config.media.segment_duration().as_secs() >= 1);
            if let Some(upload) = &config.upload {
                let _ = crate::upload::UploadSettings::from_config(upload);
            }
            let _ = format!("{config:?}");
        }
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "invalid without a problem");
            for p in problems {
                assert!(!p.message.is_empty(), "a problem without a message: {p:?}");
                let section = p.key.split('.').next().unwrap_or("");
                assert!(
                    p.key.is_empty()
                        || KEYS.contains(&p.key.as_str())
                        || SECTIONS.contains(&section)
                        || !p.key.contains('.'),
                    "a problem under an unknown section: {p:?}"
                );
            }
            let _ = first.as_ref().map_err(|e| e.to_string());
        }
        Err(e @ ConfigError::Read { .. }) => panic!("no file was read, yet: {e}"),
    }
    // Deterministic: the same text gives the same answer.
    let second = Config::from_toml_str(text);
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "two parses of the same text differ"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_starts_mid_meeting_with_both_kinds_recording() {
        let h = Harness::realistic();
        let doc = h.engine.state(h.now);
        assert_eq!(doc.cloud.state, CloudState::Recording, "{doc:?}");
        assert!(
            doc.local
                .iter()
                .any(|l| l.owner.as_str() == "u-3" && l.state == RecordingState::Recording),
            "{doc:?}"
        );
        assert_eq!(doc.meeting_version, Some(SETUP_VERSION));
    }

    #[test]
    fn a_bad_command_gets_bad_request_with_its_id() {
        let mut h = Harness::realistic();
        let reply = h.command(br#"{"id":"x-1","actor":"u-1","action":"fly"}"#);
        assert_eq!(reply.id.as_deref(), Some("x-1"));
        assert_eq!(reply.error.map(|e| e.code), Some(ErrorCode::BadRequest));
    }
}
