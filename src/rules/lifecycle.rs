//! Facts from the world: meeting snapshots (E1, C2, C5, C6, L3, and the settings of W1–W4, T1), restore after a restart,
//! shutdown, sealed segments (C8), conversion (L5) and cloud completion (E1).
//!
//! Must not touch: command authorisation (see `commands`).

use super::state::{legal, DeviceLicence, Rec};
use super::{Converted, Effect, Engine, Marks, Now, Output, SealedSegment};
use crate::protocol::{
    CompletenessSummary, EventType, Id, LocalPolicy, MeetingSnapshot, MeetingState, RecordingInfo,
    RecordingKind, RecordingState, StopReason,
};

impl Engine {
    /// Applies a snapshot; `false` when it is stale and must leave no trace at all.
    pub(super) fn snapshot(
        &mut self,
        snap: MeetingSnapshot,
        now: Now,
        out: &mut Vec<Output>,
    ) -> bool {
        if let (Some(v), Some(last)) = (snap.version, self.version) {
            if v <= last {
                return false;
            }
        }
        if let (Some(v), None, Some(before)) = (snap.version, self.version, self.restored_version) {
            if v < before {
                return false;
            }
        }
        let next_active = snap
            .meeting
            .as_ref()
            .filter(|m| m.state == MeetingState::Active)
            .map(|m| m.meeting_id.clone());
        // E1 for whatever the new snapshot does not continue, judged with the roles it had.
        self.end_recordings(next_active.as_ref(), now, out);
        let same = self.meeting.as_ref().map(|m| &m.meeting_id)
            == snap.meeting.as_ref().map(|m| &m.meeting_id);
        if !same {
            self.policy = LocalPolicy::default();
            self.allowed.clear();
        }
        if !same || next_active.is_none() {
            self.pending.clear();
        }
        if snap.version.is_some() {
            self.version = snap.version;
        }
        out.push(Output::Effect(Effect::SaveMeeting {
            version: snap.version,
            meeting: snap.meeting.clone(),
        }));
        self.meeting = snap.meeting;
        self.follow_host(out);
        if next_active.is_some() {
            self.enforce_roster(now, out);
            self.enforce_quota(now, out);
        }
        self.apply_settings(now, out); // W1–W4, T1
        true
    }

    /// E1: every live recording not of `keep` stops; stopped local ones go to conversion.
    /// Also settles recordings restored from a meeting that did not come back.
    fn end_recordings(&mut self, keep: Option<&Id>, now: Now, out: &mut Vec<Output>) {
        for i in 0..self.recs.len() {
            if Some(&self.recs[i].info.meeting_id) == keep {
                continue;
            }
            if self.recs[i].is_live() {
                self.stop_rec(i, StopReason::MeetingEnded, None, now, out);
            }
            let info = &self.recs[i].info;
            if info.kind == RecordingKind::Local && info.state == RecordingState::Stopped {
                self.convert(i, now, out); // L5
            }
        }
    }

    /// `RecordingInfo.host` is the host "when last seen", for E2 after the meeting.
    fn follow_host(&mut self, out: &mut Vec<Output>) {
        let Some(m) = &self.meeting else { return };
        for rec in &mut self.recs {
            if rec.info.meeting_id == m.meeting_id && rec.info.host != m.host {
                rec.info.host = m.host.clone();
                out.push(Output::Effect(Effect::SaveRecording(rec.info.clone())));
            }
        }
    }

    /// Rules that follow the roster of an active meeting.
    fn enforce_roster(&mut self, now: Now, out: &mut Vec<Output>) {
        let pending = std::mem::take(&mut self.pending);
        self.pending = pending.into_iter().filter(|p| self.present(p)).collect(); // C2
        if let Some(i) = self.live_cloud() {
            // C5: roles matter only through who is present; the starter is irrelevant.
            let hosts_present = self.active().is_some_and(|m| {
                m.participants
                    .iter()
                    .any(|p| *p == m.host || m.cohosts.contains(p))
            });
            if !hosts_present {
                self.stop_rec(i, StopReason::AllHostsLeft, None, now, out); // C6
            }
        }
        self.enforce_permissions(now, out); // L2, L3
    }

    pub(super) fn set_licence(&mut self, licence: Option<crate::protocol::Licence>) {
        self.licence = match licence {
            Some(l) => DeviceLicence::Held(l),
            None => DeviceLicence::Absent,
        };
    }

