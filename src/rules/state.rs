//! The engine's memory of recordings and roles, and the helpers every rule module shares:
//! state transitions (checked against `transitions`, with their `SaveRecording`), stopping a recording (L4, C6, E1 all end
//! here), audiences of events, and error constructors.
//!
//! Must not touch: command authorisation or the published state (see `commands`, `views`).

use std::collections::BTreeSet;

use super::{transitions, Effect, Engine, Now, Output};
use crate::protocol::{
    ErrorBody, ErrorCode, Event, EventType, Id, Licence, Meeting, MeetingState, RecordingInfo,
    RecordingKind, RecordingState, StopReason,
};

/// One recording the engine tracks: its catalog row plus the monotonic instant it last entered
/// `recording`, so `recorded_ms` counts capture time only (L4, L6).
#[derive(Clone, Debug)]
pub(super) struct Rec {
    pub info: RecordingInfo,
    pub since: Option<u64>,
}

impl Rec {
    pub fn live_ms(&self, now: Now) -> u64 {
        let running = self.since.map_or(0, |s| now.mono_ms.saturating_sub(s));
        self.info.recorded_ms.saturating_add(running)
    }

    /// Folds the running stretch into `recorded_ms`, so the row saved next is current.
    pub fn settle(&mut self, now: Now) {
        self.info.recorded_ms = self.live_ms(now);
        if self.since.is_some() {
            self.since = Some(now.mono_ms);
        }
    }

    pub fn is_live(&self) -> bool {
        self.info.state.is_live()
    }

    /// Work is still under way for it, so it must stay in memory after its meeting.
    pub fn in_flight(&self) -> bool {
        matches!(
            self.info.state,
            RecordingState::Recording
                | RecordingState::Paused
                | RecordingState::Stopped
                | RecordingState::Converting
        )
    }
}

/// What the device knows of its own Rooms licence (D1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum DeviceLicence {
    #[default]
    NotReceived,
    Absent,
    Held(Licence),
}

/// Device-wide bitrate measurement for the quota estimate (C8) and the disk budget: the
/// encoder is the device's, so the figure carries over from one meeting to the next.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Meter {
    pub cloud_bytes: u64,
    pub cloud_ms: u64,
    /// Every sealed segment, cloud or local: what the disk receives.
    pub disk_bytes: u64,
    pub disk_ms: u64,
}

