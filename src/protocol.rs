//! The MQTT wire contract (`docs/api.md`, v1) as Rust types.
//!
//! Owns: payload shapes, decoding with precise `bad_request` messages (a payload holding a
//! key twice, at any depth, is refused: `strict_json`), id validation and RFC 3339
//! timestamps. Must not touch: I/O, the recording rules; the clock only through
//! `Timestamp::now`, which adapters call and the rules never do. Every type here is
//! shared by `rules`, `control`, `catalog` and `roomrecctl`, so the contract lives in one place.

mod settings;
mod strict_json;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use settings::{
    check_watermark_text, Settings, VideoWatermark, WatermarkSettings, MAX_WATERMARK_TEXT_CHARS,
};

/// The largest payload the device reads; anything bigger is refused before parsing.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Ids are short printable tokens; the limit keeps them safe in topics, file names and logs.
pub const MAX_ID_LEN: usize = 128;
/// The largest meeting snapshot `version` accepted (2^63 - 1, what the catalog can store).
pub const MAX_VERSION: u64 = i64::MAX as u64;

// ---------------------------------------------------------------------------------------------
// Ids and time

/// A validated identifier (participant, meeting, recording, command).
///
/// Allowed: ASCII letters, digits and `- _ . : @ +`, 1–128 characters, not `.` or `..`.
/// No `/`, `\`, whitespace or control characters, so an id can never name a path outside the
/// storage folder nor break a log line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    pub fn parse(s: &str) -> Result<Id, String> {
        if s.is_empty() || s.len() > MAX_ID_LEN {
            return Err(format!("must be 1 to {MAX_ID_LEN} characters long"));
        }
        if s == "." || s == ".." {
            return Err("must not be '.' or '..'".into());
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:@+".contains(c);
        if let Some(bad) = s.chars().find(|c| !ok(*c)) {
            return Err(format!(
                "contains {bad:?}; only letters, digits and - _ . : @ + are allowed"
            ));
        }
        Ok(Id(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let s = String::deserialize(d)?;
        Id::parse(&s).map_err(|e| serde::de::Error::custom(format!("id {s:?} {e}")))
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, written as RFC 3339 on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock now: for names, timestamps and licence checks, never for durations.
    pub fn now() -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// Parses an RFC 3339 time. Refused: one whose UTC time falls outside the years 0000–9999
    /// (an offset can push `9999-12-31T23:59:59-23:59` past them), since it could not be
    /// written back as RFC 3339 and would be saved as 1970.
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|_| format!("{s:?} is not an RFC 3339 time like 2027-01-01T00:00:00Z"))?;
        let ts = Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64);
        match ts.format() {
            Some(_) => Ok(ts),
            None => Err(format!(
                "{s:?} is outside the years 0000 to 9999 in UTC; use a time like 2027-01-01T00:00:00Z"
            )),
        }
    }

    pub fn to_rfc3339(self) -> String {
        self.format()
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
    }

    fn format(self) -> Option<String> {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Enumerations shared by the whole crate

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingKind {
    Cloud,
    Local,
}

impl RecordingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Cloud => "cloud",
            RecordingKind::Local => "local",
        }
    }
}

/// The life of one recording, as stored in the catalog and shown in `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Capturing now.
    Recording,
    /// Held; paused time is absent from the output (L6).
    Paused,
    /// Capture finished; waiting for the meeting end (local) or for upload (cloud).
    Stopped,
    /// Being turned into one MP4 (L5).
    Converting,
    /// Capture or conversion was interrupted; completed later by `finalize` (L5).
    NeedsFinalize,
    /// Done: the MP4 is written (local) or the manifest is uploaded (cloud).
    Ready,
    /// Shorter than the 10-second minimum and dropped (L4).
    Discarded,
    /// Reserved in contract v1 for a conversion or upload failed for good (segments kept);
    /// the device sets no recording to it today: a failed conversion is `needs_finalize`.
    Failed,
    /// Deleted by the host (E2).
    Deleted,
}

