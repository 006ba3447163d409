//! What the device publishes about the rules' state: the `StateDoc` with every participant's
//! view (C3, X2, X3), when it is emitted, and the capture set media must follow (L6).
//!
//! Must not touch: the recordings themselves; this module only reads them.

use std::collections::BTreeMap;

use super::{Effect, Engine, Marks, Now, Output};
use crate::protocol::{
    CloudDoc, CloudState, LocalDoc, RecordingKind, RecordingState, StateDoc, View,
};

impl Engine {
    /// The whole state as published. `recorded_ms` values are current as of `now`.
    pub(super) fn doc(&self, now: Now) -> StateDoc {
        StateDoc {
            meeting_id: self.meeting.as_ref().map(|m| m.meeting_id.clone()),
            meeting_version: self.version,
            cloud: self.cloud_doc(now),
            local: self.local_docs(now),
            local_policy: self.policy,
            local_allowed: self.allowed.iter().cloned().collect(),
            pending_cloud_requests: self.pending.clone(),
            muted: self.muted,
            views: self.views(),
            in_force: self.in_force(),
        }
    }

    fn cloud_doc(&self, now: Now) -> CloudDoc {
        let remaining_s = self.remaining_s();
        let Some(i) = self.live_cloud() else {
            let state = if self.cloud_unavailable(now) {
                CloudState::Unavailable
            } else {
                CloudState::Idle
            };
            return CloudDoc {
                state,
                recording_id: None,
                started_by: None,
                owner: None,
                recorded_ms: 0,
                bytes: 0,
                remaining_s,
            };
        };
        let rec = &self.recs[i];
        let state = match rec.info.state {
            RecordingState::Recording => CloudState::Recording,
            _ => CloudState::Paused,
        };
        CloudDoc {
            state,
            recording_id: Some(rec.info.recording_id.clone()),
            started_by: Some(rec.info.started_by.clone()),
            owner: Some(rec.info.owner.clone()),
            recorded_ms: rec.live_ms(now),
            bytes: rec.info.bytes,
            remaining_s,
        }
    }

    /// Live (recording or paused) local recordings of the current meeting: what a control
    /// panel shows. Finished ones are told by events and `list_recordings`, so the state stays
    /// small however many recordings a long meeting has had.
    fn local_docs(&self, now: Now) -> Vec<LocalDoc> {
        self.recs
            .iter()
            .filter(|r| r.info.kind == RecordingKind::Local && r.is_live() && self.in_current(r))
            .map(|r| LocalDoc {
                recording_id: r.info.recording_id.clone(),
                owner: r.info.owner.clone(),
                state: r.info.state,
                recorded_ms: r.live_ms(now),
            })
            .collect()
    }

    /// C3, X2: hosts and co-hosts see `cloud` while it is live, whatever else they record;
    /// otherwise everyone sees `local` while their own local recording is live (X3).
    fn views(&self) -> BTreeMap<crate::protocol::Id, View> {
        let Some(m) = self.active() else {
            return BTreeMap::new();
        };
        let cloud_live = self.live_cloud().is_some();
        m.participants
            .iter()
            .map(|p| {
                let view = if cloud_live && self.is_team(p) {
                    View::Cloud
                } else if self.own_local(p).is_some() {
                    View::Local
                } else {
                    View::None
                };
                (p.clone(), view)
            })
            .collect()
    }

    /// Ends every input: syncs the capture set and emits the state when it changed. Running
    /// clocks alone do not count as a change, so ticks stay quiet; `refresh` (a sealed segment)
    /// makes them count, which is when the published `recorded_ms` catches up.
    pub(super) fn finish(&mut self, now: Now, refresh: bool, out: &mut Vec<Output>) -> StateDoc {
        self.prune();
        self.sync_capture(out);
        let doc = self.doc(now);
        let changed = match &self.last_doc {
            None => true,
            Some(last) if refresh => *last != doc,
            Some(last) => !same_shape(last, &doc),
        };
        if changed {
            out.push(Output::State(doc.clone()));
            self.last_doc = Some(doc.clone());
        }
        doc
    }

    /// L6: media captures exactly the recordings in `recording`; a change cuts a segment, so
    /// paused time is simply not tagged. W4: so does a change of the marks in force while
    /// capturing.
    fn sync_capture(&mut self, out: &mut Vec<Output>) {
        if self.capture_stopped {
            return;
        }
        let mut capturing: Vec<_> = self
            .recs
            .iter()
            .filter(|r| r.info.state == RecordingState::Recording)
            .map(|r| r.info.recording_id.clone())
            .collect();
        capturing.sort();
        // Nothing captured, nothing marked: marks alone never start a capture.
        let marks = if capturing.is_empty() {
            Marks::default()
        } else {
            self.marks_for(&capturing)
        };
        if capturing != self.capture || marks != self.marks {
            self.capture = capturing.clone();
            self.marks = marks.clone();
            out.push(Output::Effect(Effect::SetCapture {
                recordings: capturing,
                marks,
            }));
        }
    }
}

/// Equal apart from the running clocks.
fn same_shape(a: &StateDoc, b: &StateDoc) -> bool {
    let StateDoc {
        meeting_id,
        meeting_version,
        cloud,
        local,
        local_policy,
        local_allowed,
        pending_cloud_requests,
        muted,
        views,
        in_force,
    } = a;
    let cloud_same = CloudDoc {
        recorded_ms: b.cloud.recorded_ms,
        ..cloud.clone()
    } == b.cloud;
    let local_same = local.len() == b.local.len()
        && local.iter().zip(&b.local).all(|(x, y)| {
            x.recording_id == y.recording_id && x.owner == y.owner && x.state == y.state
        });
    *meeting_id == b.meeting_id
        && *meeting_version == b.meeting_version
        && cloud_same
        && local_same
        && *local_policy == b.local_policy
        && *local_allowed == b.local_allowed
        && *pending_cloud_requests == b.pending_cloud_requests
        && *muted == b.muted
        && *views == b.views
        && *in_force == b.in_force
}