pub(super) fn err(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

/// Whether the transition table allows `info` to move to `to`. A refusal is a bug in the
/// rules: logged, and fatal in debug builds so that tests and fuzzing find it.
pub(super) fn legal(info: &RecordingInfo, to: RecordingState) -> bool {
    if transitions::allowed(info.kind, info.state, to).is_some() {
        return true;
    }
    tracing::error!(
        recording_id = %info.recording_id,
        kind = info.kind.as_str(),
        from = info.state.as_str(),
        to = to.as_str(),
        "illegal recording transition refused"
    );
    debug_assert!(
        false,
        "illegal transition of {} ({}): {} -> {}",
        info.recording_id,
        info.kind.as_str(),
        info.state.as_str(),
        to.as_str()
    );
    false
}

impl Engine {
    /// The current meeting, only while it is active.
    pub(super) fn active(&self) -> Option<&Meeting> {
        self.meeting
            .as_ref()
            .filter(|m| m.state == MeetingState::Active)
    }

    fn current_id(&self) -> Option<&Id> {
        self.meeting.as_ref().map(|m| &m.meeting_id)
    }

    pub(super) fn in_current(&self, rec: &Rec) -> bool {
        self.current_id() == Some(&rec.info.meeting_id)
    }

    pub(super) fn present(&self, id: &Id) -> bool {
        self.active().is_some_and(|m| m.participants.contains(id))
    }

    /// Host or co-host by the latest roster (C1, C3, X3).
    pub(super) fn is_team(&self, id: &Id) -> bool {
        self.active()
            .is_some_and(|m| m.host == *id || m.cohosts.contains(id))
    }

    pub(super) fn is_host(&self, id: &Id) -> bool {
        self.active().is_some_and(|m| m.host == *id)
    }

    pub(super) fn find(&self, recording_id: &Id) -> Option<usize> {
        self.recs
            .iter()
            .position(|r| r.info.recording_id == *recording_id)
    }

    /// C3: the one live cloud recording of the current meeting.
    pub(super) fn live_cloud(&self) -> Option<usize> {
        self.recs
            .iter()
            .position(|r| r.info.kind == RecordingKind::Cloud && r.is_live() && self.in_current(r))
    }

    pub(super) fn own_local(&self, owner: &Id) -> Option<usize> {
        self.recs.iter().position(|r| {
            r.info.kind == RecordingKind::Local
                && r.is_live()
                && r.info.owner == *owner
                && self.in_current(r)
        })
    }

    /// The host team of the recording's meeting plus its owner: who hears of its capture.
    pub(super) fn audience(&self, info: &RecordingInfo) -> Vec<Id> {
        let mut to = BTreeSet::new();
        match &self.meeting {
            Some(m) if m.meeting_id == info.meeting_id => {
                to.insert(m.host.clone());
                to.extend(m.cohosts.iter().cloned());
            }
            _ => {
                to.insert(info.host.clone());
            }
        }
        to.insert(info.owner.clone());
        to.into_iter().collect()
    }

    pub(super) fn team(&self) -> Vec<Id> {
        let mut to = BTreeSet::new();
        if let Some(m) = self.active() {
            to.insert(m.host.clone());
            to.extend(m.cohosts.iter().cloned());
        }
        to.into_iter().collect()
    }

    /// A notice about the current meeting: `actor` did something about `participant`.
    pub(super) fn request_event(
        &self,
        kind: EventType,
        to: Vec<Id>,
        actor: &Id,
        participant: &Id,
        now: Now,
    ) -> Output {
        let mut ev = Event::new(kind, now.wall, to);
        ev.meeting_id = self.active().map(|m| m.meeting_id.clone());
        ev.participant = Some(participant.clone());
        ev.actor = Some(actor.clone());
        Output::Event(ev)
    }

    pub(super) fn rec_event(&self, kind: EventType, i: usize, to: Vec<Id>, now: Now) -> Event {
        let info = &self.recs[i].info;
        let mut ev = Event::new(kind, now.wall, to);
        ev.meeting_id = Some(info.meeting_id.clone());
        ev.recording_id = Some(info.recording_id.clone());
        ev.recording_kind = Some(info.kind);
        ev
    }

    /// Moves a recording to `state`, keeping its capture clock right, and persists the row.
    /// `false`, with nothing changed, when the table does not allow it (a bug).
    #[must_use]
    pub(super) fn transition(
        &mut self,
        i: usize,
        state: RecordingState,
        now: Now,
        out: &mut Vec<Output>,
    ) -> bool {
        self.transition_with(i, state, now, out, |_| {})
    }

    /// [`transition`](Self::transition), with `edit` applied to the row before it is saved.
    #[must_use]
    pub(super) fn transition_with(
        &mut self,
        i: usize,
        state: RecordingState,
        now: Now,
        out: &mut Vec<Output>,
        edit: impl FnOnce(&mut RecordingInfo),
    ) -> bool {
        let rec = &mut self.recs[i];
        if !legal(&rec.info, state) {
            return false;
        }
        rec.settle(now);
        rec.since = (state == RecordingState::Recording).then_some(now.mono_ms);
        rec.info.state = state;
        edit(&mut rec.info);
        out.push(Output::Effect(Effect::SaveRecording(rec.info.clone())));
        true
    }

    /// A catalog row (the engine's copy or the command's context) moved to `state` and
    /// persisted, for the commands that act on settled recordings (L5, E2). An illegal move
    /// (a bug) is an `internal` error and changes nothing.
    pub(super) fn put_moved(
        &mut self,
        info: RecordingInfo,
        state: RecordingState,
        out: &mut Vec<Output>,
    ) -> Result<usize, ErrorBody> {
        if !legal(&info, state) {
            return Err(err(
                ErrorCode::Internal,
                format!(
                    "recording {} cannot go from {} to {}",
                    info.recording_id,
                    info.state.as_str(),
                    state.as_str()
                ),
            ));
        }
        Ok(self.put(RecordingInfo { state, ..info }, out))
    }

    /// Ends capture of a live recording. Cloud: stopped and completed (C6, E1). Local: kept
    /// as `stopped` until the meeting ends (L5), or discarded when too short (L4).
    pub(super) fn stop_rec(
        &mut self,
        i: usize,
        reason: StopReason,
        actor: Option<&Id>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        if !self.transition(i, RecordingState::Stopped, now, out) {
            return;
        }
        let info = &self.recs[i].info;
        let mut ev = self.rec_event(EventType::RecordingStopped, i, self.audience(info), now);
        ev.reason = Some(reason.as_str().into());
        ev.actor = actor.cloned();
        ev.recorded_ms = Some(info.recorded_ms);
        out.push(Output::Event(ev));
        let recording_id = info.recording_id.clone();
        if info.kind == RecordingKind::Cloud {
            out.push(Output::Effect(Effect::CompleteCloud { recording_id }));
        } else if info.recorded_ms < self.config.min_local_ms {
            self.discard(i, now, out);
        }
    }

    /// L4: too short to keep.
    fn discard(&mut self, i: usize, now: Now, out: &mut Vec<Output>) {
        if !self.transition(i, RecordingState::Discarded, now, out) {
            return;
        }
        let info = &self.recs[i].info;
        let mut ev = self.rec_event(
            EventType::RecordingDiscarded,
            i,
            vec![info.owner.clone()],
            now,
        );
        ev.reason = Some("too_short".into());
        ev.recorded_ms = Some(info.recorded_ms);
        out.push(Output::Event(ev));
        let recording_id = info.recording_id.clone();
        out.push(Output::Effect(Effect::Discard { recording_id }));
    }

    /// L5: a stopped local recording becomes one MP4.
    pub(super) fn convert(&mut self, i: usize, now: Now, out: &mut Vec<Output>) {
        if !self.transition(i, RecordingState::Converting, now, out) {
            return;
        }
        let recording_id = self.recs[i].info.recording_id.clone();
        out.push(Output::Effect(Effect::Convert { recording_id }));
    }

    /// Stops every live recording (disk full, device lost).
    pub(super) fn stop_all(&mut self, reason: StopReason, now: Now, out: &mut Vec<Output>) {
        for i in 0..self.recs.len() {
            if self.recs[i].is_live() {
                self.stop_rec(i, reason, None, now, out);
            }
        }
    }

    /// Inserts or replaces a catalog row the engine acts on, and persists it.
    pub(super) fn put(&mut self, info: RecordingInfo, out: &mut Vec<Output>) -> usize {
        out.push(Output::Effect(Effect::SaveRecording(info.clone())));
        match self.find(&info.recording_id) {
            Some(i) => {
                self.recs[i].info = info;
                i
            }
            None => {
                self.recs.push(Rec { info, since: None });
                self.recs.len() - 1
            }
        }
    }

    /// Forgets settled recordings of meetings other than the current one: the catalog keeps
    /// them, and commands about them bring their row in `CommandContext`.
    pub(super) fn prune(&mut self) {
        let current = self.meeting.as_ref().map(|m| m.meeting_id.clone());
        self.recs
            .retain(|r| Some(&r.info.meeting_id) == current.as_ref() || r.in_flight());
    }
}