impl RecordingState {
    pub const ALL: [RecordingState; 9] = [
        RecordingState::Recording,
        RecordingState::Paused,
        RecordingState::Stopped,
        RecordingState::Converting,
        RecordingState::NeedsFinalize,
        RecordingState::Ready,
        RecordingState::Discarded,
        RecordingState::Failed,
        RecordingState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Paused => "paused",
            RecordingState::Stopped => "stopped",
            RecordingState::Converting => "converting",
            RecordingState::NeedsFinalize => "needs_finalize",
            RecordingState::Ready => "ready",
            RecordingState::Discarded => "discarded",
            RecordingState::Failed => "failed",
            RecordingState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<RecordingState> {
        RecordingState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Running means media is being captured for it or could resume (recording or paused).
    pub fn is_live(self) -> bool {
        matches!(self, RecordingState::Recording | RecordingState::Paused)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalPolicy {
    #[default]
    HostOnly,
    All,
    Selected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudState {
    Idle,
    Recording,
    Paused,
    Unavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    Cloud,
    Local,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Command,
    AllHostsLeft,
    QuotaExhausted,
    MeetingEnded,
    Forbidden,
    DiskFull,
    DeviceLost,
    /// The daemon is shutting down (SIGTERM); the recording becomes resumable.
    Shutdown,
    /// The owner of a local recording left the meeting (L3).
    OwnerLeft,
}

impl StopReason {
    /// The wire name, as in an event's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Command => "command",
            StopReason::AllHostsLeft => "all_hosts_left",
            StopReason::QuotaExhausted => "quota_exhausted",
            StopReason::MeetingEnded => "meeting_ended",
            StopReason::Forbidden => "forbidden",
            StopReason::DiskFull => "disk_full",
            StopReason::DeviceLost => "device_lost",
            StopReason::Shutdown => "shutdown",
            StopReason::OwnerLeft => "owner_left",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Forbidden,
    Conflict,
    NoMeeting,
    LicenceExpired,
    QuotaExhausted,
    NeedsConfirmation,
    NotFound,
    DiskFull,
    DeviceUnavailable,
    Internal,
}

// ---------------------------------------------------------------------------------------------
// To the device: meeting snapshot and licence

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingState {
    Active,
    Ended,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub licence_expires_at: Option<Timestamp>,
    /// Absent: taken from the tier table (C8); `null`: unlimited; a number: that many bytes.
    /// Left out when absent, so a saved snapshot reads back as absent rather than unlimited.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_quota_bytes: Option<Option<u64>>,
    #[serde(default)]
    pub cloud_used_bytes: u64,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// One meeting as a whole snapshot (never a diff).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    pub meeting_id: Id,
    pub state: MeetingState,
    pub creator: Id,
    pub host: Id,
    #[serde(default)]
    pub cohosts: Vec<Id>,
    #[serde(default)]
    pub participants: Vec<Id>,
    #[serde(default)]
    pub sharing: bool,
    pub account: Account,
    /// W1–W4, T1: what the meeting asks for; absent means all off. Left out when off, so a
    /// saved meeting without settings reads back the same.
    #[serde(default, skip_serializing_if = "Settings::is_off")]
    pub settings: Settings,
}

/// What arrived on `<p>/meeting`: a versioned snapshot of a meeting, or of "no meeting".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingSnapshot {
    /// `None` only for an empty retained message, which always applies.
    pub version: Option<u64>,
    pub meeting: Option<Meeting>,
}

impl MeetingSnapshot {
    /// Decodes a `<p>/meeting` payload. An empty payload or `"meeting_id": null` is "no meeting".
    pub fn decode(payload: &[u8]) -> Result<MeetingSnapshot, String> {
        if payload.is_empty() {
            return Ok(MeetingSnapshot {
                version: None,
                meeting: None,
            });
        }
        let obj = parse_object(payload)?;
        // The catalog keeps versions as SQLite integers (signed 64-bit): a larger one would
        // be applied but never saved, and would make every later snapshot look stale.
        let version = match obj.get("version") {
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= MAX_VERSION) => n.as_u64(),
            Some(_) => {
                return Err(format!(
                    "field 'version' must be an integer from 0 to {MAX_VERSION}"
                ))
            }
            None => return Err("field 'version' is missing; snapshots must carry one".into()),
        };
        if matches!(obj.get("meeting_id"), None | Some(Value::Null)) {
            return Ok(MeetingSnapshot {
                version,
                meeting: None,
            });
        }
        check_snapshot_ids(&obj)?;
        let mut obj = obj;
        // Read on their own: a bad `settings` turns them off, never the meeting (W1–W4, T1).
        let settings = Settings::read(obj.remove("settings"));
        let mut meeting: Meeting = serde_json::from_value(Value::Object(obj))
            .map_err(|e| format!("meeting snapshot: {e}"))?;
        meeting.settings = settings;
        Ok(MeetingSnapshot {
            version,
            meeting: Some(meeting),
        })
    }
}

/// Names the field of a bad id in a snapshot (serde's own message would only give a column).
fn check_snapshot_ids(obj: &Map<String, Value>) -> Result<(), String> {
    for key in ["meeting_id", "creator", "host"] {
        if let Some(Value::String(s)) = obj.get(key) {
            Id::parse(s).map_err(|e| format!("field '{key}' {e}"))?;
        }
    }
    for key in ["cohosts", "participants"] {
        if let Some(Value::Array(items)) = obj.get(key) {
            for (i, item) in items.iter().enumerate() {
                if let Value::String(s) = item {
                    Id::parse(s).map_err(|e| format!("field '{key}' item {i} {e}"))?;
                }
            }
        }
    }
    Ok(())
}

/// The device's Rooms licence from `<p>/licence` (D1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    pub kind: String,
    pub valid_until: Timestamp,
}

impl Licence {
    pub fn decode(payload: &[u8]) -> Result<Option<Licence>, String> {
        if payload.is_empty() {
            return Ok(None);
        }
        let obj = parse_object(payload)?;
        serde_json::from_value(Value::Object(obj))
            .map(Some)
            .map_err(|e| format!("licence: {e}"))
    }

    pub fn is_valid_rooms(&self, now: Timestamp) -> bool {
        self.kind == "rooms" && now < self.valid_until
    }
}

// ---------------------------------------------------------------------------------------------
// To the device: commands

/// Who a command is issued for: a meeting participant, or an administrator (`admin:<name>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    Participant(Id),
    Admin(String),
}

impl Actor {
    pub fn participant(&self) -> Option<&Id> {
        match self {
            Actor::Participant(id) => Some(id),
            Actor::Admin(_) => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Participant(id) => write!(f, "{id}"),
            Actor::Admin(name) => write!(f, "admin:{name}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Start {
        kind: RecordingKind,
        silent: bool,
        unmute: bool,
    },
    Pause {
        target: Option<RecordingKind>,
    },
    Resume {
        target: Option<RecordingKind>,
    },
    Stop {
        target: Option<RecordingKind>,
    },
    RequestCloud,
    ApproveCloud {
        requester: Id,
    },
    DenyCloud {
        requester: Id,
    },
    SetLocalPolicy {
        policy: LocalPolicy,
    },
    AllowLocal {
        participant: Id,
    },
    ForbidLocal {
        participant: Id,
    },
    StopConversion {
        recording_id: Id,
    },
    Finalize {
        recording_id: Id,
    },
    Share {
        recording_id: Id,
        shared: bool,
    },
    Delete {
        recording_id: Id,
    },
    Mute {
        muted: bool,
    },
    Status,
    ListRecordings {
        state: Option<RecordingState>,
    },
    /// Admins: a confidence picture on `<p>/preview` now (when idle: of the camera).
    Preview,
}

pub const ACTIONS: [&str; 18] = [
    "start",
    "pause",
    "resume",
    "stop",
    "request_cloud",
    "approve_cloud",
    "deny_cloud",
    "set_local_policy",
    "allow_local",
    "forbid_local",
    "stop_conversion",
    "finalize",
    "share",
    "delete",
    "mute",
    "status",
    "list_recordings",
    "preview",
];

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start { .. } => "start",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::Stop { .. } => "stop",
            Action::RequestCloud => "request_cloud",
            Action::ApproveCloud { .. } => "approve_cloud",
            Action::DenyCloud { .. } => "deny_cloud",
            Action::SetLocalPolicy { .. } => "set_local_policy",
            Action::AllowLocal { .. } => "allow_local",
            Action::ForbidLocal { .. } => "forbid_local",
            Action::StopConversion { .. } => "stop_conversion",
            Action::Finalize { .. } => "finalize",
            Action::Share { .. } => "share",
            Action::Delete { .. } => "delete",
            Action::Mute { .. } => "mute",
            Action::Status => "status",
            Action::ListRecordings { .. } => "list_recordings",
            Action::Preview => "preview",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub id: Id,
    pub actor: Actor,
    pub action: Action,
}

/// A command that could not be decoded: answered `bad_request` with this message.
/// `id` is kept when it could be read, so the sender can match the reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub id: Option<String>,
    pub message: String,
}

impl Command {
    pub fn decode(payload: &[u8]) -> Result<Command, DecodeError> {
        let fail = |id: Option<String>, message: String| DecodeError { id, message };
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(fail(
                None,
                format!(
                    "the command is {} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes",
                    payload.len()
                ),
            ));
        }
        let parsed = strict_json::parse_object(payload).map_err(|m| fail(None, m))?;
        let obj = parsed.map;
        if let Some(path) = parsed.repeated {
            // The id still answers the sender, unless it is the repeated key.
            let id = match obj.get("id") {
                Some(Value::String(s)) if path != "id" && Id::parse(s).is_ok() => Some(s.clone()),
                _ => None,
            };
            return Err(fail(id, strict_json::repeated_message(&path)));
        }
        let raw_id = match obj.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(fail(None, "field 'id' must be a string".into())),
            None => {
                return Err(fail(
                    None,
                    "field 'id' is missing; every command needs an id chosen by the sender".into(),
                ))
            }
        };
        let id = Id::parse(&raw_id).map_err(|e| fail(None, format!("field 'id' {e}")))?;
        let f = Fields {
            obj: &obj,
            id: &raw_id,
        };
        let actor = f.actor()?;
        let action = f.action()?;
        Ok(Command { id, actor, action })
    }
}