    /// After a restart: live cloud recordings wait, paused, for the first snapshot (resumable
    /// if their meeting is still active); live local ones and interrupted conversions become
    /// `needs_finalize` (L5); stopped cloud ones resume completion.
    pub(super) fn restore(&mut self, rows: Vec<RecordingInfo>, out: &mut Vec<Output>) {
        for info in rows {
            if self.find(&info.recording_id).is_some() {
                continue;
            }
            let (kind, state) = (info.kind, info.state);
            let target = match (kind, state) {
                (RecordingKind::Cloud, RecordingState::Recording) => RecordingState::Paused,
                (RecordingKind::Local, s) if s.is_live() => RecordingState::NeedsFinalize,
                (_, RecordingState::Converting) => RecordingState::NeedsFinalize,
                (_, s) if s.is_live() || s == RecordingState::Stopped => s,
                _ => continue, // settled: the catalog's business
            };
            let changed = target != state;
            if changed && !legal(&info, target) {
                continue; // left as the catalog has it
            }
            let recording_id = info.recording_id.clone();
            self.recs.push(Rec {
                info: RecordingInfo {
                    state: target,
                    ..info
                },
                since: None,
            });
            if changed {
                let saved = self.recs[self.recs.len() - 1].info.clone();
                out.push(Output::Effect(Effect::SaveRecording(saved)));
            }
            if kind == RecordingKind::Cloud && target == RecordingState::Stopped {
                out.push(Output::Effect(Effect::CompleteCloud { recording_id }));
            }
        }
    }

    /// SIGTERM: capture stops; rows keep their live state so `restore` picks them up.
    pub(super) fn shutdown(&mut self, now: Now, out: &mut Vec<Output>) {
        out.push(Output::Effect(Effect::SetCapture {
            recordings: vec![],
            marks: Marks::default(),
        }));
        self.capture.clear();
        self.marks = Marks::default();
        self.capture_stopped = true;
        for rec in self.recs.iter_mut().filter(|r| r.is_live()) {
            rec.settle(now);
            rec.since = None;
            out.push(Output::Effect(Effect::SaveRecording(rec.info.clone())));
        }
    }

    /// C8: bytes per recording and the measured cloud bitrate; then the quota and disk checks.
    pub(super) fn sealed(&mut self, seg: SealedSegment, now: Now, out: &mut Vec<Output>) {
        self.meter_disk(&seg);
        let mut ids = seg.recordings;
        ids.sort();
        ids.dedup();
        let mut cloud = false;
        for id in &ids {
            let Some(i) = self.find(id) else { continue };
            let rec = &mut self.recs[i];
            rec.info.bytes = rec.info.bytes.saturating_add(seg.bytes);
            rec.settle(now);
            cloud |= rec.info.kind == RecordingKind::Cloud;
            out.push(Output::Effect(Effect::SaveRecording(rec.info.clone())));
        }
        if cloud {
            self.meter.cloud_bytes = self.meter.cloud_bytes.saturating_add(seg.bytes);
            self.meter.cloud_ms = self.meter.cloud_ms.saturating_add(seg.duration_ms);
        }
        self.enforce_quota(now, out);
        self.enforce_room(now, out); // the measured bitrate may have grown
    }

    /// L5: the conversion's outcome, told to the owner.
    pub(super) fn conversion_finished(
        &mut self,
        recording_id: &Id,
        result: Result<Converted, String>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Some(i) = self.find(recording_id) else {
            return;
        };
        if self.recs[i].info.state != RecordingState::Converting {
            return; // stopped meanwhile (stop_conversion): the late outcome changes nothing
        }
        let owner = vec![self.recs[i].info.owner.clone()];
        let ev = match result {
            Ok(Converted {
                location,
                gaps,
                completeness,
            }) => {
                let at = Some(location.clone());
                if !self.transition_with(i, RecordingState::Ready, now, out, |r| r.location = at) {
                    return;
                }
                let mut ev = self.rec_event(EventType::ConversionDone, i, owner, now);
                ev.location = Some(location);
                // Missing or corrupt segment files: the MP4 is the recording all the same
                // (ready), and its owner hears which stretches it does not show.
                ev.gaps = Some(gaps);
                ev.completeness = completeness;
                ev
            }
            Err(message) => {
                if !self.transition(i, RecordingState::NeedsFinalize, now, out) {
                    return;
                }
                let mut ev = self.rec_event(EventType::ConversionFailed, i, owner, now);
                ev.reason = Some(message);
                ev
            }
        };
        out.push(Output::Event(ev));
    }

    /// E1: the cloud recording is complete; its creator hears where to find it.
    pub(super) fn cloud_completed(
        &mut self,
        recording_id: &Id,
        location: String,
        completeness: Option<CompletenessSummary>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Some(i) = self.find(recording_id) else {
            return;
        };
        let info = &self.recs[i].info;
        if info.kind != RecordingKind::Cloud || info.state != RecordingState::Stopped {
            return;
        }
        let creator = vec![info.owner.clone()]; // C4
        let at = Some(location.clone());
        if !self.transition_with(i, RecordingState::Ready, now, out, |r| r.location = at) {
            return;
        }
        let mut ev = self.rec_event(EventType::RecordingReady, i, creator, now);
        ev.location = Some(location);
        ev.completeness = completeness;
        out.push(Output::Event(ev));
    }
}
