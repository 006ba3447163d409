//! The dispatcher: turns what the engine decided into a plan for the executor.
//!
//! Owns: the translation of engine outputs into one catalog batch (recording and meeting rows,
//! stored replies, outbox messages, the marks a recording's events leave), the messages to publish in outbox order, the reply for a
//! response topic, the state document and the effects for the adapters. Synchronous and free
//! of I/O, so the fuzz harness and the tests drive the very code the daemon runs.
//! Must not touch: channels, the catalog itself, clocks (the time of the batch is given).

use tracing::info;

use crate::catalog::Op;
use crate::completeness::{Mark, MarkKind};
use crate::control::Topic;
use crate::protocol::{Event, EventType, Id, RecordingKind, StopReason, Timestamp};
use crate::rules::{Effect, Output};

/// What one turn of the engine asks for, in the order the executor carries it out: commit the
/// batch, publish the messages, answer the response topic, publish the state, then the effects.
#[derive(Debug, Default)]
pub struct Plan {
    /// One catalog transaction: rows, stored replies and outbox messages.
    pub batch: Vec<Op>,
    /// Messages in outbox order: the i-th gets the i-th outbox id the batch returns.
    pub messages: Vec<(Topic, Vec<u8>)>,
    /// The command's reply, also sent to its MQTT 5 response topic when it named one.
    pub response: Option<Vec<u8>>,
    /// The state document when it changed: published retained, summarised for systemd.
    pub state: Option<PlannedState>,
    /// The kind of every recording saved, so later segments can be tagged for upload.
    pub kinds: Vec<(Id, RecordingKind)>,
    /// Effects for media, uploads and conversions, once the batch is committed.
    pub effects: Vec<Effect>,
}

#[derive(Debug)]
pub struct PlannedState {
    pub json: Vec<u8>,
    /// One line for systemd's STATUS=.
    pub summary: String,
}

/// Plans the outputs of one engine turn; `at` is the wall time stored with the batch.
pub fn plan(outputs: &[Output], at: Timestamp) -> Plan {
    let mut plan = Plan::default();
    for output in outputs {
        match output {
            Output::Reply(reply) => {
                let json = to_json(reply);
                if let Some(id) = &reply.id {
                    plan.batch.push(Op::StoreReply {
                        command_id: id.clone(),
                        reply_json: String::from_utf8_lossy(&json).into_owned(),
                        at,
                    });
                }
                plan.outbox(Topic::Reply, json.clone());
                plan.response = Some(json);
            }
            Output::Event(event) => {
                info!(event = ?event.kind, recording = ?event.recording_id.as_ref().map(Id::as_str),
                    reason = ?event.reason, "event");
                if let Some(mark) = recording_mark(event) {
                    plan.batch.push(mark);
                }
                plan.outbox(Topic::Events, to_json(event));
            }
            Output::State(doc) => {
                plan.state = Some(PlannedState {
                    json: to_json(doc),
                    summary: super::status::summary(doc),
                });
            }
            Output::Effect(effect) => plan.effect(effect.clone(), at),
        }
    }
    plan
}

impl Plan {
    fn outbox(&mut self, topic: Topic, payload: Vec<u8>) {
        self.batch.push(Op::Outbox {
            topic: topic.suffix().into(),
            payload: payload.clone(),
            retain: false,
        });
        self.messages.push((topic, payload));
    }

    fn effect(&mut self, effect: Effect, at: Timestamp) {
        match &effect {
            Effect::SaveRecording(info) => {
                info!(recording = %info.recording_id, meeting = %info.meeting_id,
                    kind = info.kind.as_str(), state = info.state.as_str(), "recording saved");
                self.kinds.push((info.recording_id.clone(), info.kind));
                self.batch.push(Op::SaveRecording(info.clone()));
            }
            Effect::SaveMeeting { version, meeting } => self.batch.push(Op::SaveMeeting {
                version: *version,
                meeting: meeting.clone(),
                at,
            }),
            _ => {}
        }
        self.effects.push(effect);
    }
}