/// Typed access to a command's fields, each failure naming the field and what it must be.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    id: &'a str,
}

impl Fields<'_> {
    fn err(&self, message: String) -> DecodeError {
        DecodeError {
            id: Some(self.id.to_owned()),
            message,
        }
    }

    fn string(&self, key: &str) -> Result<&str, DecodeError> {
        match self.obj.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(self.err(format!("field '{key}' must be a string"))),
            None => Err(self.err(format!("field '{key}' is missing"))),
        }
    }

    fn opt_string(&self, key: &str) -> Result<Option<&str>, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    fn id_field(&self, key: &str) -> Result<Id, DecodeError> {
        let s = self.string(key)?;
        Id::parse(s).map_err(|e| self.err(format!("field '{key}' {e}")))
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.err(format!("field '{key}' must be true or false"))),
        }
    }

    fn kind(&self, key: &str) -> Result<Option<RecordingKind>, DecodeError> {
        match self.opt_string(key)? {
            None => Ok(None),
            Some("cloud") => Ok(Some(RecordingKind::Cloud)),
            Some("local") => Ok(Some(RecordingKind::Local)),
            Some(other) => Err(self.err(format!(
                "field '{key}' is {other:?}; it must be \"cloud\" or \"local\""
            ))),
        }
    }

    fn actor(&self) -> Result<Actor, DecodeError> {
        let raw = self.string("actor")?;
        if let Some(name) = raw.strip_prefix("admin:") {
            return Id::parse(name)
                .map(|_| Actor::Admin(name.to_owned()))
                .map_err(|e| self.err(format!("field 'actor': the admin name {e}")));
        }
        Id::parse(raw)
            .map(Actor::Participant)
            .map_err(|e| self.err(format!("field 'actor' {e}")))
    }

    fn action(&self) -> Result<Action, DecodeError> {
        let name = self.string("action")?;
        let action = match name {
            "start" => Action::Start {
                kind: self.kind("kind")?.ok_or_else(|| {
                    self.err("field 'kind' is missing; start needs \"cloud\" or \"local\"".into())
                })?,
                silent: self.boolean("silent")?.unwrap_or(false),
                unmute: self.boolean("unmute")?.unwrap_or(false),
            },
            "pause" => Action::Pause {
                target: self.kind("target")?,
            },
            "resume" => Action::Resume {
                target: self.kind("target")?,
            },
            "stop" => Action::Stop {
                target: self.kind("target")?,
            },
            "request_cloud" => Action::RequestCloud,
            "approve_cloud" => Action::ApproveCloud {
                requester: self.id_field("requester")?,
            },
            "deny_cloud" => Action::DenyCloud {
                requester: self.id_field("requester")?,
            },
            "set_local_policy" => Action::SetLocalPolicy {
                policy: match self.string("policy")? {
                    "host_only" => LocalPolicy::HostOnly,
                    "all" => LocalPolicy::All,
                    "selected" => LocalPolicy::Selected,
                    other => {
                        return Err(self.err(format!(
                        "field 'policy' is {other:?}; it must be \"host_only\", \"all\" or \"selected\""
                    )))
                    }
                },
            },
            "allow_local" => Action::AllowLocal {
                participant: self.id_field("participant")?,
            },
            "forbid_local" => Action::ForbidLocal {
                participant: self.id_field("participant")?,
            },
            "stop_conversion" => Action::StopConversion {
                recording_id: self.id_field("recording_id")?,
            },
            "finalize" => Action::Finalize {
                recording_id: self.id_field("recording_id")?,
            },
            "share" => Action::Share {
                recording_id: self.id_field("recording_id")?,
                shared: self.boolean("shared")?.ok_or_else(|| {
                    self.err("field 'shared' is missing; it must be true or false".into())
                })?,
            },
            "delete" => Action::Delete {
                recording_id: self.id_field("recording_id")?,
            },
            "mute" => Action::Mute {
                muted: self.boolean("muted")?.ok_or_else(|| {
                    self.err("field 'muted' is missing; it must be true or false".into())
                })?,
            },
            "status" => Action::Status,
            "preview" => Action::Preview,
            "list_recordings" => Action::ListRecordings {
                state: match self.opt_string("state")? {
                    None => None,
                    Some(s) => Some(RecordingState::parse(s).ok_or_else(|| {
                        self.err(format!("field 'state' is {s:?}; it must be a recording state such as \"ready\" or \"needs_finalize\""))
                    })?),
                },
            },
            other => {
                return Err(self.err(format!(
                    "unknown action {other:?}; expected one of: {}",
                    ACTIONS.join(", ")
                )))
            }
        };
        Ok(action)
    }
}

