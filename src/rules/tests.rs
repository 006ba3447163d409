//! One table-driven test per rule id of `docs/recording-rules.md`, plus the engine-wide decisions
//! (stale snapshots, quiet ticks, restore, shutdown). Each case reads in one line: prior
//! steps, the act, the expected reply code and what must (not) have been emitted.

use super::state::DeviceLicence;
use super::*;
use crate::protocol::{
    Account, CloudState, ErrorCode, EventType, LocalPolicy, MeetingState, RecordingKind,
    RecordingState, VideoWatermark, View,
};

/// 2027-01-01T00:00:00Z.
const T0: i64 = 1_798_761_600_000;
const DAY_MS: i64 = 86_400_000;
const GIB: u64 = 1 << 30;

const OK: Option<ErrorCode> = None;
const FORBIDDEN: Option<ErrorCode> = Some(ErrorCode::Forbidden);
const CONFLICT: Option<ErrorCode> = Some(ErrorCode::Conflict);
const NOT_FOUND: Option<ErrorCode> = Some(ErrorCode::NotFound);
const NO_MEETING: Option<ErrorCode> = Some(ErrorCode::NoMeeting);
const LICENCE_EXPIRED: Option<ErrorCode> = Some(ErrorCode::LicenceExpired);
const QUOTA: Option<ErrorCode> = Some(ErrorCode::QuotaExhausted);
const CONFIRM: Option<ErrorCode> = Some(ErrorCode::NeedsConfirmation);
const DISK_FULL: Option<ErrorCode> = Some(ErrorCode::DiskFull);

const START_CLOUD: &str = r#"{"action":"start","kind":"cloud"}"#;
const START_LOCAL: &str = r#"{"action":"start","kind":"local"}"#;
const STOP: &str = r#"{"action":"stop"}"#;
const PAUSE: &str = r#"{"action":"pause"}"#;
const RESUME: &str = r#"{"action":"resume"}"#;
const STATUS: &str = r#"{"action":"status"}"#;
const REQUEST: &str = r#"{"action":"request_cloud"}"#;
const POLICY_ALL: &str = r#"{"action":"set_local_policy","policy":"all"}"#;
const ALLOW_U2: &str = r#"{"action":"allow_local","participant":"u-2"}"#;
const ALLOW_U3: &str = r#"{"action":"allow_local","participant":"u-3"}"#;

pub(super) fn id(s: &str) -> Id {
    Id::parse(s).expect("test ids are valid")
}

fn ids(list: &[&str]) -> Vec<Id> {
    list.iter().map(|s| id(s)).collect()
}

/// m-42: creator and host u-1, co-host u-2, members u-3 and u-4; business tier.
pub(super) fn meeting() -> Meeting {
    Meeting {
        meeting_id: id("m-42"),
        state: MeetingState::Active,
        creator: id("u-1"),
        host: id("u-1"),
        cohosts: ids(&["u-2"]),
        participants: ids(&["u-1", "u-2", "u-3", "u-4"]),
        sharing: false,
        account: Account {
            tier: Some("business".into()),
            licence_expires_at: Some(Timestamp(T0 + 365 * DAY_MS)),
            cloud_quota_bytes: None,
            cloud_used_bytes: 0,
        },
        settings: Default::default(),
    }
}

pub(super) fn rooms_licence(until: i64) -> Licence {
    Licence {
        kind: "rooms".into(),
        valid_until: Timestamp(until),
    }
}

pub(super) fn cmd(actor: &str, json: &str, n: u64) -> Command {
    let mut obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).expect("test command is a JSON object");
    obj.insert("id".into(), format!("c-{n}").into());
    obj.insert("actor".into(), actor.into());
    let payload = serde_json::to_vec(&obj).expect("serialisable");
    Command::decode(&payload).expect("test command decodes")
}

fn seal(bytes: u64, duration_ms: u64, recordings: &[&str]) -> Input {
    Input::SegmentSealed(SealedSegment {
        seq: 1,
        bytes,
        duration_ms,
        recordings: ids(recordings),
    })
}

fn row(rid: &str, meeting: &str, kind: RecordingKind, state: RecordingState) -> RecordingInfo {
    RecordingInfo {
        recording_id: id(rid),
        meeting_id: id(meeting),
        kind,
        owner: id("u-7"),
        started_by: id("u-7"),
        host: id("u-7"),
        state,
        created_at: Timestamp(T0 - DAY_MS),
        recorded_ms: 60_000,
        bytes: 1000,
        shared: false,
        location: None,
        transcription: false,
    }
}

/// One step before the act, or the act itself.
enum Step {
    /// A command that must succeed.
    Ok(&'static str, &'static str),
    /// A command; as the act its reply code is checked.
    Do(&'static str, &'static str),
    /// A new snapshot of the fixture meeting (version + 1) after this change.
    Roster(fn(&mut Meeting)),
    Wait(u64),
    In(fn() -> Input),
    /// Reach into the engine (config, licence state) for setups no input produces.
    Poke(fn(&mut Engine)),
    /// The catalog row the next command gets in its context.
    Ctx(fn() -> RecordingInfo),
}