/// The mark a recording's event leaves for its completeness report, saved with the event.
fn recording_mark(event: &Event) -> Option<Op> {
    let kind = match event.kind {
        EventType::RecordingStarted => MarkKind::Started,
        EventType::RecordingPaused => MarkKind::Paused,
        EventType::RecordingResumed => MarkKind::Resumed,
        EventType::RecordingStopped => {
            let reason = event.reason.as_deref().unwrap_or_default();
            let reason = serde_json::from_value(serde_json::Value::String(reason.into()));
            MarkKind::Stopped(reason.unwrap_or(StopReason::Command))
        }
        _ => return None,
    };
    Some(Op::Mark {
        recording_id: Some(event.recording_id.clone()?),
        mark: Mark { at: event.at, kind },
    })
}

/// The JSON of the device's own messages.
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our own types always serialise; an empty object is a visible failure rather than a crash.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        ErrorBody, ErrorCode, Event, EventType, RecordingInfo, RecordingState, Reply,
    };

    fn id(s: &str) -> Id {
        Id::parse(s).expect("valid id")
    }

    fn recording(rid: &str, kind: RecordingKind) -> RecordingInfo {
        RecordingInfo {
            recording_id: id(rid),
            meeting_id: id("m-1"),
            kind,
            owner: id("u-1"),
            started_by: id("u-1"),
            host: id("u-1"),
            state: RecordingState::Recording,
            created_at: Timestamp(1_000),
            recorded_ms: 0,
            bytes: 0,
            shared: false,
            location: None,
            transcription: false,
        }
    }

    fn outbox_topics(plan: &Plan) -> Vec<String> {
        plan.batch
            .iter()
            .filter_map(|op| match op {
                Op::Outbox { topic, .. } => Some(topic.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rows_events_and_the_reply_share_one_batch_in_output_order() {
        let reply = Reply::err(
            Some("c-1".into()),
            ErrorBody::new(ErrorCode::Forbidden, "no"),
        );
        let event = Event::new(EventType::RecordingStarted, Timestamp(5), vec![id("u-1")]);
        let outputs = vec![
            Output::Effect(Effect::SaveRecording(recording(
                "r-1",
                RecordingKind::Cloud,
            ))),
            Output::Event(event),
            Output::Effect(Effect::SetMuted(true)),
            Output::Reply(reply),
        ];
        let plan = plan(&outputs, Timestamp(7));
        assert!(matches!(&plan.batch[0], Op::SaveRecording(r) if r.recording_id == id("r-1")));
        assert_eq!(outbox_topics(&plan), ["events", "reply"]);
        assert!(
            matches!(&plan.batch[2], Op::StoreReply { command_id, at, .. } if command_id == "c-1" && *at == Timestamp(7))
        );
        let topics: Vec<Topic> = plan.messages.iter().map(|(t, _)| *t).collect();
        assert_eq!(topics, [Topic::Events, Topic::Reply]);
        assert_eq!(
            plan.response.as_deref(),
            Some(plan.messages[1].1.as_slice())
        );
        assert_eq!(plan.kinds, [(id("r-1"), RecordingKind::Cloud)]);
        assert_eq!(plan.effects.len(), 2, "{:?}", plan.effects);
        assert!(plan.state.is_none());
    }

    #[test]
    fn a_reply_without_an_id_is_published_but_not_remembered() {
        let outputs = vec![Output::Reply(Reply::err(
            None,
            ErrorBody::new(ErrorCode::BadRequest, "unreadable"),
        ))];
        let plan = plan(&outputs, Timestamp(0));
        assert_eq!(outbox_topics(&plan), ["reply"]);
        assert!(!plan
            .batch
            .iter()
            .any(|op| matches!(op, Op::StoreReply { .. })));
    }

    #[test]
    fn nothing_decided_plans_nothing() {
        let plan = plan(&[], Timestamp(0));
        assert!(plan.batch.is_empty() && plan.messages.is_empty() && plan.effects.is_empty());
        assert!(plan.response.is_none() && plan.state.is_none());
    }
}
