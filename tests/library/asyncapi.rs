//! Keeps `docs/asyncapi.yaml` (the MQTT contract as AsyncAPI 3.0.0) in step with
//! `src/protocol.rs`, both ways:
//!
//! - every variant of the wire enums (its wire name, from serde_json) and every name in
//!   `protocol::ACTIONS` is listed in the schema the payloads use for it, and every value the
//!   document lists exists in the code;
//! - every message example in the document is accepted by the code's decoder for that topic,
//!   and what the code writes back (re-serialized) uses no field the document does not declare;
//! - the id rule and the payload limit are the code's constants.
//!
//! The enum variants are not listed by hand: they are read from serde's own variant table
//! (`Deserializer::deserialize_enum` receives it), so a variant added in `protocol.rs` fails
//! this test with a message naming it, instead of going unnoticed.
//! The structural checks (AsyncAPI rules, examples against their JSON Schemas) are
//! `.ci/check-asyncapi`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use roomrec::protocol::{
    self, AlarmId, CloudState, Command, ErrorCode, Event, EventType, LevelsDoc, Licence,
    LocalPolicy, MeetingSnapshot, RecordingState, Reply, Severity, StateDoc, StatusDoc, StopReason,
    View,
};
use serde::de::{DeserializeOwned, Visitor};
use serde::Serialize;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Loading and walking the document

fn doc() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/asyncapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    assert_eq!(
        doc["asyncapi"], "3.0.0",
        "docs/asyncapi.yaml must be AsyncAPI 3.0.0"
    );
    doc
}

/// Follows a local `$ref` (`#/components/...`).
fn follow<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..32 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("only local $refs are expected, found {r:?}"));
                v = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("$ref {r:?} points at nothing"));
            }
            None => return v,
        }
    }
    panic!("$ref chain too long (a cycle?)")
}

/// Follows `$ref`s, and the wrappers this document uses around a schema: an `allOf` with one
/// member (used to attach a description to a `$ref`), and a nullable `oneOf`/`anyOf`
/// (`[X, {type: 'null'}]`).
fn schema<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = follow(doc, v);
    for _ in 0..32 {
        let members = |k: &str| v.get(k).and_then(Value::as_array);
        if v.get("enum").is_some() || v.get("properties").is_some() {
            return v;
        }
        if let Some([one]) = members("allOf").map(Vec::as_slice) {
            v = follow(doc, one);
            continue;
        }
        let non_null: Vec<&Value> = members("oneOf")
            .or_else(|| members("anyOf"))
            .map(|ms| {
                ms.iter()
                    .map(|m| follow(doc, m))
                    .filter(|m| m.get("type") != Some(&Value::from("null")))
                    .collect()
            })
            .unwrap_or_default();
        if let [one] = non_null.as_slice() {
            v = one;
            continue;
        }
        return v;
    }
    panic!("schema wrappers nested too deep")
}

/// Walks `path` from `start` (a JSON pointer into the document): each step is a key, looked
/// up after resolving the current node with [`schema`].
fn walk<'a>(doc: &'a Value, start: &str, path: &[&str]) -> &'a Value {
    let mut v = doc
        .pointer(start)
        .unwrap_or_else(|| panic!("docs/asyncapi.yaml has nothing at {start}"));
    let mut here = start.to_owned();
    for step in path {
        v = schema(doc, v)
            .get(step)
            .unwrap_or_else(|| panic!("docs/asyncapi.yaml: no {step:?} under {here}"));
        here = format!("{here} / {step}");
    }
    schema(doc, v)
}

/// The `enum` list of a schema node, as strings (`what` names it in failures).
fn enum_of(doc: &Value, node: &Value, what: &str) -> BTreeSet<String> {
    let v = schema(doc, node);
    let list = v
        .get("enum")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("docs/asyncapi.yaml: no enum at {what}: {v}"));
    let set: BTreeSet<String> = list
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("{what}: enum value {x} is not a string"))
                .to_owned()
        })
        .collect();
    assert_eq!(set.len(), list.len(), "{what}: duplicate enum values");
    set
}