/// A payload's object, refused when it holds a key twice anywhere (see `strict_json`).
/// Reads a snapshot or licence payload: at most [`MAX_PAYLOAD_BYTES`], as every payload the
/// device reads (the MQTT client alone would take 4 MiB), one JSON object, no key twice.
fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, String> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "the payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes",
            payload.len()
        ));
    }
    let obj = strict_json::parse_object(payload)?;
    match obj.repeated {
        Some(path) => Err(strict_json::repeated_message(&path)),
        None => Ok(obj.map),
    }
}

// ---------------------------------------------------------------------------------------------
// From the device: replies, state, events, status

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Set with `needs_confirmation` (for example `muted`, M1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            reason: None,
        }
    }
}

/// One recording as the catalog keeps it and `list_recordings` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub recording_id: Id,
    pub meeting_id: Id,
    pub kind: RecordingKind,
    /// The meeting creator for cloud (C4), the starter for local.
    pub owner: Id,
    pub started_by: Id,
    /// The host of its meeting when it was last seen; may share and delete it (E2).
    pub host: Id,
    pub state: RecordingState,
    pub created_at: Timestamp,
    pub recorded_ms: u64,
    pub bytes: u64,
    #[serde(default)]
    pub shared: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// T1: transcription was in force while it was captured; a transcript is to be made.
    #[serde(default)]
    pub transcription: bool,
}

/// The answer to one command, on `<p>/reply`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// `None` only when the command's id itself could not be read.
    pub id: Option<String>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recordings: Option<Vec<RecordingInfo>>,
}

impl Reply {
    pub fn ok(id: &Id, state: StateDoc) -> Reply {
        Reply {
            id: Some(id.to_string()),
            ok: true,
            state: Some(state),
            error: None,
            recordings: None,
        }
    }