/// What must hold after the act.
enum Expect {
    Ev(EventType),
    NoEv(EventType),
    EvTo(EventType, &'static [&'static str]),
    EvReason(EventType, &'static str),
    Eff(&'static str),
    NoEff(&'static str),
    EffBefore(&'static str, &'static str),
    Capture(&'static [&'static str]),
    Cloud(CloudState),
    CloudId(&'static str),
    CloudBy(&'static str),
    CloudOwner(&'static str),
    RemainingS(Option<u64>),
    /// Disk budget: `Engine::remaining_record_s`.
    RecordS(Option<u64>),
    Sees(&'static str, View),
    RecIs(&'static str, RecordingState),
    RecordedMs(&'static str, u64),
    Shared(&'static str, bool),
    Msg(&'static str),
    Reason(&'static str),
    Pending(&'static [&'static str]),
    Policy(LocalPolicy),
    Allowed(&'static [&'static str]),
    Muted(bool),
    MeetingId(Option<&'static str>),
    /// W1–W4: the video mark of the last `SetCapture`: `off`, or `single`/`multi` with text.
    Mark(&'static str, &'static str),
    /// W3: the audio payload of the last `SetCapture`.
    AudioMark(Option<u64>),
    /// The state's `in_force`.
    ShowsVideo(VideoWatermark),
    ShowsAudio(bool),
    ShowsTranscription(bool),
    /// T1: the recording's transcription flag.
    Transcribed(&'static str, bool),
    /// An event of this type with an error of this code whose message holds this text.
    EvError(EventType, ErrorCode, &'static str),
    /// L5: `conversion_done`'s gaps, as the segment seqs of each.
    Gaps(&'static [&'static [u64]]),
}

type Case<'a> = (&'a str, &'a [Step], Step, Option<ErrorCode>, &'a [Expect]);

pub(super) struct Fx {
    pub e: Engine,
    pub now: Now,
    meeting: Meeting,
    version: u64,
    n: u64,
    ctx: CommandContext,
    capture: Vec<Id>,
    marks: Marks,
}

impl Fx {
    /// The fixture meeting applied (version 1) and a Rooms licence valid for a year.
    pub fn new() -> Fx {
        let mut fx = Fx {
            e: Engine::new(RulesConfig::default(), 1),
            now: Now {
                wall: Timestamp(T0),
                mono_ms: 1_000,
            },
            meeting: meeting(),
            version: 1,
            n: 0,
            ctx: CommandContext::default(),
            capture: Vec::new(),
            marks: Marks::default(),
        };
        fx.input(Input::Licence(Some(rooms_licence(T0 + 365 * DAY_MS))));
        fx.input(Input::Meeting(MeetingSnapshot {
            version: Some(1),
            meeting: Some(meeting()),
        }));
        fx
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        let out = self.e.handle(input, self.now);
        for o in &out {
            if let Output::Effect(Effect::SetCapture { recordings, marks }) = o {
                self.capture = recordings.clone();
                self.marks = marks.clone();
            }
        }
        out
    }

    fn command(&mut self, actor: &str, json: &str) -> (Reply, Vec<Output>) {
        self.n += 1;
        let ctx = std::mem::take(&mut self.ctx);
        let out = self.input(Input::Command(cmd(actor, json, self.n), ctx));
        let replies: Vec<&Reply> = out.iter().filter_map(Output::reply).collect();
        assert_eq!(replies.len(), 1, "exactly one reply to {json}: {out:?}");
        (replies[0].clone(), out)
    }

    fn roster(&mut self, change: fn(&mut Meeting)) -> Vec<Output> {
        change(&mut self.meeting);
        self.version += 1;
        self.input(Input::Meeting(MeetingSnapshot {
            version: Some(self.version),
            meeting: Some(self.meeting.clone()),
        }))
    }

    fn wait(&mut self, ms: u64) {
        self.now.mono_ms += ms;
        self.now.wall = Timestamp(self.now.wall.0 + ms as i64);
    }

    /// Runs a step; returns the reply when it was a command.
    fn step(&mut self, step: &Step, case: &str) -> (Option<Reply>, Vec<Output>) {
        match step {
            Step::Ok(actor, json) => {
                let (reply, out) = self.command(actor, json);
                assert!(reply.ok, "{case}: setup {actor} {json} failed: {reply:?}");
                (Some(reply), out)
            }
            Step::Do(actor, json) => {
                let (reply, out) = self.command(actor, json);
                (Some(reply), out)
            }
            Step::Roster(change) => (None, self.roster(*change)),
            Step::Wait(ms) => {
                self.wait(*ms);
                (None, Vec::new())
            }
            Step::In(input) => (None, self.input(input())),
            Step::Poke(poke) => {
                poke(&mut self.e);
                (None, Vec::new())
            }
            Step::Ctx(row) => {
                self.ctx.recording = Some(row());
                (None, Vec::new())
            }
        }
    }

    fn rec(&self, rid: &str, case: &str) -> &RecordingInfo {
        let i = self
            .e
            .find(&id(rid))
            .unwrap_or_else(|| panic!("{case}: the engine does not know {rid}"));
        &self.e.recs[i].info
    }
}

fn events(out: &[Output]) -> impl Iterator<Item = &Event> {
    out.iter().filter_map(|o| match o {
        Output::Event(e) => Some(e),
        _ => None,
    })
}

fn effect_name(e: &Effect) -> &'static str {
    match e {
        Effect::SetCapture { .. } => "SetCapture",
        Effect::SetMuted(_) => "SetMuted",
        Effect::SaveMeeting { .. } => "SaveMeeting",
        Effect::SaveRecording(_) => "SaveRecording",
        Effect::Convert { .. } => "Convert",
        Effect::StopConversion { .. } => "StopConversion",
        Effect::Discard { .. } => "Discard",
        Effect::CompleteCloud { .. } => "CompleteCloud",
        Effect::Share { .. } => "Share",
        Effect::Delete { .. } => "Delete",
        Effect::TakePreview => "TakePreview",
    }
}

fn effect_pos(out: &[Output], name: &str) -> Option<usize> {
    out.iter()
        .position(|o| matches!(o, Output::Effect(e) if effect_name(e) == name))
}

fn check(fx: &Fx, case: &str, reply: Option<&Reply>, out: &[Output], x: &Expect) {
    let doc = fx.e.state(fx.now);
    let error = reply.and_then(|r| r.error.as_ref());
    let ev = |kind: &EventType| events(out).find(|e| e.kind == *kind);
    match x {
        Expect::Ev(k) => assert!(ev(k).is_some(), "{case}: no {k:?} in {out:?}"),
        Expect::NoEv(k) => assert!(ev(k).is_none(), "{case}: unexpected {k:?} in {out:?}"),
        Expect::EvTo(k, to) => {
            let e = ev(k).unwrap_or_else(|| panic!("{case}: no {k:?} in {out:?}"));
            assert_eq!(e.to, ids(to), "{case}: recipients of {k:?}");
        }
        Expect::Gaps(want) => {
            let e = ev(&EventType::ConversionDone)
                .unwrap_or_else(|| panic!("{case}: no conversion_done in {out:?}"));
            let seqs: Option<Vec<&[u64]>> = e
                .gaps
                .as_ref()
                .map(|gaps| gaps.iter().map(|g| g.seqs.as_slice()).collect());
            assert_eq!(seqs.as_deref(), Some(*want), "{case}: gaps");
        }
        Expect::EvReason(k, reason) => assert!(
            events(out).any(|e| e.kind == *k && e.reason.as_deref() == Some(*reason)),
            "{case}: no {k:?} with reason {reason} in {out:?}"
        ),
        Expect::Eff(name) => assert!(effect_pos(out, name).is_some(), "{case}: no {name}"),
        Expect::NoEff(name) => assert!(effect_pos(out, name).is_none(), "{case}: a {name}"),
        Expect::EffBefore(a, b) => {
            let (pa, pb) = (effect_pos(out, a), effect_pos(out, b));
            assert!(pa.is_some() && pa < pb, "{case}: {a} must come before {b}");
        }
        Expect::Capture(want) => assert_eq!(fx.capture, ids(want), "{case}: capture"),
        Expect::Cloud(state) => assert_eq!(doc.cloud.state, *state, "{case}: cloud state"),
        Expect::CloudId(r) => assert_eq!(doc.cloud.recording_id, Some(id(r)), "{case}"),
        Expect::CloudBy(p) => assert_eq!(doc.cloud.started_by, Some(id(p)), "{case}"),
        Expect::CloudOwner(p) => assert_eq!(doc.cloud.owner, Some(id(p)), "{case}"),
        Expect::RemainingS(s) => assert_eq!(doc.cloud.remaining_s, *s, "{case}: remaining_s"),
        Expect::RecordS(s) => assert_eq!(fx.e.remaining_record_s(), *s, "{case}: record_s"),
        Expect::Sees(p, v) => assert_eq!(doc.views.get(&id(p)), Some(v), "{case}: view of {p}"),
        Expect::RecIs(r, s) => assert_eq!(fx.rec(r, case).state, *s, "{case}: state of {r}"),
        Expect::RecordedMs(r, ms) => assert_eq!(fx.rec(r, case).recorded_ms, *ms, "{case}"),
        Expect::Shared(r, s) => assert_eq!(fx.rec(r, case).shared, *s, "{case}: shared"),
        Expect::Msg(needle) => {
            let m = error.map(|e| e.message.as_str()).unwrap_or_default();
            assert!(m.contains(needle), "{case}: message {m:?} lacks {needle:?}");
        }
        Expect::Reason(r) => {
            let got = error.and_then(|e| e.reason.as_deref());
            assert_eq!(got, Some(*r), "{case}: error reason");
        }
        Expect::Pending(p) => assert_eq!(doc.pending_cloud_requests, ids(p), "{case}"),
        Expect::Policy(p) => assert_eq!(doc.local_policy, *p, "{case}: policy"),
        Expect::Allowed(a) => assert_eq!(doc.local_allowed, ids(a), "{case}: allowed"),
        Expect::Muted(m) => assert_eq!(doc.muted, *m, "{case}: muted"),
        Expect::MeetingId(m) => assert_eq!(doc.meeting_id, m.map(id), "{case}: meeting"),
        Expect::Mark(kind, text) => {
            let got = match &fx.marks.video {
                VideoMark::Off => ("off", ""),
                VideoMark::Single(t) => ("single", t.as_str()),
                VideoMark::Multi(t) => ("multi", t.as_str()),
            };
            assert_eq!(got, (*kind, *text), "{case}: video mark");
        }
        Expect::AudioMark(p) => assert_eq!(fx.marks.audio, *p, "{case}: audio mark"),
        Expect::ShowsVideo(v) => assert_eq!(doc.in_force.watermark.video, *v, "{case}: in force"),
        Expect::ShowsAudio(a) => assert_eq!(doc.in_force.watermark.audio, *a, "{case}: in force"),
        Expect::ShowsTranscription(t) => {
            assert_eq!(doc.in_force.transcription, *t, "{case}: in force")
        }
        Expect::Transcribed(r, t) => {
            assert_eq!(
                fx.rec(r, case).transcription,
                *t,
                "{case}: transcription of {r}"
            )
        }
        Expect::EvError(k, code, needle) => {
            let e = ev(k).unwrap_or_else(|| panic!("{case}: no {k:?} in {out:?}"));
            let err = e
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("{case}: {k:?} without error"));
            assert_eq!(err.code, *code, "{case}");
            assert!(
                err.message.contains(needle),
                "{case}: {:?} lacks {needle:?}",
                err.message
            );
        }
    }
}

fn table(rule: &str, cases: &[Case]) {
    for (name, steps, act, code, expect) in cases {
        let case = format!("{rule} / {name}");
        let mut fx = Fx::new();
        for s in *steps {
            fx.step(s, &case);
        }
        let (reply, out) = fx.step(act, &case);
        let got = reply
            .as_ref()
            .and_then(|r| r.error.as_ref())
            .map(|e| e.code);
        assert_eq!(got, *code, "{case}: reply {reply:?}");
        if let Some(r) = &reply {
            assert_eq!(r.ok, code.is_none(), "{case}");
            assert_eq!(
                r.state.is_some(),
                r.ok,
                "{case}: ok replies carry the state"
            );
        }
        for x in *expect {
            check(&fx, &case, reply.as_ref(), &out, x);
        }
    }
}

use Expect::*;
use Step::{Ctx, Do, In, Poke, Roster, Wait};

#[test]
#[rustfmt::skip]
fn c1_only_hosts_and_cohosts_start_cloud() {
    table(
        "C1",
        &[
            ("host", &[], Do("u-1", START_CLOUD), OK, &[Ev(EventType::RecordingStarted), Cloud(CloudState::Recording), Capture(&["r-1"]), Eff("SaveRecording")]),
            ("co-host", &[], Do("u-2", START_CLOUD), OK, &[CloudBy("u-2"), Cloud(CloudState::Recording)]),
            ("member", &[], Do("u-3", START_CLOUD), FORBIDDEN, &[Msg("request_cloud"), Cloud(CloudState::Idle), NoEff("SetCapture")]),
            ("not in the meeting", &[], Do("u-9", START_CLOUD), FORBIDDEN, &[Msg("u-9 is not in meeting m-42")]),
            ("admin", &[], Do("admin:ops", START_CLOUD), FORBIDDEN, &[Cloud(CloudState::Idle)]),
            ("member made co-host", &[Roster(|m| m.cohosts.push(id("u-3")))], Do("u-3", START_CLOUD), OK, &[CloudBy("u-3")]),
            ("started event audience", &[], Do("u-2", START_CLOUD), OK, &[EvTo(EventType::RecordingStarted, &["u-1", "u-2"])]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn c2_member_requests_are_merged_and_approved() {
    let approve3 = r#"{"action":"approve_cloud","requester":"u-3"}"#;
    let deny3 = r#"{"action":"deny_cloud","requester":"u-3"}"#;
    table(
        "C2",
        &[
            ("request relayed to host team", &[], Do("u-3", REQUEST), OK, &[EvTo(EventType::CloudRecordRequested, &["u-1", "u-2"]), Pending(&["u-3"])]),
            ("second requester merges silently", &[Step::Ok("u-3", REQUEST)], Do("u-4", REQUEST), OK, &[NoEv(EventType::CloudRecordRequested), Pending(&["u-3", "u-4"])]),
            ("repeated request merges", &[Step::Ok("u-3", REQUEST)], Do("u-3", REQUEST), OK, &[NoEv(EventType::CloudRecordRequested), Pending(&["u-3"])]),
            ("co-host approves", &[Step::Ok("u-3", REQUEST), Step::Ok("u-4", REQUEST)], Do("u-2", approve3), OK, &[Cloud(CloudState::Recording), CloudBy("u-2"), CloudOwner("u-1"), Pending(&[])]),
            ("member cannot approve", &[Step::Ok("u-3", REQUEST)], Do("u-4", approve3), FORBIDDEN, &[Pending(&["u-3"])]),
            ("approve without request", &[], Do("u-1", approve3), NOT_FOUND, &[Cloud(CloudState::Idle)]),
            ("deny drops that requester", &[Step::Ok("u-3", REQUEST), Step::Ok("u-4", REQUEST)], Do("u-1", deny3), OK, &[Pending(&["u-4"]), Cloud(CloudState::Idle)]),
            ("requester leaving drops out", &[Step::Ok("u-3", REQUEST)], Roster(|m| m.participants.retain(|p| p.as_str() != "u-3")), OK, &[Pending(&[])]),
            ("request while live changes nothing", &[Step::Ok("u-1", START_CLOUD)], Do("u-3", REQUEST), OK, &[Pending(&[]), NoEv(EventType::CloudRecordRequested)]),
            ("host requesting is a conflict", &[], Do("u-1", REQUEST), CONFLICT, &[Msg("start kind cloud")]),
            ("a new request after approval is relayed again", &[Step::Ok("u-3", REQUEST), Step::Ok("u-1", approve3), Step::Ok("u-1", STOP)], Do("u-4", REQUEST), OK, &[Ev(EventType::CloudRecordRequested)]),
            ("approve checks the start rules (M1)", &[Step::Ok("u-3", REQUEST), In(|| Input::MicMuted(true))], Do("u-1", approve3), CONFIRM, &[Reason("muted"), Msg("mute command"), Pending(&["u-3"])]),
            ("approve checks the start rules (X1)", &[Step::Ok("u-1", START_LOCAL), Step::Ok("u-3", REQUEST)], Do("u-1", approve3), CONFLICT, &[Pending(&["u-3"])]),
            ("direct start clears requests", &[Step::Ok("u-3", REQUEST)], Do("u-1", START_CLOUD), OK, &[Pending(&[])]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn c3_one_cloud_recording_shared_by_the_host_team() {
    table(
        "C3",
        &[
            ("start while live returns the state", &[Step::Ok("u-1", START_CLOUD)], Do("u-2", START_CLOUD), OK, &[CloudId("r-1"), CloudBy("u-1"), NoEv(EventType::RecordingStarted), NoEff("SaveRecording")]),
            ("every host and co-host views cloud", &[Step::Ok("u-2", START_CLOUD)], Do("u-3", STATUS), OK, &[Sees("u-1", View::Cloud), Sees("u-2", View::Cloud), Sees("u-3", View::None), Sees("u-4", View::None)]),
            ("co-host pauses the host's", &[Step::Ok("u-1", START_CLOUD)], Do("u-2", PAUSE), OK, &[Cloud(CloudState::Paused), Capture(&[]), EvTo(EventType::RecordingPaused, &["u-1", "u-2"])]),
            ("co-host resumes", &[Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", PAUSE)], Do("u-2", RESUME), OK, &[Cloud(CloudState::Recording), Capture(&["r-1"]), Ev(EventType::RecordingResumed)]),
            ("co-host stops", &[Step::Ok("u-1", START_CLOUD)], Do("u-2", STOP), OK, &[Cloud(CloudState::Idle), RecIs("r-1", RecordingState::Stopped), Eff("CompleteCloud"), EvReason(EventType::RecordingStopped, "command")]),
            ("start after stop is a new recording", &[Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", STOP)], Do("u-2", START_CLOUD), OK, &[CloudId("r-2")]),
            ("start while paused returns the state", &[Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", PAUSE)], Do("u-1", START_CLOUD), OK, &[Cloud(CloudState::Paused), CloudId("r-1")]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn c4_cloud_recording_belongs_to_the_creator() {
    table(
        "C4",
        &[
            ("co-host starts, creator owns", &[], Do("u-2", START_CLOUD), OK, &[CloudOwner("u-1"), CloudBy("u-2")]),
            ("creator absent from the meeting", &[Roster(|m| m.creator = id("u-9"))], Do("u-1", START_CLOUD), OK, &[CloudOwner("u-9"), EvTo(EventType::RecordingStarted, &["u-1", "u-2", "u-9"])]),
            ("ready goes to the creator", &[Roster(|m| m.creator = id("u-9")), Step::Ok("u-2", START_CLOUD), Step::Ok("u-2", STOP)], In(|| Input::CloudCompleted { recording_id: id("r-1"), location: "s3://b/r-1/manifest.json".into(), completeness: None }), OK, &[EvTo(EventType::RecordingReady, &["u-9"]), RecIs("r-1", RecordingState::Ready)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn c5_losing_the_cohost_role_does_not_stop_cloud() {
    table(
        "C5",
        &[
            ("role removed", &[Step::Ok("u-2", START_CLOUD)], Roster(|m| m.cohosts.clear()), OK, &[Cloud(CloudState::Recording), CloudBy("u-2"), NoEv(EventType::RecordingStopped), Sees("u-2", View::None), Sees("u-1", View::Cloud)]),
            ("former co-host no longer controls it", &[Step::Ok("u-2", START_CLOUD), Roster(|m| m.cohosts.clear())], Do("u-2", r#"{"action":"stop","target":"cloud"}"#), FORBIDDEN, &[Cloud(CloudState::Recording)]),
            ("the host still does", &[Step::Ok("u-2", START_CLOUD), Roster(|m| m.cohosts.clear())], Do("u-1", STOP), OK, &[RecIs("r-1", RecordingState::Stopped)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn c6_all_hosts_left() {
    table(
        "C6",
        &[
            ("host and co-host leave", &[Step::Ok("u-1", START_CLOUD)], Roster(|m| m.participants = ids(&["u-3", "u-4"])), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "all_hosts_left"), Eff("CompleteCloud"), Capture(&[]), Cloud(CloudState::Idle)]),
            ("host leaves, co-host stays", &[Step::Ok("u-1", START_CLOUD)], Roster(|m| m.participants = ids(&["u-2", "u-3"])), OK, &[Cloud(CloudState::Recording), NoEv(EventType::RecordingStopped)]),
            ("the last co-host leaves later", &[Step::Ok("u-1", START_CLOUD), Roster(|m| m.participants = ids(&["u-2", "u-3"]))], Roster(|m| m.participants = ids(&["u-3"])), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "all_hosts_left")]),
            ("the starter leaves, the host stays", &[Step::Ok("u-2", START_CLOUD)], Roster(|m| m.participants = ids(&["u-1", "u-3"])), OK, &[Cloud(CloudState::Recording)]),
            ("members' local recordings go on", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Step::Ok("u-1", START_CLOUD)], Roster(|m| m.participants = ids(&["u-3", "u-4"])), OK, &[RecIs("r-2", RecordingState::Stopped), RecIs("r-1", RecordingState::Recording), Capture(&["r-1"])]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn c7_expired_account_licence() {
    table(
        "C7",
        &[
            ("expired: start refused", &[Roster(|m| m.account.licence_expires_at = Some(Timestamp(T0 - 1)))], Do("u-1", START_CLOUD), LICENCE_EXPIRED, &[Cloud(CloudState::Unavailable), Msg("expired")]),
            ("expires exactly now", &[Roster(|m| m.account.licence_expires_at = Some(Timestamp(T0)))], Do("u-1", START_CLOUD), LICENCE_EXPIRED, &[]),
            ("expires during the meeting", &[Roster(|m| m.account.licence_expires_at = Some(Timestamp(T0 + 5_000))), Wait(6_000)], Do("u-1", START_CLOUD), LICENCE_EXPIRED, &[]),
            ("running one goes on", &[Step::Ok("u-1", START_CLOUD), Roster(|m| m.account.licence_expires_at = Some(Timestamp(T0 - 1)))], In(|| Input::Tick), OK, &[Cloud(CloudState::Recording)]),
            ("unavailable once stopped", &[Step::Ok("u-1", START_CLOUD), Roster(|m| m.account.licence_expires_at = Some(Timestamp(T0 - 1)))], Do("u-1", STOP), OK, &[Cloud(CloudState::Unavailable)]),
            ("local recording is unaffected", &[Roster(|m| m.account.licence_expires_at = Some(Timestamp(T0 - 1)))], Do("u-1", START_LOCAL), OK, &[RecIs("r-1", RecordingState::Recording)]),
            ("members' requests are refused too", &[Roster(|m| m.account.licence_expires_at = Some(Timestamp(T0 - 1)))], Do("u-3", REQUEST), LICENCE_EXPIRED, &[Pending(&[])]),
            ("no upload target", &[Poke(|e| e.config.cloud_available = false)], Do("u-1", START_CLOUD), CONFLICT, &[Msg("no upload target is configured"), Cloud(CloudState::Unavailable)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn c8_cloud_quota() {
    table(
        "C8",
        &[
            ("nothing left", &[Roster(|m| { m.account.cloud_quota_bytes = Some(Some(1_000)); m.account.cloud_used_bytes = 1_000 })], Do("u-1", START_CLOUD), QUOTA, &[Cloud(CloudState::Idle), RemainingS(Some(0))]),
            // The reference bitrate is 83 333 B/s; the headroom 4 s needs 333 332 bytes.
            ("exactly the headroom left", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(333_332)))], Do("u-1", START_CLOUD), QUOTA, &[]),
            ("more than the headroom left", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(400_000)))], Do("u-1", START_CLOUD), OK, &[Cloud(CloudState::Recording)]),
            ("stops before overrunning", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(1_000_000))), Step::Ok("u-1", START_CLOUD)], In(|| seal(600_000, 4_000, &["r-1"])), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "quota_exhausted"), Eff("CompleteCloud")]),
            ("keeps going while it fits", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(1_000_000))), Step::Ok("u-1", START_CLOUD)], In(|| seal(400_000, 4_000, &["r-1"])), OK, &[Cloud(CloudState::Recording), RemainingS(Some(6))]),
            ("usage growing in the snapshot stops it", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(10_000_000))), Step::Ok("u-1", START_CLOUD)], Roster(|m| m.account.cloud_used_bytes = 9_800_000), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "quota_exhausted")]),
            ("local bytes do not count", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(1_000_000))), Step::Ok("u-1", START_LOCAL), In(|| seal(900_000, 4_000, &["r-1"]))], Do("u-2", START_CLOUD), OK, &[Cloud(CloudState::Recording)]),
            ("remaining time at the reference bitrate", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(83_333 * 3_600)))], Do("u-1", STATUS), OK, &[RemainingS(Some(3_600))]),
            ("unlimited", &[Roster(|m| m.account.cloud_quota_bytes = Some(None))], Do("u-1", STATUS), OK, &[RemainingS(None)]),
            ("tier table when the snapshot has no quota", &[Roster(|m| m.account.tier = Some("free".into()))], Do("u-1", STATUS), OK, &[RemainingS(Some(GIB / 83_333))]),
            ("this meeting's cloud bytes count", &[Roster(|m| m.account.cloud_quota_bytes = Some(Some(2_000_000))), Step::Ok("u-1", START_CLOUD), In(|| seal(500_000, 4_000, &["r-1"])), Step::Ok("u-1", STOP)], Do("u-1", START_CLOUD), OK, &[RemainingS(Some(12))]),
        ],
    );
}

fn room(room_bytes: u64) -> Input {
    Input::Storage { room_bytes }
}

#[test]
#[rustfmt::skip]
fn d_disk_budget() {
    let approve3 = r#"{"action":"approve_cloud","requester":"u-3"}"#;
    // The reference bitrate is 83 333 B/s: a start needs 60 s = 4 999 980 bytes of room, a
    // running recording stops below 4 s = 333 332 bytes.
    table(
        "7 disk budget",
        &[
            ("nothing known, nothing refused", &[], Do("u-1", START_LOCAL), OK, &[RecordS(None)]),
            ("local start refused", &[In(|| room(4_999_979))], Do("u-1", START_LOCAL), DISK_FULL, &[Msg("room for less than 1 minute of recording"), Msg("raise storage.max_bytes"), NoEff("SaveRecording")]),
            ("cloud start refused", &[In(|| room(4_999_979))], Do("u-1", START_CLOUD), DISK_FULL, &[Cloud(CloudState::Idle)]),
            ("exactly a minute fits", &[In(|| room(4_999_980))], Do("u-1", START_CLOUD), OK, &[Cloud(CloudState::Recording)]),
            ("approval refused", &[Step::Ok("u-3", REQUEST), In(|| room(1_000))], Do("u-1", approve3), DISK_FULL, &[Pending(&["u-3"])]),
            ("request refused up front", &[In(|| room(1_000))], Do("u-3", REQUEST), DISK_FULL, &[Pending(&[])]),
            ("checked before the microphone (M1)", &[In(|| Input::MicMuted(true)), In(|| room(0))], Do("u-1", START_LOCAL), DISK_FULL, &[]),
            ("room coming back allows starts again", &[In(|| room(0)), In(|| room(10_000_000))], Do("u-1", START_LOCAL), OK, &[]),
            ("running recordings stop before the disk is exhausted", &[Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", ALLOW_U2), Step::Ok("u-2", START_LOCAL), Wait(20_000)], In(|| room(333_331)), OK, &[EvReason(EventType::RecordingStopped, "disk_full"), RecIs("r-1", RecordingState::Stopped), RecIs("r-2", RecordingState::Stopped), Eff("CompleteCloud"), NoEff("Discard"), Capture(&[])]),
            ("keeps going while the headroom fits", &[Step::Ok("u-1", START_CLOUD)], In(|| room(333_332)), OK, &[Cloud(CloudState::Recording), NoEv(EventType::RecordingStopped)]),
            ("paused recordings stop too", &[Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", PAUSE)], In(|| room(0)), OK, &[RecIs("r-1", RecordingState::Stopped)]),
            ("nothing live, nothing happens", &[], In(|| room(0)), OK, &[NoEv(EventType::RecordingStopped), RecordS(Some(0))]),
            ("kept local recording converts at meeting end", &[Step::Ok("u-1", START_LOCAL), Wait(20_000), In(|| room(0))], Roster(|m| m.state = MeetingState::Ended), OK, &[Eff("Convert"), RecIs("r-1", RecordingState::Converting)]),
            ("a sealed segment raising the bitrate stops it", &[In(|| room(5_000_000)), Step::Ok("u-1", START_LOCAL)], In(|| seal(2_000_000, 1_000, &["r-1"])), OK, &[EvReason(EventType::RecordingStopped, "disk_full")]),
            ("remaining time at the reference bitrate", &[In(|| room(83_333 * 600))], Do("u-1", STATUS), OK, &[RecordS(Some(600))]),
            ("bitrate measured from local segments too", &[In(|| room(5_000_000)), Step::Ok("u-1", START_LOCAL), In(|| seal(100_000, 1_000, &["r-1"]))], In(|| room(6_000_000)), OK, &[RecordS(Some(60)), RemainingS(Some(400 * GIB / 83_333))]),
        ],
    );
}

#[test]
fn c8_tier_quotas() {
    let cases = [
        (Some("free"), Some(GIB)),
        (Some("free_organisation"), Some(20 * GIB)),
        (Some("organisation"), Some(20 * GIB)),
        (Some("pro"), Some(100 * GIB)),
        (Some("business"), Some(400 * GIB)),
        (Some("education"), Some(400 * GIB)),
        (Some("enterprise"), None),
        (Some("education_plus"), None),
        (Some("platinum"), Some(GIB)),
        (None, Some(GIB)),
    ];
    for (tier, want) in cases {
        let account = Account {
            tier: tier.map(String::from),
            licence_expires_at: None,
            cloud_quota_bytes: None,
            cloud_used_bytes: 0,
        };
        assert_eq!(cloud::quota_bytes(&account), want, "{tier:?}");
    }
    let explicit = Account {
        tier: Some("free".into()),
        licence_expires_at: None,
        cloud_quota_bytes: Some(Some(5)),
        cloud_used_bytes: 0,
    };
    assert_eq!(
        cloud::quota_bytes(&explicit),
        Some(5),
        "the snapshot's figure wins"
    );
}

#[test]
#[rustfmt::skip]
fn l1_local_recording_policy() {
    let selected = r#"{"action":"set_local_policy","policy":"selected"}"#;
    table(
        "L1",
        &[
            ("default is host_only", &[], Do("u-3", STATUS), OK, &[Policy(LocalPolicy::HostOnly)]),
            ("host_only: host", &[], Do("u-1", START_LOCAL), OK, &[Sees("u-1", View::Local), Capture(&["r-1"])]),
            ("host_only: co-host excluded", &[], Do("u-2", START_LOCAL), FORBIDDEN, &[Sees("u-2", View::None)]),
            ("host_only: member", &[], Do("u-3", START_LOCAL), FORBIDDEN, &[]),
            ("all: member", &[Step::Ok("u-1", POLICY_ALL)], Do("u-3", START_LOCAL), OK, &[Sees("u-3", View::Local)]),
            ("selected: allowed member", &[Step::Ok("u-1", selected), Step::Ok("u-1", ALLOW_U3)], Do("u-3", START_LOCAL), OK, &[]),
            ("selected: other member", &[Step::Ok("u-1", selected), Step::Ok("u-1", ALLOW_U3)], Do("u-4", START_LOCAL), FORBIDDEN, &[]),
            ("selected: co-host not allowed", &[Step::Ok("u-1", selected)], Do("u-2", START_LOCAL), FORBIDDEN, &[]),
            ("selected: host", &[Step::Ok("u-1", selected)], Do("u-1", START_LOCAL), OK, &[]),
            ("only the host sets it", &[], Do("u-2", POLICY_ALL), FORBIDDEN, &[Policy(LocalPolicy::HostOnly)]),
            ("each owns their own", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL)], Do("u-4", START_LOCAL), OK, &[Capture(&["r-1", "r-2"]), Sees("u-3", View::Local), Sees("u-4", View::Local)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn l2_allow_and_forbid() {
    let forbid3 = r#"{"action":"forbid_local","participant":"u-3"}"#;
    let host_only = r#"{"action":"set_local_policy","policy":"host_only"}"#;
    table(
        "L2",
        &[
            ("allow under host_only switches to selected", &[], Do("u-1", ALLOW_U3), OK, &[Policy(LocalPolicy::Selected), Allowed(&["u-3"])]),
            ("only the host allows", &[], Do("u-2", ALLOW_U3), FORBIDDEN, &[Allowed(&[])]),
            ("forbid stops and keeps", &[Step::Ok("u-1", ALLOW_U3), Step::Ok("u-3", START_LOCAL), Wait(11_000)], Do("u-1", forbid3), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "forbidden"), NoEff("Discard"), Sees("u-3", View::None), Capture(&[])]),
            ("forbid under all", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Step::Ok("u-4", START_LOCAL)], Do("u-1", forbid3), OK, &[Policy(LocalPolicy::Selected), Allowed(&["u-2", "u-4"]), RecIs("r-2", RecordingState::Recording), Capture(&["r-2"])]),
            ("a stricter policy stops the others", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Wait(11_000)], Do("u-1", host_only), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "forbidden")]),
            ("losing the host role under host_only", &[Step::Ok("u-1", START_LOCAL), Wait(11_000)], Roster(|m| { m.host = id("u-2"); m.cohosts = ids(&["u-1"]) }), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "forbidden")]),
            ("the host cannot be forbidden", &[], Do("u-1", r#"{"action":"forbid_local","participant":"u-1"}"#), CONFLICT, &[]),
            ("allow then forbid", &[Step::Ok("u-1", ALLOW_U3)], Do("u-1", forbid3), OK, &[Allowed(&[]), Policy(LocalPolicy::Selected)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn l3_requests_and_leaving() {
    table(
        "L3",
        &[
            ("refused start asks the host", &[], Do("u-3", START_LOCAL), FORBIDDEN, &[EvTo(EventType::LocalRecordRequested, &["u-1"]), Msg("asked")]),
            ("co-host too", &[], Do("u-2", START_LOCAL), FORBIDDEN, &[EvTo(EventType::LocalRecordRequested, &["u-1"])]),
            ("allowing tells them", &[Step::Do("u-3", START_LOCAL)], Do("u-1", ALLOW_U3), OK, &[EvTo(EventType::LocalRecordingAllowed, &["u-3"])]),
            ("then they may", &[Step::Do("u-3", START_LOCAL), Step::Ok("u-1", ALLOW_U3)], Do("u-3", START_LOCAL), OK, &[Sees("u-3", View::Local)]),
            ("leaving stops their recording", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Wait(11_000)], Roster(|m| m.participants.retain(|p| p.as_str() != "u-3")), OK, &[RecIs("r-1", RecordingState::Stopped), EvReason(EventType::RecordingStopped, "owner_left"), Capture(&[])]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn l4_short_local_recordings_are_discarded() {
    table(
        "L4",
        &[
            ("just under 10 s", &[Step::Ok("u-1", START_LOCAL), Wait(9_999)], Do("u-1", STOP), OK, &[RecIs("r-1", RecordingState::Discarded), EvReason(EventType::RecordingDiscarded, "too_short"), EvTo(EventType::RecordingDiscarded, &["u-1"]), Eff("Discard")]),
            ("exactly 10 s", &[Step::Ok("u-1", START_LOCAL), Wait(10_000)], Do("u-1", STOP), OK, &[RecIs("r-1", RecordingState::Stopped), NoEff("Discard"), NoEv(EventType::RecordingDiscarded)]),
            ("paused time does not count", &[Step::Ok("u-1", START_LOCAL), Wait(6_000), Step::Ok("u-1", PAUSE), Wait(60_000), Step::Ok("u-1", RESUME), Wait(3_000)], Do("u-1", STOP), OK, &[RecIs("r-1", RecordingState::Discarded), RecordedMs("r-1", 9_000)]),
            ("recording time adds up across pauses", &[Step::Ok("u-1", START_LOCAL), Wait(6_000), Step::Ok("u-1", PAUSE), Wait(60_000), Step::Ok("u-1", RESUME), Wait(5_000)], Do("u-1", STOP), OK, &[RecIs("r-1", RecordingState::Stopped), RecordedMs("r-1", 11_000)]),
            ("too short at meeting end", &[Step::Ok("u-1", START_LOCAL), Wait(2_000)], Roster(|m| m.state = MeetingState::Ended), OK, &[RecIs("r-1", RecordingState::Discarded), NoEff("Convert")]),
            ("cloud is never discarded", &[Step::Ok("u-1", START_CLOUD), Wait(1_000)], Do("u-1", STOP), OK, &[RecIs("r-1", RecordingState::Stopped), NoEff("Discard")]),
        ],
    );
}

/// L5: r-1's MP4 converted, across a gap (2 s a segment, corrupt) for each of `gaps`.
fn converted(gaps: &[&[u64]]) -> Input {
    let gaps = gaps
        .iter()
        .enumerate()
        .map(|(i, seqs)| crate::protocol::RecordingGap {
            seqs: seqs.to_vec(),
            start_ms: 2_000 * i as u64,
            duration_ms: 2_000 * seqs.len() as u64,
            cause: crate::protocol::GapCause::Corrupt,
        })
        .collect();
    Input::ConversionFinished {
        recording_id: id("r-1"),
        result: Ok(Converted {
            location: "/srv/rec/r-1.mp4".into(),
            gaps,
            completeness: None,
        }),
    }
}

#[test]
#[rustfmt::skip]
fn l5_conversion_and_finalize() {
    let stop_conv = r#"{"action":"stop_conversion","recording_id":"r-1"}"#;
    let finalize = r#"{"action":"finalize","recording_id":"r-1"}"#;
    let ended: fn(&mut Meeting) = |m| m.state = MeetingState::Ended;
    table(
        "L5",
        &[
            ("meeting end converts", &[Step::Ok("u-1", START_LOCAL), Wait(11_000)], Roster(ended), OK, &[RecIs("r-1", RecordingState::Converting), Eff("Convert"), EvReason(EventType::RecordingStopped, "meeting_ended"), Capture(&[])]),
            ("stopped earlier, converted at the end", &[Step::Ok("u-1", START_LOCAL), Wait(11_000), Step::Ok("u-1", STOP)], Roster(ended), OK, &[RecIs("r-1", RecordingState::Converting), Eff("Convert")]),
            ("no conversion before the end", &[Step::Ok("u-1", START_LOCAL), Wait(11_000)], Do("u-1", STOP), OK, &[RecIs("r-1", RecordingState::Stopped), NoEff("Convert")]),
            ("conversion done", &[Step::Ok("u-1", START_LOCAL), Wait(11_000), Roster(ended)], In(|| converted(&[])), OK, &[RecIs("r-1", RecordingState::Ready), EvTo(EventType::ConversionDone, &["u-1"]), Gaps(&[])]),
            ("converted across gaps, named", &[Step::Ok("u-1", START_LOCAL), Wait(11_000), Roster(ended)], In(|| converted(&[&[2], &[4, 5]])), OK, &[RecIs("r-1", RecordingState::Ready), EvTo(EventType::ConversionDone, &["u-1"]), Gaps(&[&[2], &[4, 5]])]),
            ("conversion failed", &[Step::Ok("u-1", START_LOCAL), Wait(11_000), Roster(ended)], In(|| Input::ConversionFinished { recording_id: id("r-1"), result: Err("mux error".into()) }), OK, &[RecIs("r-1", RecordingState::NeedsFinalize), EvTo(EventType::ConversionFailed, &["u-1"])]),
            ("owner stops the conversion after the meeting", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Wait(11_000), Roster(ended)], Do("u-3", stop_conv), OK, &[RecIs("r-1", RecordingState::NeedsFinalize), Eff("StopConversion")]),
            ("someone else cannot", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Wait(11_000), Roster(ended)], Do("u-4", stop_conv), FORBIDDEN, &[RecIs("r-1", RecordingState::Converting)]),
            ("nothing to stop", &[Step::Ok("u-1", START_LOCAL), Wait(11_000), Step::Ok("u-1", STOP)], Do("u-1", stop_conv), CONFLICT, &[Msg("not converting")]),
            ("finalize after a stopped conversion", &[Step::Ok("u-1", START_LOCAL), Wait(11_000), Roster(ended), Step::Ok("u-1", stop_conv)], Do("u-1", finalize), OK, &[RecIs("r-1", RecordingState::Converting), Eff("Convert")]),
            ("finalize needs needs_finalize or failed", &[Step::Ok("u-1", START_LOCAL), Wait(11_000)], Do("u-1", finalize), CONFLICT, &[]),
            ("finalize of an unknown recording", &[], Do("u-1", r#"{"action":"finalize","recording_id":"r-404"}"#), NOT_FOUND, &[]),
            ("admin finalizes an older meeting's", &[Ctx(|| row("r-77", "m-1", RecordingKind::Local, RecordingState::NeedsFinalize))], Do("admin:ops", r#"{"action":"finalize","recording_id":"r-77"}"#), OK, &[RecIs("r-77", RecordingState::Converting), Eff("Convert")]),
            ("interrupted capture needs finalize", &[], In(|| Input::Restore(vec![row("r-50", "m-42", RecordingKind::Local, RecordingState::Recording)])), OK, &[RecIs("r-50", RecordingState::NeedsFinalize), Eff("SaveRecording")]),
            ("interrupted conversion needs finalize", &[], In(|| Input::Restore(vec![row("r-51", "m-42", RecordingKind::Local, RecordingState::Converting)])), OK, &[RecIs("r-51", RecordingState::NeedsFinalize)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn l6_pause_and_resume() {
    table(
        "L6",
        &[
            ("pause local", &[Step::Ok("u-1", START_LOCAL)], Do("u-1", PAUSE), OK, &[RecIs("r-1", RecordingState::Paused), Capture(&[]), Ev(EventType::RecordingPaused), Sees("u-1", View::Local)]),
            ("resume local", &[Step::Ok("u-1", START_LOCAL), Step::Ok("u-1", PAUSE)], Do("u-1", RESUME), OK, &[RecIs("r-1", RecordingState::Recording), Capture(&["r-1"])]),
            ("capture follows each recording", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Step::Ok("u-1", START_CLOUD)], Do("u-3", PAUSE), OK, &[Capture(&["r-2"])]),
            ("pause twice", &[Step::Ok("u-1", START_LOCAL), Step::Ok("u-1", PAUSE)], Do("u-1", PAUSE), OK, &[NoEv(EventType::RecordingPaused), NoEff("SaveRecording")]),
            ("resume while running", &[Step::Ok("u-1", START_LOCAL)], Do("u-1", RESUME), OK, &[NoEv(EventType::RecordingResumed)]),
            ("resume is not a start (D1)", &[Step::Ok("u-1", START_LOCAL), Step::Ok("u-1", PAUSE), In(|| Input::Licence(None))], Do("u-1", RESUME), OK, &[RecIs("r-1", RecordingState::Recording)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn x1_cloud_and_local_exclude_each_other_at_start() {
    table(
        "X1",
        &[
            ("recording locally, cannot start cloud", &[Step::Ok("u-1", START_LOCAL)], Do("u-1", START_CLOUD), CONFLICT, &[Msg("stop the local recording first"), Cloud(CloudState::Idle)]),
            ("started cloud, cannot start local", &[Step::Ok("u-1", START_CLOUD)], Do("u-1", START_LOCAL), CONFLICT, &[Capture(&["r-1"])]),
            ("another host team member can", &[Step::Ok("u-1", ALLOW_U2), Step::Ok("u-1", START_CLOUD)], Do("u-2", START_LOCAL), OK, &[Capture(&["r-1", "r-2"])]),
            ("after stopping cloud, local is fine", &[Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", STOP)], Do("u-1", START_LOCAL), OK, &[]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn x2_another_host_starts_cloud_while_a_cohost_records_locally() {
    table(
        "X2",
        &[
            ("co-host's local goes on, views cloud", &[Step::Ok("u-1", ALLOW_U2), Step::Ok("u-2", START_LOCAL)], Do("u-1", START_CLOUD), OK, &[Sees("u-1", View::Cloud), Sees("u-2", View::Cloud), RecIs("r-1", RecordingState::Recording), Capture(&["r-1", "r-2"])]),
            ("a member recording locally keeps local", &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL)], Do("u-1", START_CLOUD), OK, &[Sees("u-3", View::Local), Sees("u-4", View::None)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn x3_one_set_of_controls() {
    let both: &[Step] = &[Step::Ok("u-1", ALLOW_U2), Step::Ok("u-2", START_LOCAL), Wait(11_000), Step::Ok("u-1", START_CLOUD)];
    let member_and_cloud: &[Step] = &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Step::Ok("u-1", START_CLOUD)];
    table(
        "X3",
        &[
            ("co-host with local stops both", both, Do("u-2", STOP), OK, &[RecIs("r-1", RecordingState::Stopped), RecIs("r-2", RecordingState::Stopped), Capture(&[])]),
            ("host stops only cloud; co-host views local again", both, Do("u-1", STOP), OK, &[RecIs("r-2", RecordingState::Stopped), RecIs("r-1", RecordingState::Recording), Sees("u-2", View::Local), Sees("u-1", View::None)]),
            ("target local", both, Do("u-2", r#"{"action":"stop","target":"local"}"#), OK, &[RecIs("r-1", RecordingState::Stopped), RecIs("r-2", RecordingState::Recording), Sees("u-2", View::Cloud)]),
            ("target cloud", both, Do("u-2", r#"{"action":"pause","target":"cloud"}"#), OK, &[RecIs("r-2", RecordingState::Paused), RecIs("r-1", RecordingState::Recording)]),
            ("member targeting cloud", member_and_cloud, Do("u-3", r#"{"action":"stop","target":"cloud"}"#), FORBIDDEN, &[Cloud(CloudState::Recording)]),
            ("member's plain pause: own local only", member_and_cloud, Do("u-3", PAUSE), OK, &[RecIs("r-1", RecordingState::Paused), RecIs("r-2", RecordingState::Recording)]),
            ("member with nothing running", &[], Do("u-3", STOP), CONFLICT, &[Msg("nothing to stop")]),
            ("host targeting cloud with none", &[Step::Ok("u-1", START_LOCAL)], Do("u-1", r#"{"action":"stop","target":"cloud"}"#), CONFLICT, &[Msg("no cloud recording"), RecIs("r-1", RecordingState::Recording)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn m1_muted_microphone_needs_confirmation() {
    table(
        "M1",
        &[
            ("muted start", &[In(|| Input::MicMuted(true))], Do("u-1", START_CLOUD), CONFIRM, &[Reason("muted"), Msg("unmute: true"), Cloud(CloudState::Idle), NoEff("SetCapture")]),
            ("muted local start", &[In(|| Input::MicMuted(true))], Do("u-1", START_LOCAL), CONFIRM, &[Reason("muted")]),
            ("unmute then record", &[In(|| Input::MicMuted(true))], Do("u-1", r#"{"action":"start","kind":"cloud","unmute":true}"#), OK, &[EffBefore("SetMuted", "SetCapture"), Muted(false), Cloud(CloudState::Recording)]),
            ("record silently", &[In(|| Input::MicMuted(true))], Do("u-1", r#"{"action":"start","kind":"local","silent":true}"#), OK, &[NoEff("SetMuted"), Muted(true), Capture(&["r-1"])]),
            ("not muted", &[], Do("u-1", START_CLOUD), OK, &[NoEff("SetMuted")]),
            ("host mutes", &[], Do("u-1", r#"{"action":"mute","muted":true}"#), OK, &[Eff("SetMuted"), Muted(true)]),
            ("member cannot mute", &[], Do("u-3", r#"{"action":"mute","muted":true}"#), FORBIDDEN, &[Muted(false)]),
            ("admin mutes without a meeting", &[Roster(|m| m.state = MeetingState::Ended)], Do("admin:ops", r#"{"action":"mute","muted":true}"#), OK, &[Muted(true)]),
            ("muted by command, then start", &[Step::Ok("u-2", r#"{"action":"mute","muted":true}"#)], Do("u-2", START_CLOUD), CONFIRM, &[]),
        ],
    );
}

/// Settings for the W and T tables: the fixture meeting on a tier, asking for these.
fn ask(m: &mut Meeting, tier: &str, video: VideoWatermark, audio: bool, transcription: bool) {
    m.account.tier = Some(tier.into());
    m.settings.watermark.video = video;
    m.settings.watermark.audio = audio;
    m.settings.transcription = transcription;
}

use VideoWatermark::{Multi, Off as NoMark, Single};

/// The fixture meeting with a new participant, as decoded from the wire, asking for a
/// watermark with markup in its text (and transcription, on a tier that has it).
fn bad_text_snapshot() -> Input {
    let json = r#"{"version": 2, "meeting_id": "m-42", "state": "active", "creator": "u-1",
        "host": "u-1", "cohosts": ["u-2"], "participants": ["u-1", "u-2", "u-3", "u-4", "u-5"],
        "account": {"tier": "business"},
        "settings": {"watermark": {"video": "single", "text": "<i>Acme</i>"}, "transcription": true}}"#;
    Input::Meeting(MeetingSnapshot::decode(json.as_bytes()).expect("the meeting itself is good"))
}

#[test]
#[rustfmt::skip]
fn w1_single_row_watermark_on_every_tier() {
    table(
        "W1",
        &[
            ("off without settings", &[], Do("u-1", START_CLOUD), OK, &[Mark("off", ""), AudioMark(None), ShowsVideo(NoMark)]),
            ("free: single, the device id as text", &[Roster(|m| ask(m, "free", Single, false, false))], Do("u-1", START_CLOUD), OK, &[Mark("single", "roomrec"), ShowsVideo(Single), NoEv(EventType::WatermarkDowngraded)]),
            ("the meeting's text", &[Roster(|m| { ask(m, "free", Single, false, false); m.settings.watermark.text = Some("Acme Room 101".into()) })], Do("u-1", START_CLOUD), OK, &[Mark("single", "Acme Room 101")]),
            ("local recording of the host", &[Roster(|m| ask(m, "pro", Single, false, false))], Do("u-1", START_LOCAL), OK, &[Mark("single", "roomrec"), Capture(&["r-1"])]),
            ("unknown tier: still single", &[Roster(|m| ask(m, "platinum", Single, false, false))], Do("u-1", START_CLOUD), OK, &[Mark("single", "roomrec")]),
            ("the state shows it without a recording", &[], Roster(|m| ask(m, "free", Single, false, false)), OK, &[ShowsVideo(Single), NoEff("SetCapture")]),
            ("no meeting, nothing in force", &[Roster(|m| ask(m, "free", Single, false, false))], Roster(|m| m.state = MeetingState::Ended), OK, &[ShowsVideo(NoMark)]),
            ("a bad text: settings off, told, the meeting applies", &[], In(bad_text_snapshot), OK, &[EvError(EventType::SettingsRefused, ErrorCode::BadRequest, "settings.watermark.text"), EvTo(EventType::SettingsRefused, &["u-1", "u-2"]), ShowsVideo(NoMark), ShowsTranscription(false), Sees("u-5", View::None)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn w2_multi_row_watermark_from_business_up() {
    table(
        "W2",
        &[
            ("business: multi", &[Roster(|m| ask(m, "business", Multi, false, false))], Do("u-1", START_CLOUD), OK, &[Mark("multi", "roomrec"), ShowsVideo(Multi)]),
            ("education: multi", &[Roster(|m| ask(m, "education", Multi, false, false))], Do("u-1", START_CLOUD), OK, &[Mark("multi", "roomrec")]),
            ("enterprise: multi", &[Roster(|m| ask(m, "enterprise", Multi, false, false))], Do("u-1", START_CLOUD), OK, &[Mark("multi", "roomrec")]),
            ("education_plus: multi", &[Roster(|m| ask(m, "education_plus", Multi, false, false))], Do("u-1", START_CLOUD), OK, &[Mark("multi", "roomrec")]),
            ("pro: single instead", &[Roster(|m| ask(m, "pro", Multi, false, false))], Do("u-1", START_CLOUD), OK, &[Mark("single", "roomrec"), ShowsVideo(Single)]),
            ("free: single instead", &[Roster(|m| ask(m, "free", Multi, false, false))], Do("u-1", START_LOCAL), OK, &[Mark("single", "roomrec")]),
            ("the downgrade is told to the host team, reason tier", &[], Roster(|m| ask(m, "pro", Multi, false, false)), OK, &[EvReason(EventType::WatermarkDowngraded, "tier"), EvTo(EventType::WatermarkDowngraded, &["u-1", "u-2"]), ShowsVideo(Single)]),
            ("told once while it lasts", &[Roster(|m| ask(m, "pro", Multi, false, false))], Roster(|m| m.participants.push(id("u-5"))), OK, &[NoEv(EventType::WatermarkDowngraded)]),
            ("told again after an upgrade and a new downgrade", &[Roster(|m| ask(m, "pro", Multi, false, false)), Roster(|m| ask(m, "business", Multi, false, false))], Roster(|m| ask(m, "free", Multi, false, false)), OK, &[Ev(EventType::WatermarkDowngraded)]),
            ("no event on business", &[], Roster(|m| ask(m, "business", Multi, false, false)), OK, &[NoEv(EventType::WatermarkDowngraded)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn w3_audio_watermark_from_pro_up() {
    table(
        "W3",
        &[
            ("pro: the recording's id is embedded", &[Roster(|m| ask(m, "pro", NoMark, true, false))], Do("u-1", START_CLOUD), OK, &[AudioMark(Some(1)), ShowsAudio(true), Mark("off", "")]),
            ("business", &[Roster(|m| ask(m, "business", Single, true, false))], Do("u-1", START_LOCAL), OK, &[AudioMark(Some(1)), Mark("single", "roomrec")]),
            ("free: not embedded", &[Roster(|m| ask(m, "free", NoMark, true, false))], Do("u-1", START_CLOUD), OK, &[AudioMark(None), ShowsAudio(false)]),
            ("free: told, reason tier", &[], Roster(|m| ask(m, "free", NoMark, true, false)), OK, &[EvReason(EventType::AudioWatermarkUnavailable, "tier"), EvTo(EventType::AudioWatermarkUnavailable, &["u-1", "u-2"])]),
            ("not asked: nothing told", &[], Roster(|m| ask(m, "free", Single, false, false)), OK, &[NoEv(EventType::AudioWatermarkUnavailable)]),
            ("cloud and another's local: the earlier one", &[Roster(|m| { ask(m, "pro", NoMark, true, false); m.host = id("u-3") }), Step::Ok("u-3", START_LOCAL)], Do("u-2", START_CLOUD), OK, &[Capture(&["r-1", "r-2"]), AudioMark(Some(1))]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn w4_marks_cover_every_segment_and_change_at_the_next() {
    table(
        "W4",
        &[
            ("a change while recording cuts a segment with the new marks", &[Step::Ok("u-1", START_CLOUD)], Roster(|m| ask(m, "business", Multi, false, false)), OK, &[Eff("SetCapture"), Capture(&["r-1"]), Mark("multi", "roomrec")]),
            ("turned off while recording", &[Roster(|m| ask(m, "business", Multi, true, false)), Step::Ok("u-1", START_CLOUD)], Roster(|m| ask(m, "business", NoMark, false, false)), OK, &[Eff("SetCapture"), Mark("off", ""), AudioMark(None)]),
            ("an unrelated roster change cuts nothing", &[Roster(|m| ask(m, "business", Multi, false, false)), Step::Ok("u-1", START_CLOUD)], Roster(|m| m.participants.push(id("u-5"))), OK, &[NoEff("SetCapture"), Mark("multi", "roomrec")]),
            ("no capture, no cut", &[], Roster(|m| ask(m, "business", Multi, false, false)), OK, &[NoEff("SetCapture")]),
            ("a pause marks nothing", &[Roster(|m| ask(m, "business", Multi, true, false)), Step::Ok("u-1", START_CLOUD)], Do("u-1", PAUSE), OK, &[Capture(&[]), Mark("off", "")]),
            ("resuming marks again", &[Roster(|m| ask(m, "business", Multi, true, false)), Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", PAUSE)], Do("u-1", RESUME), OK, &[Capture(&["r-1"]), Mark("multi", "roomrec"), AudioMark(Some(1))]),
            ("a change while paused applies at resume", &[Roster(|m| ask(m, "business", Single, false, false)), Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", PAUSE), Roster(|m| ask(m, "business", Multi, false, false))], Do("u-1", RESUME), OK, &[Mark("multi", "roomrec")]),
            ("device lost: the capture and its marks go on", &[Roster(|m| ask(m, "business", Multi, false, false)), Step::Ok("u-1", START_CLOUD)], In(|| Input::DeviceChanged { device: "/dev/video0".into(), back: false }), OK, &[NoEff("SetCapture"), Mark("multi", "roomrec")]),
            ("device back: still marked", &[Roster(|m| ask(m, "business", Multi, false, false)), Step::Ok("u-1", START_CLOUD), In(|| Input::DeviceChanged { device: "/dev/video0".into(), back: false })], In(|| Input::DeviceChanged { device: "/dev/video0".into(), back: true }), OK, &[NoEff("SetCapture"), Mark("multi", "roomrec")]),
            ("a text change is a change", &[Roster(|m| ask(m, "free", Single, false, false)), Step::Ok("u-1", START_CLOUD)], Roster(|m| m.settings.watermark.text = Some("Room 7".into())), OK, &[Eff("SetCapture"), Mark("single", "Room 7")]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn t1_transcription_from_pro_up() {
    table(
        "T1",
        &[
            ("pro: the recording is flagged", &[Roster(|m| ask(m, "pro", NoMark, false, true))], Do("u-1", START_LOCAL), OK, &[Transcribed("r-1", true), ShowsTranscription(true)]),
            ("cloud too", &[Roster(|m| ask(m, "enterprise", NoMark, false, true))], Do("u-1", START_CLOUD), OK, &[Transcribed("r-1", true)]),
            ("not asked: not flagged", &[Roster(|m| ask(m, "pro", NoMark, false, false))], Do("u-1", START_CLOUD), OK, &[Transcribed("r-1", false)]),
            ("free: not flagged", &[Roster(|m| ask(m, "free", NoMark, false, true))], Do("u-1", START_CLOUD), OK, &[Transcribed("r-1", false), ShowsTranscription(false)]),
            ("free: told, reason tier", &[], Roster(|m| ask(m, "free", NoMark, false, true)), OK, &[EvReason(EventType::TranscriptionUnavailable, "tier"), EvTo(EventType::TranscriptionUnavailable, &["u-1", "u-2"])]),
            ("turned on while recording: flagged and saved", &[Roster(|m| ask(m, "pro", NoMark, false, false)), Step::Ok("u-1", START_CLOUD)], Roster(|m| ask(m, "pro", NoMark, false, true)), OK, &[Transcribed("r-1", true), Eff("SaveRecording"), NoEff("SetCapture")]),
            ("turned off again: the flag stays", &[Roster(|m| ask(m, "pro", NoMark, false, true)), Step::Ok("u-1", START_CLOUD)], Roster(|m| ask(m, "pro", NoMark, false, false)), OK, &[Transcribed("r-1", true), ShowsTranscription(false)]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn d1_device_licence_required() {
    table(
        "D1",
        &[
            ("none received", &[Poke(|e| e.licence = DeviceLicence::NotReceived)], Do("u-1", START_LOCAL), LICENCE_EXPIRED, &[Msg("not received"), Cloud(CloudState::Unavailable)]),
            ("withdrawn", &[In(|| Input::Licence(None))], Do("u-1", START_LOCAL), LICENCE_EXPIRED, &[Msg("no Rooms licence")]),
            ("wrong kind", &[In(|| Input::Licence(Some(Licence { kind: "meetings".into(), valid_until: Timestamp(T0 + DAY_MS) })))], Do("u-1", START_CLOUD), LICENCE_EXPIRED, &[Msg("kind \"meetings\"")]),
            ("expired", &[In(|| Input::Licence(Some(rooms_licence(T0 - DAY_MS))))], Do("u-1", START_CLOUD), LICENCE_EXPIRED, &[Msg("expired at 2026-12-31T00:00:00Z"), Cloud(CloudState::Unavailable)]),
            ("expires while running", &[Step::Ok("u-1", START_CLOUD), In(|| Input::Licence(Some(rooms_licence(T0 + 1_000)))), Wait(2_000)], In(|| Input::Tick), OK, &[Cloud(CloudState::Recording), Capture(&["r-1"])]),
            ("expired: host's local refused", &[Step::Ok("u-2", START_CLOUD), In(|| Input::Licence(Some(rooms_licence(T0 + 1_000)))), Wait(2_000)], Do("u-1", START_LOCAL), LICENCE_EXPIRED, &[]),
            ("valid", &[], Do("u-1", START_LOCAL), OK, &[]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn e1_meeting_end_stops_everything() {
    let busy: &[Step] = &[Step::Ok("u-1", POLICY_ALL), Step::Ok("u-3", START_LOCAL), Wait(11_000), Step::Ok("u-1", START_CLOUD)];
    table(
        "E1",
        &[
            ("state ended", busy, Roster(|m| m.state = MeetingState::Ended), OK, &[RecIs("r-2", RecordingState::Stopped), Eff("CompleteCloud"), RecIs("r-1", RecordingState::Converting), Eff("Convert"), EvReason(EventType::RecordingStopped, "meeting_ended"), Capture(&[]), MeetingId(Some("m-42"))]),
            ("empty snapshot", busy, In(|| Input::Meeting(MeetingSnapshot { version: None, meeting: None })), OK, &[RecIs("r-2", RecordingState::Stopped), RecIs("r-1", RecordingState::Converting), Capture(&[]), MeetingId(None)]),
            ("meeting_id null", busy, In(|| Input::Meeting(MeetingSnapshot { version: Some(9), meeting: None })), OK, &[RecIs("r-2", RecordingState::Stopped), Eff("SaveMeeting"), MeetingId(None)]),
            ("replaced by another meeting", busy, In(|| Input::Meeting(MeetingSnapshot { version: Some(9), meeting: Some(Meeting { meeting_id: id("m-43"), ..meeting() }) })), OK, &[RecIs("r-2", RecordingState::Stopped), RecIs("r-1", RecordingState::Converting), Capture(&[]), MeetingId(Some("m-43")), Policy(LocalPolicy::HostOnly)]),
            ("creator hears it is ready", &[Roster(|m| m.creator = id("u-9")), Step::Ok("u-1", START_CLOUD), Roster(|m| m.state = MeetingState::Ended)], In(|| Input::CloudCompleted { recording_id: id("r-1"), location: "s3://b/m-42/r-1/manifest.json".into(), completeness: None }), OK, &[EvTo(EventType::RecordingReady, &["u-9"]), RecIs("r-1", RecordingState::Ready)]),
            ("commands after the end", &[Roster(|m| m.state = MeetingState::Ended)], Do("u-1", START_CLOUD), NO_MEETING, &[Msg("has ended")]),
            ("commands without a meeting", &[In(|| Input::Meeting(MeetingSnapshot { version: None, meeting: None }))], Do("u-1", START_CLOUD), NO_MEETING, &[]),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn e2_share_and_delete() {
    let ready: &[Step] = &[Roster(|m| m.creator = id("u-9")), Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", STOP), In(|| Input::CloudCompleted { recording_id: id("r-1"), location: "s3://b/r-1".into(), completeness: None })];
    let share = r#"{"action":"share","recording_id":"r-1","shared":true}"#;
    let delete = r#"{"action":"delete","recording_id":"r-1"}"#;
    table(
        "E2",
        &[
            ("host shares", ready, Do("u-1", share), OK, &[Eff("Share"), EvTo(EventType::RecordingShared, &["u-1", "u-9"]), Shared("r-1", true)]),
            ("admin unshares", ready, Do("admin:ops", r#"{"action":"share","recording_id":"r-1","shared":false}"#), OK, &[Shared("r-1", false), Eff("Share")]),
            ("co-host cannot", ready, Do("u-2", share), FORBIDDEN, &[Shared("r-1", false)]),
            ("not ready yet", &[Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", STOP)], Do("u-1", share), CONFLICT, &[Msg("ready")]),
            ("local cannot be shared", &[Step::Ok("u-1", START_LOCAL), Wait(11_000), Step::Ok("u-1", STOP)], Do("u-1", share), CONFLICT, &[]),
            ("host deletes", ready, Do("u-1", delete), OK, &[RecIs("r-1", RecordingState::Deleted), Eff("Delete"), EvTo(EventType::RecordingDeleted, &["u-1", "u-9"])]),
            ("a live recording cannot be deleted", &[Step::Ok("u-1", START_CLOUD)], Do("u-1", delete), CONFLICT, &[Msg("stop it first"), Cloud(CloudState::Recording)]),
            ("older meeting's host, via the catalog", &[Ctx(|| row("r-70", "m-1", RecordingKind::Cloud, RecordingState::Ready))], Do("u-7", r#"{"action":"delete","recording_id":"r-70"}"#), OK, &[Eff("Delete")]),
            ("today's host cannot touch another meeting's", &[Ctx(|| row("r-70", "m-1", RecordingKind::Cloud, RecordingState::Ready))], Do("u-1", r#"{"action":"delete","recording_id":"r-70"}"#), FORBIDDEN, &[]),
            ("unknown recording", &[], Do("u-1", r#"{"action":"delete","recording_id":"r-404"}"#), NOT_FOUND, &[]),
            ("the current host after a host change", &[Roster(|m| { m.host = id("u-2"); m.cohosts = ids(&["u-1"]) }), Step::Ok("u-1", START_CLOUD), Step::Ok("u-1", STOP), In(|| Input::CloudCompleted { recording_id: id("r-1"), location: "s3://b/r-1".into(), completeness: None })], Do("u-2", share), OK, &[Shared("r-1", true)]),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Engine-wide decisions

fn states(out: &[Output]) -> Vec<&StateDoc> {
    out.iter()
        .filter_map(|o| match o {
            Output::State(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn stale_snapshots_leave_no_trace() {
    let mut fx = Fx::new();
    fx.command("u-1", START_CLOUD);
    let before = format!("{:?}", fx.e);
    for version in [0, 1] {
        let snap = MeetingSnapshot {
            version: Some(version),
            meeting: None,
        };
        assert!(
            fx.input(Input::Meeting(snap)).is_empty(),
            "version {version}"
        );
    }
    assert_eq!(format!("{:?}", fx.e), before);
}

#[test]
fn after_a_restart_an_older_snapshot_is_stale_and_the_same_one_applies_again() {
    let now = Now {
        wall: Timestamp(T0),
        mono_ms: 5,
    };
    let snap = |version| MeetingSnapshot {
        version: Some(version),
        meeting: None,
    };
    let mut e = Engine::new(RulesConfig::default(), 10);
    e.handle(Input::RestoreMeetingVersion(7), now);
    let before = format!("{e:?}");
    assert!(
        e.handle(Input::Meeting(snap(6)), now).is_empty(),
        "a replayed older snapshot applied"
    );
    assert_eq!(format!("{e:?}"), before);
    // The broker's retained copy of the last snapshot: the engine holds no meeting yet.
    let out = e.handle(Input::Meeting(snap(7)), now);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Effect(Effect::SaveMeeting {
                version: Some(7),
                ..
            })
        )),
        "{out:?}"
    );
    assert!(
        e.handle(Input::Meeting(snap(7)), now).is_empty(),
        "applied twice"
    );
}

#[test]
fn ticks_do_not_republish_state_but_sealed_segments_do() {
    let mut fx = Fx::new();
    fx.command("u-1", START_CLOUD);
    for _ in 0..5 {
        fx.wait(1_000);
        let out = fx.input(Input::Tick);
        assert!(states(&out).is_empty(), "a tick republished: {out:?}");
    }
    let out = fx.input(seal(400_000, 5_000, &["r-1"]));
    let docs = states(&out);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].cloud.recorded_ms, 5_000);
    assert_eq!(docs[0].cloud.bytes, 400_000);
    let (reply, _) = fx.command("u-3", STATUS);
    assert_eq!(reply.state.map(|s| s.cloud.recorded_ms), Some(5_000));
}

#[test]
fn status_and_admin_commands() {
    let mut fx = Fx::new();
    let (reply, out) = fx.command("u-9", STATUS);
    assert!(reply.ok, "status is answered for anyone");
    assert!(states(&out).is_empty(), "nothing changed");
    let listing = vec![row(
        "r-5",
        "m-1",
        RecordingKind::Local,
        RecordingState::Ready,
    )];
    fx.ctx.listing = listing.clone();
    let (reply, _) = fx.command("admin:ops", r#"{"action":"list_recordings"}"#);
    assert_eq!(reply.recordings, Some(listing));
    let (reply, _) = fx.command("u-1", r#"{"action":"list_recordings"}"#);
    assert_eq!(reply.error.map(|e| e.code), Some(ErrorCode::Forbidden));
}

/// `preview`: admins only; while something is recorded or no meeting is on, never of a
/// meeting that is on and not recorded.
#[test]
fn preview_is_for_admins_and_never_of_an_unrecorded_meeting() {
    const PREVIEW: &str = r#"{"action":"preview"}"#;
    let takes = |out: &[Output]| {
        out.iter()
            .filter(|o| matches!(o, Output::Effect(Effect::TakePreview)))
            .count()
    };
    let mut fx = Fx::new();
    let (reply, out) = fx.command("admin:ops", PREVIEW);
    let error = reply.error.expect("refused during an unrecorded meeting");
    assert_eq!(error.code, ErrorCode::Forbidden);
    assert!(error.message.contains("nothing records it"), "{error:?}");
    assert_eq!(takes(&out), 0);
    let (reply, out) = fx.command("u-1", PREVIEW);
    assert_eq!(reply.error.map(|e| e.code), Some(ErrorCode::Forbidden));
    assert_eq!(takes(&out), 0, "a participant gets no picture");

    fx.command("u-1", START_LOCAL);
    let (reply, out) = fx.command("admin:ops", PREVIEW);
    assert!(reply.ok, "while recording: {reply:?}");
    assert_eq!(takes(&out), 1);

    fx.roster(|m| m.state = MeetingState::Ended);
    assert!(fx.capture.is_empty(), "the meeting's end stops capture");
    let (reply, out) = fx.command("admin:ops", PREVIEW);
    assert!(reply.ok, "no meeting on: {reply:?}");
    assert_eq!(takes(&out), 1);
}

#[test]
fn restore_resumes_cloud_in_the_same_active_meeting() {
    let mut e = Engine::new(RulesConfig::default(), 10);
    let now = Now {
        wall: Timestamp(T0),
        mono_ms: 5,
    };
    let live = RecordingInfo {
        owner: id("u-1"),
        host: id("u-1"),
        ..row(
            "r-3",
            "m-42",
            RecordingKind::Cloud,
            RecordingState::Recording,
        )
    };
    e.handle(Input::Restore(vec![live]), now);
    e.handle(Input::Licence(Some(rooms_licence(T0 + DAY_MS))), now);
    let out = e.handle(
        Input::Meeting(MeetingSnapshot {
            version: Some(3),
            meeting: Some(meeting()),
        }),
        now,
    );
    assert!(events(&out).next().is_none(), "{out:?}");
    let doc = e.state(now);
    assert_eq!(doc.cloud.state, CloudState::Paused);
    assert_eq!(doc.cloud.recorded_ms, 60_000);
    let out = e.handle(
        Input::Command(cmd("u-2", RESUME, 1), Default::default()),
        now,
    );
    assert!(out.contains(&Output::Effect(Effect::SetCapture {
        recordings: ids(&["r-3"]),
        marks: Marks::default(),
    })));
    let out = e.handle(
        Input::Command(cmd("u-1", START_LOCAL, 2), Default::default()),
        now,
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::Effect(Effect::SaveRecording(r)) if r.recording_id.as_str() == "r-10")),
        "new ids continue from next_recording"
    );
}

#[test]
fn restore_completes_cloud_of_a_meeting_that_did_not_come_back() {
    let mut e = Engine::new(RulesConfig::default(), 10);
    let now = Now {
        wall: Timestamp(T0),
        mono_ms: 5,
    };
    let rows = vec![
        row(
            "r-3",
            "m-41",
            RecordingKind::Cloud,
            RecordingState::Recording,
        ),
        row("r-4", "m-41", RecordingKind::Local, RecordingState::Stopped),
        row("r-5", "m-40", RecordingKind::Cloud, RecordingState::Stopped),
    ];
    let out = e.handle(Input::Restore(rows), now);
    assert!(out.contains(&Output::Effect(Effect::CompleteCloud {
        recording_id: id("r-5")
    })));
    let out = e.handle(
        Input::Meeting(MeetingSnapshot {
            version: Some(1),
            meeting: Some(meeting()),
        }),
        now,
    );
    assert!(out.contains(&Output::Effect(Effect::CompleteCloud {
        recording_id: id("r-3")
    })));
    assert!(out.contains(&Output::Effect(Effect::Convert {
        recording_id: id("r-4")
    })));
    assert!(events(&out)
        .any(|e| e.kind == EventType::RecordingStopped
            && e.reason.as_deref() == Some("meeting_ended")));
    assert_eq!(e.state(now).cloud.recording_id, None);
}

#[test]
fn shutdown_stops_capture_and_keeps_rows_resumable() {
    let mut fx = Fx::new();
    fx.command("u-1", START_CLOUD);
    fx.wait(7_000);
    let out = fx.input(Input::Shutdown);
    assert_eq!(
        out.first(),
        Some(&Output::Effect(Effect::SetCapture {
            recordings: vec![],
            marks: Marks::default()
        }))
    );
    let saved: Vec<&RecordingInfo> = out
        .iter()
        .filter_map(|o| match o {
            Output::Effect(Effect::SaveRecording(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].state, RecordingState::Recording);
    assert_eq!(saved[0].recorded_ms, 7_000);
}

#[test]
fn media_failures_and_full_disks_stop_everything() {
    for (input, reason) in [
        (Input::DiskFull, "disk_full"),
        (
            Input::MediaFailed {
                reason: MediaFailure::DeviceLost,
                message: "camera gone".into(),
            },
            "device_lost",
        ),
    ] {
        let mut fx = Fx::new();
        fx.command("u-1", START_CLOUD);
        fx.command("u-1", ALLOW_U2);
        fx.command("u-2", START_LOCAL);
        let out = fx.input(input);
        let stopped = events(&out)
            .filter(|e| {
                e.kind == EventType::RecordingStopped && e.reason.as_deref() == Some(reason)
            })
            .count();
        assert_eq!(stopped, 2, "{reason}: {out:?}");
        assert!(fx.capture.is_empty());
    }
}
