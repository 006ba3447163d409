//! Commands: who may send what, the shared controls (X3), the microphone (M1), and the
//! management of finished recordings (L5 `stop_conversion`/`finalize`, E2 `share`/`delete`).
//!
//! Must not touch: the start rules themselves (see `cloud`, `local`).

use super::state::err;
use super::{CommandContext, Effect, Engine, Now, Output};
use crate::protocol::{
    Action, Actor, Command, ErrorBody, ErrorCode, EventType, Id, RecordingInfo, RecordingKind,
    RecordingState, Reply, StopReason,
};

type Listing = Option<Vec<RecordingInfo>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Pause,
    Resume,
    Stop,
}

impl Control {
    fn verb(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Stop => "stop",
        }
    }
}

impl Engine {
    /// Exactly one reply per command, carrying the state after it.
    pub(super) fn command(&mut self, cmd: Command, ctx: CommandContext, now: Now) -> Vec<Output> {
        let mut out = Vec::new();
        let result = self.run(&cmd, ctx, now, &mut out);
        let doc = self.finish(now, false, &mut out);
        let reply = match result {
            Ok(listing) => Reply {
                recordings: listing,
                ..Reply::ok(&cmd.id, doc)
            },
            Err(e) => Reply::err(Some(cmd.id.to_string()), e),
        };
        out.push(Output::Reply(reply));
        out
    }