    pub fn err(id: Option<String>, error: ErrorBody) -> Reply {
        Reply {
            id,
            ok: false,
            state: None,
            error: Some(error),
            recordings: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudDoc {
    pub state: CloudState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<Id>,
    pub started_by: Option<Id>,
    pub owner: Option<Id>,
    pub recorded_ms: u64,
    pub bytes: u64,
    /// Estimated recording time left under the quota; `None` when unlimited (C8).
    pub remaining_s: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalDoc {
    pub recording_id: Id,
    pub owner: Id,
    pub state: RecordingState,
    pub recorded_ms: u64,
}

/// The whole recording state, retained on `<p>/state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    pub meeting_id: Option<Id>,
    pub meeting_version: Option<u64>,
    pub cloud: CloudDoc,
    pub local: Vec<LocalDoc>,
    pub local_policy: LocalPolicy,
    pub local_allowed: Vec<Id>,
    pub pending_cloud_requests: Vec<Id>,
    pub muted: bool,
    pub views: BTreeMap<Id, View>,
    /// W1–W4, T1: the watermark and transcription in force for the meeting (the tier's
    /// answer to its settings); all off without an active meeting.
    #[serde(default)]
    pub in_force: InForce,
}

/// What the tier lets a meeting's settings do (W1–W3, T1), as the state shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    /// `text` is the text burned in (the device id when the meeting gives none); absent when
    /// `video` is `off`.
    pub watermark: WatermarkSettings,
    pub transcription: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    CloudRecordRequested,
    LocalRecordRequested,
    LocalRecordingAllowed,
    RecordingStarted,
    RecordingPaused,
    RecordingResumed,
    RecordingStopped,
    RecordingDiscarded,
    ConversionDone,
    ConversionFailed,
    RecordingReady,
    RecordingShared,
    RecordingDeleted,
    DeviceLost,
    DeviceBack,
    /// W2: `multi` asked on a tier below business; a single row is recorded (reason `tier`).
    WatermarkDowngraded,
    /// W3: the audio watermark asked on a tier below pro; none is embedded (reason `tier`).
    AudioWatermarkUnavailable,
    /// T1: transcription asked on a tier below pro; no transcript is made (reason `tier`).
    TranscriptionUnavailable,
    /// The snapshot's `settings` could not be used (`error`: `bad_request` naming the
    /// field); they are off and the rest of the meeting applies.
    SettingsRefused,
    /// A health alarm was raised (`alarm`); it is listed in `status` until cleared.
    AlarmRaised,
    /// A health alarm's condition ended (`alarm`, as it was raised).
    AlarmCleared,
}

/// One notice on `<p>/events`. Fields beyond `type`, `at` and `to` are set as the type needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub at: Timestamp,
    pub to: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_kind: Option<RecordingKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_ms: Option<u64>,
    /// `settings_refused`: why, as a reply's error would say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// `conversion_done`: the stretches of the recording whose segment files were missing or
    /// unreadable, in recording order (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gaps: Option<Vec<RecordingGap>>,
    /// `alarm_raised`, `alarm_cleared`: the alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<Alarm>,
    /// `conversion_done`, `recording_ready`: how complete the recording is (the full report
    /// is beside the MP4 or in the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completeness: Option<CompletenessSummary>,
}

/// A stretch of a local recording its MP4 does not show: segment files that were missing or
/// unreadable at conversion. The MP4 keeps real time across it (see `docs/media.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingGap {
    /// The segments it stands for (consecutive, one cause).
    pub seqs: Vec<u64>,
    /// Where it starts on the MP4's timeline (ms from its start); a gap before the first
    /// segment the MP4 holds starts at 0, one after the last at the MP4's end.
    pub start_ms: u64,
    /// How long it lasts (ms).
    pub duration_ms: u64,
    pub cause: GapCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// The segment's file is not there.
    Missing,
    /// The file is there but holds no readable MPEG-TS with timestamps (or cannot be read or
    /// decrypted).
    Corrupt,
}

/// A capture device by what it is for, as media reports a lost or returned one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRole {
    Camera,
    Microphone,
    /// The shared-content input (HDMI capture): its loss is no gap of the recording, whose
    /// picture is then the camera's.
    Content,
}

/// Why a stretch of a recording's meeting time is missing from it, or from its picture or
/// sound (`docs/media.md`, "Completeness report").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageCause {
    /// Paused by a command (L6).
    Paused,
    /// Recorded with a "no signal" picture: the camera was lost.
    CameraLost,
    /// Recorded with silence: the microphone was lost.
    MicrophoneLost,
    /// The disk filled up: the recording stopped and lost what was not yet sealed.
    DiskFull,
    /// The cloud quota ran out (C8): the recording stopped and lost what was not yet sealed.
    Quota,
    /// The service stopped while recording (crash, power loss, restart) until it recorded
    /// again, or until it was back, for a recording that could not go on.
    Crash,
    /// The capture pipeline failed (the stop reason `device_lost`).
    CaptureFailed,
    /// A segment file is not there.
    Missing,
    /// A segment file is there but unreadable.
    Corrupt,
    /// No segment covers it and nothing recorded says why.
    Unexplained,
}

/// One stretch of meeting time the recording misses (or shows without picture or sound).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageGap {
    /// Where it starts, in ms of meeting time from the recording's start (paused time
    /// included, unlike an MP4's timeline).
    pub start_ms: u64,
    pub duration_ms: u64,
    pub cause: CoverageCause,
    /// `missing`, `corrupt`: the segments it stands for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seqs: Vec<u64>,
}

/// How many gaps of one cause, and how long together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapTotal {
    pub count: u64,
    pub total_ms: u64,
}

/// The figures of a completeness report, as `conversion_done` and `recording_ready` carry them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletenessSummary {
    /// Media the recording holds (its usable segments), ms.
    pub recorded_ms: u64,
    /// Meeting time from its first recorded moment to its stop, ms.
    pub covered_ms: u64,
    /// Gaps by cause (causes without a gap are absent).
    pub gap_totals: BTreeMap<CoverageCause, GapTotal>,
    /// Recorded time whose sound was below -60 dBFS RMS, ms.
    pub silent_ms: u64,
    /// `silent_ms / recorded_ms`, 0 to 1, three decimals.
    pub silent_share: f64,
}

/// What a finished recording holds of the meeting time it covered, and why the rest is
/// missing: `<name>.json` beside a local MP4, `completeness` in a cloud manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletenessReport {
    /// The report's format; 1.
    pub version: u32,
    pub recording_id: Id,
    /// The recording's first recorded moment and its stop, wall clock.
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    #[serde(flatten)]
    pub summary: CompletenessSummary,
    /// Every gap in meeting-time order (`gap_totals` totals them).
    pub gaps: Vec<CoverageGap>,
}