/// The `enum` list of the schema at `start` + `path`.
fn enum_at(doc: &Value, start: &str, path: &[&str]) -> BTreeSet<String> {
    enum_of(
        doc,
        walk(doc, start, path),
        &format!("{start} / {}", path.join(" / ")),
    )
}

/// The command schemas, one per action: each `oneOf` member of the command payload is an
/// `allOf` of the common envelope and an object whose `action` is a `const`. Returns
/// (action, that object).
fn command_branches(doc: &Value) -> Vec<(String, &Value)> {
    let command = follow(
        doc,
        doc.pointer(COMMAND).expect("command message has a payload"),
    );
    let members = command["oneOf"]
        .as_array()
        .expect("the command payload is a oneOf, one member per action");
    members
        .iter()
        .map(|m| {
            let m = follow(doc, m);
            let parts = m["allOf"].as_array().unwrap_or_else(|| {
                panic!("command member {m} is not an allOf of the envelope and its fields")
            });
            let own = parts
                .iter()
                .map(|p| follow(doc, p))
                .find(|p| p.pointer("/properties/action/const").is_some())
                .unwrap_or_else(|| panic!("command member {m} has no `action` const"));
            let action = own["properties"]["action"]["const"]
                .as_str()
                .expect("action const is a string")
                .to_owned();
            (action, own)
        })
        .collect()
}

fn command_branch<'a>(doc: &'a Value, action: &str) -> &'a Value {
    command_branches(doc)
        .into_iter()
        .find(|(a, _)| a == action)
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("the command oneOf has no member for {action:?}"))
}

// ---------------------------------------------------------------------------------------------
// Wire names of every variant, straight from serde

/// A `Deserializer` that only records the variant table serde's derive passes to
/// `deserialize_enum`.
struct VariantTable<'a>(&'a mut Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Stop {}
impl serde::de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