    fn run(
        &mut self,
        cmd: &Command,
        ctx: CommandContext,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<Listing, ErrorBody> {
        let actor = &cmd.actor;
        match &cmd.action {
            Action::Status => Ok(None),
            Action::ListRecordings { .. } => match actor {
                Actor::Admin(_) => Ok(Some(ctx.listing)),
                Actor::Participant(p) => Err(err(
                    ErrorCode::Forbidden,
                    format!("only administrators can list recordings; {p} is a participant"),
                )),
            },
            Action::StopConversion { recording_id } => {
                self.stop_conversion(actor, recording_id, ctx, out)?;
                Ok(None)
            }
            Action::Finalize { recording_id } => {
                self.finalize(actor, recording_id, ctx, out)?;
                Ok(None)
            }
            Action::Share {
                recording_id,
                shared,
            } => {
                self.share(actor, recording_id, *shared, ctx, now, out)?;
                Ok(None)
            }
            Action::Delete { recording_id } => {
                self.delete(actor, recording_id, ctx, now, out)?;
                Ok(None)
            }
            Action::Preview => {
                self.preview(actor, out)?;
                Ok(None)
            }
            Action::Mute { muted } if matches!(actor, Actor::Admin(_)) => {
                self.set_muted(*muted, out);
                Ok(None)
            }
            action => match actor {
                Actor::Admin(name) => Err(err(
                    ErrorCode::Forbidden,
                    format!(
                        "admin:{name} cannot {}; meeting participants start and control recordings",
                        action.name()
                    ),
                )),
                Actor::Participant(p) => {
                    self.check_participant(p)?;
                    self.meeting_action(p, action, now, out)?;
                    Ok(None)
                }
            },
        }
    }

    /// `preview`: admins only; while capturing, or with no meeting on (see the module header).
    fn preview(&self, actor: &Actor, out: &mut Vec<Output>) -> Result<(), ErrorBody> {
        if let Actor::Participant(p) = actor {
            return Err(err(
                ErrorCode::Forbidden,
                format!("only administrators can ask for a preview; {p} is a participant"),
            ));
        }
        if let (true, Some(m)) = (self.capture.is_empty(), self.active()) {
            return Err(err(
                ErrorCode::Forbidden,
                format!(
                    "meeting {} is on and nothing records it: the camera's picture is not \
                     taken without a recording; ask again once it is recorded or has ended",
                    m.meeting_id
                ),
            ));
        }
        out.push(Output::Effect(Effect::TakePreview));
        Ok(())
    }

    /// Participant actions need an active meeting the actor is in.
    fn check_participant(&self, p: &Id) -> Result<(), ErrorBody> {
        let Some(m) = &self.meeting else {
            return Err(err(
                ErrorCode::NoMeeting,
                "there is no meeting on this device; recording commands need an active meeting",
            ));
        };
        if self.active().is_none() {
            return Err(err(
                ErrorCode::NoMeeting,
                format!(
                    "meeting {} has ended; recording commands need an active meeting",
                    m.meeting_id
                ),
            ));
        }
        if !self.present(p) {
            return Err(err(
                ErrorCode::Forbidden,
                format!("{p} is not in meeting {}", m.meeting_id),
            ));
        }
        Ok(())
    }

    fn meeting_action(
        &mut self,
        p: &Id,
        action: &Action,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        match action {
            Action::Start {
                kind: RecordingKind::Cloud,
                silent,
                unmute,
            } => self.start_cloud(p, *silent, *unmute, now, out),
            Action::Start {
                kind: RecordingKind::Local,
                silent,
                unmute,
            } => self.start_local(p, *silent, *unmute, now, out),
            Action::Pause { target } => self.control(p, Control::Pause, *target, now, out),
            Action::Resume { target } => self.control(p, Control::Resume, *target, now, out),
            Action::Stop { target } => self.control(p, Control::Stop, *target, now, out),
            Action::RequestCloud => self.request_cloud(p, now, out),
            Action::ApproveCloud { requester } => self.approve_cloud(p, requester, now, out),
            Action::DenyCloud { requester } => self.deny_cloud(p, requester),
            Action::SetLocalPolicy { policy } => self.set_policy(p, *policy, now, out),
            Action::AllowLocal { participant } => self.allow_local(p, participant, now, out),
            Action::ForbidLocal { participant } => self.forbid_local(p, participant, now, out),
            Action::Mute { muted } => {
                self.require_team(p, "mute or unmute the microphone")?;
                self.set_muted(*muted, out);
                Ok(())
            }
            // Answered in `run` before the meeting checks; listed so a new action is not
            // silently accepted here.
            Action::Status
            | Action::Preview
            | Action::ListRecordings { .. }
            | Action::StopConversion { .. }
            | Action::Finalize { .. }
            | Action::Share { .. }
            | Action::Delete { .. } => Ok(()),
        }
    }

    /// X3: what a plain or targeted pause/resume/stop acts on.
    fn covered(
        &self,
        p: &Id,
        ctl: Control,
        target: Option<RecordingKind>,
    ) -> Result<Vec<usize>, ErrorBody> {
        let team = self.is_team(p);
        if target == Some(RecordingKind::Cloud) && !team {
            return Err(err(
                ErrorCode::Forbidden,
                format!(
                    "only the host and co-hosts can {} the cloud recording; {p} is a member",
                    ctl.verb()
                ),
            ));
        }
        let cloud = (team && target != Some(RecordingKind::Local))
            .then(|| self.live_cloud())
            .flatten();
        let local = (target != Some(RecordingKind::Cloud))
            .then(|| self.own_local(p))
            .flatten();
        let covered: Vec<usize> = cloud.into_iter().chain(local).collect();
        if covered.is_empty() {
            let what = match target {
                Some(RecordingKind::Cloud) => "there is no cloud recording running".to_owned(),
                Some(RecordingKind::Local) => format!("{p} has no local recording running"),
                None => format!("there is no recording running that {p} controls"),
            };
            return Err(err(
                ErrorCode::Conflict,
                format!("{what}, so there is nothing to {}", ctl.verb()),
            ));
        }
        Ok(covered)
    }

    /// X3, L6: one set of controls over the cloud recording and the actor's own local one.
    fn control(
        &mut self,
        p: &Id,
        ctl: Control,
        target: Option<RecordingKind>,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        for i in self.covered(p, ctl, target)? {
            let (from, to, kind) = match ctl {
                Control::Stop => {
                    self.stop_rec(i, StopReason::Command, Some(p), now, out);
                    continue;
                }
                Control::Pause => (
                    RecordingState::Recording,
                    RecordingState::Paused,
                    EventType::RecordingPaused,
                ),
                Control::Resume => (
                    RecordingState::Paused,
                    RecordingState::Recording,
                    EventType::RecordingResumed,
                ),
            };
            if self.recs[i].info.state != from {
                continue; // already where the command wants it
            }
            if !self.transition(i, to, now, out) {
                continue;
            }
            let mut ev = self.rec_event(kind, i, self.audience(&self.recs[i].info), now);
            ev.actor = Some(p.clone());
            out.push(Output::Event(ev));
        }
        Ok(())
    }

    /// The recording a management command names: the engine's copy, else the catalog's.
    fn locate(&self, recording_id: &Id, ctx: CommandContext) -> Result<RecordingInfo, ErrorBody> {
        if let Some(i) = self.find(recording_id) {
            return Ok(self.recs[i].info.clone());
        }
        match ctx.recording {
            Some(info) if info.recording_id == *recording_id => Ok(info),
            _ => Err(err(
                ErrorCode::NotFound,
                format!("there is no recording {recording_id} on this device"),
            )),
        }
    }

    /// L5, E2: the host of the recording's meeting (as last seen, or the current host of that
    /// meeting), an administrator, and for L5 also the owner. No active meeting is needed:
    /// these act on recordings, mostly after their meeting ended.
    fn may_manage(&self, actor: &Actor, info: &RecordingInfo, owner_too: bool) -> bool {
        let Actor::Participant(p) = actor else {
            return true;
        };
        let current_host = self
            .meeting
            .as_ref()
            .is_some_and(|m| m.meeting_id == info.meeting_id && m.host == *p);
        info.host == *p || current_host || (owner_too && info.owner == *p)
    }

    fn manage(
        &self,
        actor: &Actor,
        recording_id: &Id,
        ctx: CommandContext,
        owner_too: bool,
        verb: &str,
    ) -> Result<RecordingInfo, ErrorBody> {
        let info = self.locate(recording_id, ctx)?;
        if self.may_manage(actor, &info, owner_too) {
            return Ok(info);
        }
        let who = if owner_too {
            "the host of its meeting, its owner or an administrator"
        } else {
            "the host of its meeting or an administrator"
        };
        Err(err(
            ErrorCode::Forbidden,
            format!("only {who} can {verb} recording {recording_id}; {actor} is neither"),
        ))
    }

    /// L5: a conversion stopped by command leaves the recording to be finalized later.
    fn stop_conversion(
        &mut self,
        actor: &Actor,
        recording_id: &Id,
        ctx: CommandContext,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        let info = self.manage(actor, recording_id, ctx, true, "stop the conversion of")?;
        if info.state != RecordingState::Converting {
            return Err(err(
                ErrorCode::Conflict,
                format!("recording {recording_id} is {}, not converting; there is no conversion to stop", info.state.as_str()),
            ));
        }
        self.put_moved(info, RecordingState::NeedsFinalize, out)?;
        let recording_id = recording_id.clone();
        out.push(Output::Effect(Effect::StopConversion { recording_id }));
        Ok(())
    }

    /// L5: completes an interrupted recording. Local: converted again. Cloud (its upload
    /// failed): completion is retried.
    fn finalize(
        &mut self,
        actor: &Actor,
        recording_id: &Id,
        ctx: CommandContext,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        let info = self.manage(actor, recording_id, ctx, true, "finalize")?;
        if !matches!(
            info.state,
            RecordingState::NeedsFinalize | RecordingState::Failed
        ) {
            return Err(err(
                ErrorCode::Conflict,
                format!("recording {recording_id} is {}; only a recording that needs finalizing or has failed can be finalized", info.state.as_str()),
            ));
        }
        let (state, effect) = match info.kind {
            RecordingKind::Local => (
                RecordingState::Converting,
                Effect::Convert {
                    recording_id: recording_id.clone(),
                },
            ),
            RecordingKind::Cloud => (
                RecordingState::Stopped,
                Effect::CompleteCloud {
                    recording_id: recording_id.clone(),
                },
            ),
        };
        self.put_moved(info, state, out)?;
        out.push(Output::Effect(effect));
        Ok(())
    }

    /// E2: only a completed cloud recording has a manifest to mark.
    fn share(
        &mut self,
        actor: &Actor,
        recording_id: &Id,
        shared: bool,
        ctx: CommandContext,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        let info = self.manage(actor, recording_id, ctx, false, "share")?;
        if info.kind != RecordingKind::Cloud || info.state != RecordingState::Ready {
            return Err(err(
                ErrorCode::Conflict,
                format!("recording {recording_id} is a {} recording in state {}; only a completed (ready) cloud recording can be shared", info.kind.as_str(), info.state.as_str()),
            ));
        }
        let i = self.put(RecordingInfo { shared, ..info }, out);
        let recording_id = recording_id.clone();
        out.push(Output::Effect(Effect::Share {
            recording_id,
            shared,
        }));
        let mut ev = self.rec_event(EventType::RecordingShared, i, self.host_and_owner(i), now);
        ev.shared = Some(shared);
        ev.actor = actor.participant().cloned();
        out.push(Output::Event(ev));
        Ok(())
    }

    /// E2: a live recording or a running conversion must be stopped first.
    fn delete(
        &mut self,
        actor: &Actor,
        recording_id: &Id,
        ctx: CommandContext,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        let info = self.manage(actor, recording_id, ctx, false, "delete")?;
        let refusal = match info.state {
            s if s.is_live() => Some("is still being recorded; stop it first"),
            RecordingState::Converting => Some("is being converted; stop the conversion first"),
            RecordingState::Deleted => Some("is already deleted"),
            _ => None,
        };
        if let Some(why) = refusal {
            return Err(err(
                ErrorCode::Conflict,
                format!("recording {recording_id} {why}"),
            ));
        }
        let i = self.put_moved(info, RecordingState::Deleted, out)?;
        let recording_id = recording_id.clone();
        out.push(Output::Effect(Effect::Delete { recording_id }));
        let mut ev = self.rec_event(EventType::RecordingDeleted, i, self.host_and_owner(i), now);
        ev.actor = actor.participant().cloned();
        out.push(Output::Event(ev));
        Ok(())
    }

    /// E2's audience: the host of the recording's meeting and its creator (the owner).
    fn host_and_owner(&self, i: usize) -> Vec<Id> {
        let info = &self.recs[i].info;
        let mut to = vec![info.host.clone(), info.owner.clone()];
        to.sort();
        to.dedup();
        to
    }
}