impl Event {
    pub fn new(kind: EventType, at: Timestamp, to: Vec<Id>) -> Event {
        Event {
            kind,
            at,
            to,
            meeting_id: None,
            recording_id: None,
            recording_kind: None,
            actor: None,
            participant: None,
            reason: None,
            location: None,
            shared: None,
            recorded_ms: None,
            error: None,
            gaps: None,
            alarm: None,
            completeness: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceHealth {
    Ok,
    Missing,
    Error,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    pub free_bytes: u64,
    pub used_bytes: u64,
    /// Recording time the storage budget still allows at the measured bitrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_record_s: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    pub pending: u64,
    pub pending_bytes: u64,
    pub last_error: Option<String>,
}

/// The device's health, retained on `<p>/status`; the last will is `{"online": false}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub online: bool,
    pub version: String,
    pub uptime_s: u64,
    pub camera: DeviceHealth,
    pub microphone: DeviceHealth,
    pub storage: StorageStatus,
    pub uploads: UploadStatus,
    /// T1: whether recordings can be transcribed on this device (the speech model).
    #[serde(default)]
    pub transcription: TranscriptionStatus,
    /// The health alarms raised and not yet cleared, oldest first.
    #[serde(default)]
    pub alarms: Vec<Alarm>,
}

/// Whether the speech model transcription needs is there; `reason` says what to do if not.
/// Recording is never affected: without it, recordings simply get no transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionStatus {
    pub available: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Which health alarm; each has one meaning, a severity and an advice (`daemon::alarms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmId {
    /// Recording, not muted, and the recorded sound below -60 dBFS RMS for 30 s.
    MicrophoneSilent,
    /// Recording, and the recorded picture unchanged for 10 s (sampled about once a second).
    PictureFrozen,
    /// Recording, and the recorded picture black for 10 s.
    PictureBlack,
    /// The storage budget holds less than one hour of recording.
    DiskLow,
    /// The store is reachable and the oldest segment waiting for its upload is over an hour
    /// old.
    UploadBacklog,
    /// The kernel says the system clock is not synchronised (10 min on end).
    ClockUnsynchronised,
    /// The camera was lost while capturing and has not come back.
    CameraLost,
    /// The microphone was lost while capturing and has not come back.
    MicrophoneLost,
}

/// How urgent an alarm is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Something will go wrong if nobody acts (a backlog, a clock).
    Warning,
    /// What is being recorded now is damaged or lost.
    Critical,
}

/// One health alarm as `status` lists it and `alarm_raised` / `alarm_cleared` carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: AlarmId,
    pub severity: Severity,
    /// When its condition began (not when the hold time ran out).
    pub since: Timestamp,
    /// What is wrong and what a person can do about it.
    pub message: String,
}

/// The floor of every level: digital silence (GStreamer's `level` says -700 dB) reads this.
pub const LEVEL_FLOOR_DBFS: f64 = -120.0;

/// The sound level of one channel over one interval, in dB relative to full scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelLevel {
    pub peak_dbfs: f64,
    pub rms_dbfs: f64,
}

/// The recorded microphone's level over one interval: all channels together (the loudest
/// peak, the RMS of every sample) and each channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioLevels {
    pub peak_dbfs: f64,
    pub rms_dbfs: f64,
    pub channels: Vec<ChannelLevel>,
}

impl AudioLevels {
    /// The levels of `channels` (as GStreamer's `level` reports them), each value held to
    /// [`LEVEL_FLOOR_DBFS`]..=0 and rounded to 0.1 dB; `None` without a channel.
    pub fn from_channels(channels: &[ChannelLevel]) -> Option<AudioLevels> {
        if channels.is_empty() {
            return None;
        }
        let db = |v: f64| {
            let v = if v.is_nan() { LEVEL_FLOOR_DBFS } else { v };
            (v.clamp(LEVEL_FLOOR_DBFS, 0.0) * 10.0).round() / 10.0
        };
        let peak = channels
            .iter()
            .map(|c| c.peak_dbfs)
            .fold(f64::NEG_INFINITY, f64::max);
        // The mean power of every channel's samples, back to dB.
        let power = channels
            .iter()
            .map(|c| 10f64.powf(c.rms_dbfs.max(LEVEL_FLOOR_DBFS) / 10.0))
            .sum::<f64>()
            / channels.len() as f64;
        Some(AudioLevels {
            peak_dbfs: db(peak),
            rms_dbfs: db(10.0 * power.log10()),
            channels: channels
                .iter()
                .map(|c| ChannelLevel {
                    peak_dbfs: db(c.peak_dbfs),
                    rms_dbfs: db(c.rms_dbfs),
                })
                .collect(),
        })
    }
}

/// `<p>/levels` (QoS 0, not retained): the recorded microphone's level, about twice a second
/// while capturing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelsDoc {
    /// When the interval was read.
    pub at: Timestamp,
    #[serde(flatten)]
    pub levels: AudioLevels,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_mix_channels_by_power_and_hold_the_floor() {
        let ch = |peak_dbfs, rms_dbfs| ChannelLevel {
            peak_dbfs,
            rms_dbfs,
        };
        assert_eq!(AudioLevels::from_channels(&[]), None);
        // Two equal channels: the mix is that channel.
        let same = AudioLevels::from_channels(&[ch(-2.0, -5.0), ch(-2.0, -5.0)]).unwrap();
        assert_eq!((same.peak_dbfs, same.rms_dbfs), (-2.0, -5.0));
        // One dead channel halves the power: -3 dB, and the peak is the live one's.
        let one = AudioLevels::from_channels(&[ch(-2.0, -5.0), ch(-700.0, -700.0)]).unwrap();
        assert_eq!((one.peak_dbfs, one.rms_dbfs), (-2.0, -8.0));
        assert_eq!(one.channels[1], ch(LEVEL_FLOOR_DBFS, LEVEL_FLOOR_DBFS));
        // Silence, NaN and overs stay within the floor and 0 dBFS.
        let odd = AudioLevels::from_channels(&[ch(f64::NAN, f64::NEG_INFINITY)]).unwrap();
        assert_eq!(
            (odd.peak_dbfs, odd.rms_dbfs),
            (LEVEL_FLOOR_DBFS, LEVEL_FLOOR_DBFS)
        );
        let over = AudioLevels::from_channels(&[ch(0.04, -0.01)]).unwrap();
        assert_eq!((over.peak_dbfs, over.rms_dbfs), (0.0, 0.0));
        let doc = LevelsDoc {
            at: Timestamp(0),
            levels: same,
        };
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["rms_dbfs"], -5.0, "{json}");
        assert_eq!(json["channels"][0]["peak_dbfs"], -2.0, "{json}");
        assert_eq!(json["at"], "1970-01-01T00:00:00Z", "{json}");
    }

    fn decode(s: &str) -> Result<Command, DecodeError> {
        Command::decode(s.as_bytes())
    }

    #[test]
    fn snapshots_and_licences_over_the_payload_limit_are_refused_unread() {
        let filler = "x".repeat(MAX_PAYLOAD_BYTES);
        let snapshot = format!(r#"{{"version": 9, "meeting_id": null, "pad": "{filler}"}}"#);
        let refused = MeetingSnapshot::decode(snapshot.as_bytes()).unwrap_err();
        assert!(refused.contains("limit is 65536 bytes"), "{refused}");
        let licence = format!(
            r#"{{"kind": "rooms", "valid_until": "2099-01-01T00:00:00Z", "pad": "{filler}"}}"#
        );
        assert!(Licence::decode(licence.as_bytes()).is_err());
        // At the limit they are read.
        let mut at_limit = r#"{"version": 9, "meeting_id": null, "pad": ""}"#.to_owned();
        at_limit.insert_str(
            at_limit.len() - 2,
            &"x".repeat(MAX_PAYLOAD_BYTES - at_limit.len()),
        );
        assert_eq!(at_limit.len(), MAX_PAYLOAD_BYTES);
        assert_eq!(
            MeetingSnapshot::decode(at_limit.as_bytes()).map(|s| s.version),
            Ok(Some(9))
        );
    }

    #[test]
    fn decodes_start_with_flags() {
        let c = decode(
            r#"{"id":"c-1","actor":"u-2","action":"start","kind":"cloud","silent":true,"extra":1}"#,
        )
        .expect("valid command");
        assert_eq!(c.id.as_str(), "c-1");
        assert_eq!(c.actor, Actor::Participant(Id::parse("u-2").unwrap()));
        assert_eq!(
            c.action,
            Action::Start {
                kind: RecordingKind::Cloud,
                silent: true,
                unmute: false
            }
        );
    }

    #[test]
    fn admin_actor_is_recognised() {
        let c = decode(r#"{"id":"c-1","actor":"admin:ops","action":"list_recordings"}"#).unwrap();
        assert_eq!(c.actor, Actor::Admin("ops".into()));
        assert_eq!(c.action, Action::ListRecordings { state: None });
    }

    #[test]
    fn bad_commands_name_the_problem_and_keep_the_id() {
        let cases = [
            ("not json", None, "not valid JSON"),
            ("[1,2]", None, "JSON object"),
            (
                r#"{"actor":"u","action":"status"}"#,
                None,
                "'id' is missing",
            ),
            (
                r#"{"id":7,"actor":"u","action":"status"}"#,
                None,
                "'id' must be a string",
            ),
            (
                r#"{"id":"../../etc","actor":"u","action":"status"}"#,
                None,
                "'id' contains '/'",
            ),
            (
                r#"{"id":"c","action":"status"}"#,
                Some("c"),
                "'actor' is missing",
            ),
            (
                r#"{"id":"c","actor":"u","action":"fly"}"#,
                Some("c"),
                "unknown action \"fly\"",
            ),
            (
                r#"{"id":"c","actor":"u","action":"start"}"#,
                Some("c"),
                "'kind' is missing",
            ),
            (
                r#"{"id":"c","actor":"u","action":"start","kind":"tape"}"#,
                Some("c"),
                "\"cloud\" or \"local\"",
            ),
            (
                r#"{"id":"c","actor":"u","action":"mute","muted":"yes"}"#,
                Some("c"),
                "true or false",
            ),
            (
                r#"{"id":"c","actor":"u","action":"share","recording_id":"r/1","shared":true}"#,
                Some("c"),
                "'recording_id' contains '/'",
            ),
        ];
        for (input, id, needle) in cases {
            let e = decode(input).expect_err(input);
            assert_eq!(e.id.as_deref(), id, "{input}");
            assert!(e.message.contains(needle), "{input}: {}", e.message);
        }
    }

    /// A repeated key was read with its last value (`u-1`, the host), while a gateway that
    /// keeps the first saw a member: every decoded payload now refuses it, naming the key.
    #[test]
    fn a_repeated_key_is_refused_in_every_payload() {
        let cases = [
            (
                r#"{"id":"c-1","actor":"u-3","actor":"u-1","action":"start","kind":"cloud"}"#,
                Some("c-1"),
                "field 'actor' appears more than once",
            ),
            (
                r#"{"id":"c-1","actor":"u-1","action":"status","action":"delete"}"#,
                Some("c-1"),
                "field 'action' appears more than once",
            ),
            // The same value twice is refused too: readers still may differ on the rest.
            (
                r#"{"id":"c-2","id":"c-2","actor":"u-1","action":"status"}"#,
                None,
                "field 'id' appears more than once",
            ),
            (
                r#"{"id":"c-3","actor":"u-1","action":"mute","muted":true,"x":{"a":1,"a":2}}"#,
                Some("c-3"),
                "field 'x.a' appears more than once",
            ),
        ];
        for (input, id, needle) in cases {
            let e = decode(input).expect_err(input);
            assert_eq!(e.id.as_deref(), id, "{input}");
            assert!(e.message.contains(needle), "{input}: {}", e.message);
        }

        let snapshot = |extra: &str, account: &str| {
            format!(
                r#"{{"version":3,"meeting_id":"m-1","state":"active","creator":"u-1","host":"u-3"{extra},
                    "account":{{"tier":"free"{account}}}}}"#
            )
        };
        assert!(MeetingSnapshot::decode(snapshot("", "").as_bytes()).is_ok());
        for (extra, account, needle) in [
            (r#","host":"u-1""#, "", "field 'host' appears"),
            (
                "",
                r#","tier":"enterprise""#,
                "field 'account.tier' appears",
            ),
            (r#","version":9"#, "", "field 'version' appears"),
        ] {
            let text = snapshot(extra, account);
            let e = MeetingSnapshot::decode(text.as_bytes()).expect_err(&text);
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = Licence::decode(
            br#"{"kind":"rooms","valid_until":"2020-01-01T00:00:00Z","valid_until":"2099-01-01T00:00:00Z"}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("field 'valid_until' appears more than once"),
            "{e}"
        );
    }

    #[test]
    fn oversized_payload_is_refused_before_parsing() {
        let big = format!(r#"{{"id":"c","pad":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
        let e = decode(&big).unwrap_err();
        assert!(e.message.contains("limit"), "{}", e.message);
    }

    #[test]
    fn snapshot_decoding() {
        let s = MeetingSnapshot::decode(br#"{"version":3,"meeting_id":null}"#).unwrap();
        assert_eq!(s.version, Some(3));
        assert!(s.meeting.is_none());
        assert!(MeetingSnapshot::decode(b"").unwrap().meeting.is_none());
        let s = MeetingSnapshot::decode(
            br#"{"version":7,"meeting_id":"m-42","state":"active","creator":"u-1","host":"u-1",
                "cohosts":["u-2"],"participants":["u-1","u-2"],"sharing":false,
                "account":{"tier":"business","licence_expires_at":"2027-01-01T00:00:00Z",
                "cloud_quota_bytes":null,"cloud_used_bytes":5}}"#,
        )
        .unwrap();
        let m = s.meeting.unwrap();
        assert_eq!(m.account.cloud_quota_bytes, Some(None));
        assert_eq!(
            m.account.licence_expires_at,
            Some(Timestamp::parse("2027-01-01T00:00:00Z").unwrap())
        );
        assert!(MeetingSnapshot::decode(br#"{"meeting_id":"m"}"#)
            .unwrap_err()
            .contains("version"));
    }

    /// Found by fuzzing (snapshot target): a version above 2^63 - 1 was applied but could not
    /// be saved, so the whole batch (the recordings it stopped) was lost and every later
    /// snapshot was stale.
    #[test]
    fn a_version_the_catalog_cannot_store_is_refused() {
        let at = |v: &str| MeetingSnapshot::decode(format!(r#"{{"version":{v}}}"#).as_bytes());
        assert_eq!(
            at("9223372036854775807").unwrap().version,
            Some(MAX_VERSION)
        );
        for v in [
            "9223372036854775808",
            "18446744073709551615",
            "1e30",
            "-1",
            "1.5",
        ] {
            let e = at(v).expect_err(v);
            assert!(
                e.contains("field 'version' must be an integer from 0 to"),
                "{v}: {e}"
            );
        }
    }

    /// Found by fuzzing (snapshot target): a meeting without `cloud_quota_bytes` (quota from
    /// the tier table) was saved to the catalog as `null`, which reads back as unlimited.
    #[test]
    fn a_meeting_reads_back_with_the_same_quota_it_was_saved_with() {
        let snap = |quota: &str| {
            let json = format!(
                r#"{{"version":1,"meeting_id":"m","state":"active","creator":"u","host":"u",
                    "account":{{"tier":"free"{quota}}}}}"#
            );
            MeetingSnapshot::decode(json.as_bytes())
                .unwrap()
                .meeting
                .unwrap()
        };
        for (quota, want) in [
            ("", None),
            (r#","cloud_quota_bytes":null"#, Some(None)),
            (r#","cloud_quota_bytes":7"#, Some(Some(7))),
        ] {
            let m = snap(quota);
            assert_eq!(m.account.cloud_quota_bytes, want, "{quota}");
            let saved = serde_json::to_string(&m).unwrap();
            let back: Meeting = serde_json::from_str(&saved).unwrap();
            assert_eq!(back, m, "{saved}");
        }
    }

    /// Found by the snapshot target's catalog round trip: a time whose offset puts it past
    /// 9999 in UTC was accepted, then saved as 1970 (an expired licence after a reload).
    #[test]
    fn times_that_cannot_be_written_back_are_refused() {
        for s in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+00:01"] {
            let e = Timestamp::parse(s).expect_err(s);
            assert!(e.contains("outside the years 0000 to 9999"), "{s}: {e}");
        }
        for s in [
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "2027-01-01T01:00:00+01:00",
        ] {
            let t = Timestamp::parse(s).expect(s);
            assert_eq!(Timestamp::parse(&t.to_rfc3339()), Ok(t), "{s}");
        }
        let snap = br#"{"version":9,"meeting_id":"m-1","state":"active","creator":"u-1",
            "host":"u-1","account":{"licence_expires_at":"9999-12-31T23:59:59-23:59"}}"#;
        assert!(MeetingSnapshot::decode(snap)
            .unwrap_err()
            .contains("outside the years"));
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Timestamp::parse("2027-03-01T12:30:00.250Z").unwrap();
        assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