impl<'de> serde::Deserializer<'de> for VariantTable<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop("not an enum".into()))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(variants);
        Err(Stop("variant table recorded".into()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// The wire name of every variant of `T`: each variant serde knows is decoded, then encoded
/// again with serde_json, so the names are the ones the device actually writes.
fn wire_names<T: Serialize + DeserializeOwned>() -> BTreeSet<String> {
    let mut table = None;
    let _ = T::deserialize(VariantTable(&mut table));
    let table =
        table.unwrap_or_else(|| panic!("{} is not a plain serde enum", std::any::type_name::<T>()));
    assert!(!table.is_empty());
    table
        .iter()
        .map(|name| {
            let value: T = serde_json::from_value(Value::from(*name)).unwrap_or_else(|e| {
                panic!(
                    "{}: variant {name:?} does not decode: {e}",
                    std::any::type_name::<T>()
                )
            });
            match serde_json::to_value(&value).unwrap() {
                Value::String(s) => s,
                other => panic!(
                    "{}: {name:?} encodes as {other}",
                    std::any::type_name::<T>()
                ),
            }
        })
        .collect()
}

/// Both directions: the code's names are all in the document, and the document lists nothing
/// the code lacks.
fn assert_same(what: &str, code: &BTreeSet<String>, document: &BTreeSet<String>) {
    let missing: Vec<_> = code.difference(document).collect();
    let extra: Vec<_> = document.difference(code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: docs/asyncapi.yaml is out of step with src/protocol.rs\n  \
         in the code but not in the document: {missing:?}\n  \
         in the document but not in the code: {extra:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Enumerations and actions

const REPLY: &str = "/components/messages/reply/payload";
const STATE: &str = "/components/messages/state/payload";
const EVENT: &str = "/components/messages/event/payload";
const COMMAND: &str = "/components/messages/command/payload";
const STATUS: &str = "/components/messages/status/payload";

#[test]
fn error_codes_match() {
    let d = doc();
    let code = wire_names::<ErrorCode>();
    assert_same(
        "ErrorCode (reply error.code)",
        &code,
        &enum_at(&d, REPLY, &["properties", "error", "properties", "code"]),
    );
}

#[test]
fn event_types_match() {
    let d = doc();
    assert_same(
        "EventType (event type)",
        &wire_names::<EventType>(),
        &enum_at(&d, EVENT, &["properties", "type"]),
    );
}

/// The `then` branch of the event schema's `if type == <event_type>` condition.
fn event_condition<'a>(d: &'a Value, event_type: &str) -> &'a Value {
    let event = walk(d, EVENT, &[]);
    let conditions = event["allOf"]
        .as_array()
        .expect("the Event schema states its per-type rules in allOf");
    conditions
        .iter()
        .map(|c| follow(d, c))
        .find(|c| c.pointer("/if/properties/type/const") == Some(&Value::from(event_type)))
        .and_then(|c| c.get("then"))
        .unwrap_or_else(|| panic!("the Event schema has no `if type == {event_type}` rule"))
}

#[test]
fn stop_reasons_match() {
    let d = doc();
    let then = event_condition(&d, "recording_stopped");
    let listed = enum_of(
        &d,
        &then["properties"]["reason"],
        "recording_stopped reason",
    );
    let code = wire_names::<StopReason>();
    assert_same("StopReason (recording_stopped reason)", &code, &listed);
    // StopReason::as_str, used to fill the event's string `reason`, agrees with serde.
    for name in &code {
        let r: StopReason = serde_json::from_value(Value::from(name.as_str())).unwrap();
        assert_eq!(
            r.as_str(),
            name,
            "StopReason::as_str disagrees with serde for {r:?}"
        );
    }
    assert_eq!(
        then["required"],
        serde_json::json!(["reason"]),
        "recording_stopped must require a reason"
    );
}

#[test]
fn recording_states_match() {
    let d = doc();
    let code = wire_names::<RecordingState>();
    // Everywhere a recording state appears on the wire.
    assert_same(
        "RecordingState (state local[].state)",
        &code,
        &enum_at(
            &d,
            STATE,
            &["properties", "local", "items", "properties", "state"],
        ),
    );
    assert_same(
        "RecordingState (reply recordings[].state)",
        &code,
        &enum_at(
            &d,
            REPLY,
            &["properties", "recordings", "items", "properties", "state"],
        ),
    );
    let filter = &command_branch(&d, "list_recordings")["properties"]["state"];
    assert_same(
        "RecordingState (list_recordings state filter)",
        &code,
        &enum_of(&d, filter, "list_recordings state"),
    );
    // RecordingState::ALL and as_str (used to decode the list_recordings filter) agree with
    // serde.
    let all: BTreeSet<String> = RecordingState::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_same("RecordingState::ALL/as_str vs serde", &code, &all);
}

#[test]
fn cloud_states_match() {
    let d = doc();
    assert_same(
        "CloudState (state cloud.state)",
        &wire_names::<CloudState>(),
        &enum_at(&d, STATE, &["properties", "cloud", "properties", "state"]),
    );
}

#[test]
fn views_match() {
    let d = doc();
    assert_same(
        "View (state views values)",
        &wire_names::<View>(),
        &enum_at(&d, STATE, &["properties", "views", "additionalProperties"]),
    );
}

#[test]
fn local_policies_match() {
    let d = doc();
    let code = wire_names::<LocalPolicy>();
    assert_same(
        "LocalPolicy (state local_policy)",
        &code,
        &enum_at(&d, STATE, &["properties", "local_policy"]),
    );
    let policy = &command_branch(&d, "set_local_policy")["properties"]["policy"];
    assert_same(
        "LocalPolicy (set_local_policy policy)",
        &code,
        &enum_of(&d, policy, "set_local_policy policy"),
    );
}

#[test]
fn other_wire_enums_match() {
    let d = doc();
    let kind = &command_branch(&d, "start")["properties"]["kind"];
    assert_same(
        "RecordingKind (start kind)",
        &wire_names::<protocol::RecordingKind>(),
        &enum_of(&d, kind, "start kind"),
    );
    for field in ["camera", "microphone"] {
        assert_same(
            &format!("DeviceHealth (status {field})"),
            &wire_names::<protocol::DeviceHealth>(),
            &enum_at(&d, STATUS, &["properties", field]),
        );
    }
    for (name, path) in [
        (
            "status alarms[]",
            (STATUS, vec!["properties", "alarms", "items"]),
        ),
        ("event alarm", (EVENT, vec!["properties", "alarm"])),
    ] {
        let (start, mut path) = path;
        path.extend(["properties", "id"]);
        assert_same(
            &format!("AlarmId ({name}.id)"),
            &wire_names::<AlarmId>(),
            &enum_at(&d, start, &path),
        );
        *path.last_mut().unwrap() = "severity";
        assert_same(
            &format!("Severity ({name}.severity)"),
            &wire_names::<Severity>(),
            &enum_at(&d, start, &path),
        );
    }
    assert_same(
        "MeetingState (meeting state)",
        &wire_names::<protocol::MeetingState>(),
        &enum_at(&d, "/components/schemas/Meeting", &["properties", "state"]),
    );
    assert_same(
        "CoverageCause (CoverageGap cause)",
        &wire_names::<protocol::CoverageCause>(),
        &enum_at(
            &d,
            "/components/schemas/CoverageGap",
            &["properties", "cause"],
        ),
    );
    assert_same(
        "GapCause (event gaps[].cause)",
        &wire_names::<protocol::GapCause>(),
        &enum_at(
            &d,
            EVENT,
            &["properties", "gaps", "items", "properties", "cause"],
        ),
    );
}

#[test]
fn actions_match() {
    let d = doc();
    let code: BTreeSet<String> = protocol::ACTIONS.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        code.len(),
        protocol::ACTIONS.len(),
        "protocol::ACTIONS has duplicates"
    );
    let branches = command_branches(&d);
    let consts: BTreeSet<String> = branches.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(
        consts.len(),
        branches.len(),
        "two command oneOf members share an action"
    );
    assert_same("actions (command oneOf members)", &code, &consts);
    let envelope = walk(
        &d,
        "/components/schemas/CommandEnvelope",
        &["properties", "action"],
    );
    assert_same(
        "actions (CommandEnvelope action enum)",
        &code,
        &enum_of(&d, envelope, "CommandEnvelope action"),
    );
    // Each member requires `action`, and through the envelope `id` and `actor`.
    let envelope_required = &walk(&d, "/components/schemas/CommandEnvelope", &[])["required"];
    for field in ["id", "actor", "action"] {
        assert!(
            envelope_required
                .as_array()
                .unwrap()
                .contains(&Value::from(field)),
            "CommandEnvelope must require {field}"
        );
    }
}

/// Each command's required fields in the document are exactly those without which the code's
/// decoder refuses it: dropping any one of them from a full command makes it a bad_request,
/// and a command with only the required fields decodes.
#[test]
fn command_required_fields_match_the_decoder() {
    let d = doc();
    for (action, branch) in command_branches(&d) {
        let props = branch["properties"]
            .as_object()
            .expect("command member has properties");
        let required: BTreeSet<String> = branch["required"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        // A plausible value for every field the member declares.
        let mut full = serde_json::Map::new();
        full.insert("id".into(), Value::from("c-1"));
        full.insert("actor".into(), Value::from("u-1"));
        for (name, prop) in props {
            let p = schema(&d, prop);
            let value = if name == "action" {
                Value::from(action.as_str())
            } else if let Some(first) = p.get("enum").and_then(|e| e[0].as_str()) {
                Value::from(first)
            } else if p.get("type") == Some(&Value::from("boolean"))
                || p.get("type") == Some(&serde_json::json!(["boolean", "null"]))
            {
                Value::from(true)
            } else {
                Value::from("x-1")
            };
            full.insert(name.clone(), value);
        }
        let decode = |obj: &serde_json::Map<String, Value>| {
            Command::decode(serde_json::to_string(obj).unwrap().as_bytes())
        };
        let c = decode(&full)
            .unwrap_or_else(|e| panic!("{action}: a full command {full:?} is refused: {e}"));
        assert_eq!(c.action.name(), action);
        let mut minimal = serde_json::Map::new();
        minimal.insert("id".into(), Value::from("c-1"));
        minimal.insert("actor".into(), Value::from("u-1"));
        for name in &required {
            minimal.insert(name.clone(), full[name].clone());
        }
        decode(&minimal).unwrap_or_else(|e| {
            panic!("{action}: the document's required fields {required:?} are not enough: {e}")
        });
        for name in props.keys().filter(|n| *n != "action") {
            let mut without = full.clone();
            without.remove(name);
            let refused = decode(&without).is_err();
            assert_eq!(
                refused,
                required.contains(name),
                "{action}: field {name:?} is {} in the document but the decoder {} without it",
                if required.contains(name) {
                    "required"
                } else {
                    "optional"
                },
                if refused {
                    "refuses the command"
                } else {
                    "accepts the command"
                },
            );
        }
    }
}

#[test]
fn id_rule_and_payload_limit_match() {
    let d = doc();
    let id = walk(&d, "/components/schemas/Id", &[]);
    assert_eq!(
        id["pattern"],
        format!("^[A-Za-z0-9._:@+-]{{1,{}}}$", protocol::MAX_ID_LEN),
        "Id pattern"
    );
    assert_eq!(id["maxLength"], protocol::MAX_ID_LEN, "Id maxLength");
    assert_eq!(id["minLength"], 1, "Id minLength");
    assert_eq!(
        id["not"]["enum"],
        serde_json::json!([".", ".."]),
        "Id excludes . and .."
    );
    // The pattern's character class is what Id::parse accepts.
    for c in (0u8..=127).map(char::from) {
        let s = format!("a{c}");
        let in_class = c.is_ascii_alphanumeric() || "._:@+-".contains(c);
        assert_eq!(protocol::Id::parse(&s).is_ok(), in_class, "character {c:?}");
    }
    assert!(protocol::Id::parse(&"a".repeat(protocol::MAX_ID_LEN)).is_ok());
    assert!(protocol::Id::parse(&"a".repeat(protocol::MAX_ID_LEN + 1)).is_err());
    assert!(protocol::Id::parse(".").is_err() && protocol::Id::parse("..").is_err());
    assert_eq!(
        d["x-max-payload-bytes"],
        protocol::MAX_PAYLOAD_BYTES,
        "x-max-payload-bytes must equal protocol::MAX_PAYLOAD_BYTES"
    );
    let limit = format!("{} bytes", protocol::MAX_PAYLOAD_BYTES);
    let description = d["info"]["description"].as_str().unwrap();
    assert!(
        description.contains(&limit),
        "info.description must state the {limit} limit"
    );
}

// ---------------------------------------------------------------------------------------------
// Examples: the code accepts them, and writes back nothing the document does not declare

/// Every property name a schema declares for an object, through `$ref`, `allOf`, `anyOf`,
/// `oneOf`, `if`/`then`/`else`; with the schema of each (the first one found).
fn declared<'a>(doc: &'a Value, node: &'a Value, out: &mut Vec<(&'a str, &'a Value)>) {
    let s = follow(doc, node);
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            if !out.iter().any(|(n, _)| n == k) {
                out.push((k, v));
            }
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for m in s.get(key).and_then(Value::as_array).into_iter().flatten() {
            declared(doc, m, out);
        }
    }
    for key in ["then", "else"] {
        if let Some(m) = s.get(key) {
            declared(doc, m, out);
        }
    }
}

/// The `items` or `additionalProperties` schema of a node, through the same combinators.
fn sub<'a>(doc: &'a Value, node: &'a Value, key: &str) -> Option<&'a Value> {
    let s = follow(doc, node);
    if let Some(v) = s.get(key).filter(|v| v.is_object()) {
        return Some(v);
    }
    ["allOf", "anyOf", "oneOf"]
        .iter()
        .flat_map(|k| s.get(*k).and_then(Value::as_array).into_iter().flatten())
        .find_map(|m| sub(doc, m, key))
}

fn assert_declared(doc: &Value, value: &Value, node: &Value, at: &str) {
    match value {
        Value::Object(obj) => {
            let mut props = Vec::new();
            declared(doc, node, &mut props);
            let extra = sub(doc, node, "additionalProperties");
            for (k, v) in obj {
                let here = format!("{at}.{k}");
                match (props.iter().find(|(n, _)| n == k), extra) {
                    (Some((_, s)), _) => assert_declared(doc, v, s, &here),
                    (None, Some(s)) => assert_declared(doc, v, s, &here),
                    (None, None) => panic!(
                        "{here}: the code writes this field but docs/asyncapi.yaml does not \
                         declare it"
                    ),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = sub(doc, node, "items") {
                for (i, v) in items.iter().enumerate() {
                    assert_declared(doc, v, s, &format!("{at}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

/// Decodes `payload` as the device does for this message, and returns what the device would
/// write back for it (for messages the device sends), or `None`.
fn decode_as_the_code_does(message: &str, payload: &Value) -> Result<Option<Value>, String> {
    fn round_trip<T: Serialize + DeserializeOwned>(
        payload: &Value,
    ) -> Result<Option<Value>, String> {
        let v: T = serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
        Ok(Some(serde_json::to_value(&v).unwrap()))
    }
    let bytes = serde_json::to_vec(payload).unwrap();
    match message {
        "meetingSnapshot" => MeetingSnapshot::decode(&bytes).map(|_| None),
        "licence" => Licence::decode(&bytes).map(|_| None),
        "command" => {
            let c = Command::decode(&bytes).map_err(|e| e.to_string())?;
            if Some(c.action.name()) != payload["action"].as_str() {
                return Err(format!("decoded as action {}", c.action.name()));
            }
            Ok(None)
        }
        "reply" | "replyToResponseTopic" => round_trip::<Reply>(payload),
        "state" => round_trip::<StateDoc>(payload),
        "event" => round_trip::<Event>(payload),
        "status" => round_trip::<StatusDoc>(payload),
        "levels" => round_trip::<LevelsDoc>(payload),
        "offline" => {
            if payload == &serde_json::json!({"online": false}) {
                Ok(None)
            } else {
                Err("the last will is exactly {\"online\": false}".into())
            }
        }
        other => Err(format!(
            "no decoder is known for message {other:?}: add it to decode_as_the_code_does"
        )),
    }
}

#[test]
fn every_example_is_accepted_by_the_code() {
    let d = doc();
    let messages = d["components"]["messages"]
        .as_object()
        .expect("components.messages");
    let mut checked = 0;
    for (name, message) in messages {
        if name == "preview" {
            // The one binary payload: no JSON example to decode; its declared limit is the
            // code's.
            assert_eq!(
                message["contentType"], "image/jpeg",
                "preview: content type"
            );
            assert_eq!(
                message["payload"]["maxLength"].as_u64(),
                Some(roomrec::media::PREVIEW_MAX_BYTES as u64),
                "preview: the limit"
            );
            continue;
        }
        let examples = message["examples"]
            .as_array()
            .unwrap_or_else(|| panic!("message {name} has no examples"));
        for (i, example) in examples.iter().enumerate() {
            let label = format!("{name} example {}", example["name"].as_str().unwrap_or("?"));
            let payload = example
                .get("payload")
                .unwrap_or_else(|| panic!("{label}: no payload"));
            let bytes = serde_json::to_vec(payload).unwrap().len();
            assert!(
                bytes <= protocol::MAX_PAYLOAD_BYTES,
                "{label}: over the payload limit"
            );
            match decode_as_the_code_does(name, payload) {
                Err(e) => panic!("{label} (#{i}) is refused by the code: {e}\n{payload}"),
                Ok(Some(written)) => {
                    assert_declared(&d, &written, &message["payload"], &label);
                }
                Ok(None) => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} examples found");
}

#[test]
fn last_will_is_the_offline_message() {
    let d = doc();
    let servers = d["servers"].as_object().expect("servers");
    assert!(servers.len() >= 2, "mqtt and mqtts servers");
    for (name, server) in servers {
        let will = &server["bindings"]["mqtt"]["lastWill"];
        let msg: Value = serde_json::from_str(
            will["message"]
                .as_str()
                .unwrap_or_else(|| panic!("server {name}: no mqtt lastWill message")),
        )
        .unwrap_or_else(|e| panic!("server {name}: lastWill message is not JSON: {e}"));
        assert_eq!(msg, serde_json::json!({"online": false}), "server {name}");
        assert_eq!(will["qos"], 1, "server {name}: last will QoS");
        assert_eq!(will["retain"], true, "server {name}: last will retained");
    }
}

/// QoS 1 everywhere but `levels` and `preview` (QoS 0: a stale meter reading or picture is
/// not resent); retained exactly on meeting, licence, state, status and preview (docs/api.md).
#[test]
fn qos_and_retain_follow_the_contract() {
    let d = doc();
    let retained = ["meeting", "licence", "state", "status", "preview"];
    let mut seen = BTreeSet::new();
    for (name, op) in d["operations"].as_object().expect("operations") {
        let channel = follow(&d, &op["channel"]);
        let channel_name = d["channels"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, c)| std::ptr::eq(*c, channel))
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("operation {name}: channel is not under channels"));
        let mqtt = &op["bindings"]["mqtt"];
        let qos = if ["levels", "preview"].contains(&channel_name.as_str()) {
            0
        } else {
            1
        };
        assert_eq!(mqtt["qos"], qos, "operation {name}: QoS");
        assert_eq!(
            mqtt["retain"].as_bool(),
            Some(retained.contains(&channel_name.as_str())),
            "operation {name} on {channel_name}: retain"
        );
        let expected = match channel_name.as_str() {
            "meeting" | "licence" | "cmd" => "receive",
            _ => "send",
        };
        assert_eq!(
            op["action"], expected,
            "operation {name}: the device's point of view"
        );
        seen.insert(channel_name);
    }
    for ch in [
        "meeting", "licence", "cmd", "reply", "state", "events", "status", "levels",
    ] {
        assert!(seen.contains(ch), "no operation on channel {ch}");
        let address = d["channels"][ch]["address"].as_str().unwrap();
        assert_eq!(address, format!("{{prefix}}/{ch}"), "channel {ch} address");
    }
}

/// The completeness report is no MQTT message (a file beside the MP4, a part of the cloud
/// manifest), but the document describes it: what the code writes is declared there.
#[test]
fn the_completeness_report_writes_only_declared_fields() {
    use roomrec::completeness::{report, Evidence, SegmentSpan};
    let d = doc();
    let span = |seq: u64, ended_at: i64| SegmentSpan {
        seq,
        ended_at: protocol::Timestamp(ended_at),
        duration_ms: 1_000,
        silent_ms: 300,
    };
    let evidence = Evidence {
        // The second segment missing, and a hole of 3 s after it (the 3rd never catalogued).
        segments: vec![span(1, 1_000), span(2, 2_000), span(4, 6_000)],
        marks: vec![],
        unusable: vec![(2, protocol::GapCause::Missing)],
    };
    let id = protocol::Id::parse("r-1").expect("id");
    let written = serde_json::to_value(report(&id, protocol::Timestamp(0), &evidence))
        .expect("the report serialises");
    let gaps = written["gaps"].as_array().expect("gaps");
    assert!(gaps.len() >= 2, "{written:#}");
    assert!(gaps.iter().any(|g| g.get("seqs").is_some()), "{written:#}");
    let schema = d
        .pointer("/components/schemas/CompletenessReport")
        .expect("CompletenessReport in the document");
    assert_declared(&d, &written, schema, "CompletenessReport");
    let required = schema["required"].as_array().expect("required");
    for field in required {
        let field = field.as_str().expect("a name");
        assert!(
            written.get(field).is_some(),
            "{field} is required: {written:#}"
        );
    }
}
