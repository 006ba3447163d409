//! Local recording: who may record (L1–L3), starting one (with X1, D1, M1), and the guarantee
//! that no one without permission ever holds a live local recording.
//!
//! Must not touch: the cloud recording, conversion (see `lifecycle`).

use super::cloud::Mic;
use super::state::err;
use super::{Engine, Now, Output};
use crate::protocol::{
    ErrorBody, ErrorCode, EventType, Id, LocalPolicy, RecordingKind, StopReason,
};

impl Engine {
    /// L1: the host always; co-hosts count as anyone else.
    pub(super) fn may_record_local(&self, id: &Id) -> bool {
        if self.is_host(id) {
            return true;
        }
        match self.policy {
            LocalPolicy::HostOnly => false,
            LocalPolicy::All => true,
            LocalPolicy::Selected => self.allowed.contains(id),
        }
    }

    /// L1, L3, X1, D1, M1: `start` with `kind: local`.
    pub(super) fn start_local(
        &mut self,
        actor: &Id,
        silent: bool,
        unmute: bool,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        if !self.may_record_local(actor) {
            self.relay_local_request(actor, now, out); // L3
            return Err(err(
                ErrorCode::Forbidden,
                format!("{actor} may not record locally in this meeting; the host has been asked to allow it"),
            ));
        }
        if self.own_local(actor).is_some() {
            return Ok(()); // like C3: the reply carries the current state
        }
        if let Some(i) = self.live_cloud() {
            if self.recs[i].info.started_by == *actor {
                return Err(err(
                    ErrorCode::Conflict,
                    format!("{actor} started the cloud recording and cannot also record locally; stop the cloud recording first"),
                )); // X1
            }
        }
        self.check_device_licence(now)?; // D1
        self.check_devices()?;
        self.check_room()?; // disk budget
        self.confirm_mic(Mic::Start { silent, unmute }, out)?; // M1
        self.create(RecordingKind::Local, actor.clone(), actor, now, out);
        Ok(())
    }

    /// L3: every refused start asks the host again; the host may have missed the last one.
    fn relay_local_request(&self, actor: &Id, now: Now, out: &mut Vec<Output>) {
        let Some(m) = self.active() else { return };
        let to = vec![m.host.clone()];
        out.push(self.request_event(EventType::LocalRecordRequested, to, actor, actor, now));
    }

    /// L1: the host sets the policy; recordings it no longer permits stop (L2).
    pub(super) fn set_policy(
        &mut self,
        actor: &Id,
        policy: LocalPolicy,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        self.require_host(actor, "set the local recording policy")?;
        self.policy = policy;
        self.enforce_permissions(now, out);
        Ok(())
    }

    /// L2, L3: allowing someone under `host_only` switches to `selected`; they are told.
    pub(super) fn allow_local(
        &mut self,
        actor: &Id,
        participant: &Id,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        self.require_host(actor, "allow local recording")?;
        self.refuse_host_target(participant)?;
        self.allowed.insert(participant.clone());
        if self.policy == LocalPolicy::HostOnly {
            self.policy = LocalPolicy::Selected;
        }
        let to = vec![participant.clone()];
        out.push(self.request_event(
            EventType::LocalRecordingAllowed,
            to,
            actor,
            participant,
            now,
        ));
        Ok(())
    }

    /// L2: forbidding stops their recording, which is kept. Under `all` the forbid must take
    /// effect too, so the policy becomes `selected` with everyone else present allowed.
    pub(super) fn forbid_local(
        &mut self,
        actor: &Id,
        participant: &Id,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        self.require_host(actor, "forbid local recording")?;
        self.refuse_host_target(participant)?;
        if self.policy == LocalPolicy::All {
            let others = self.active().map(|m| {
                m.participants
                    .iter()
                    .filter(|p| **p != m.host && *p != participant)
                    .cloned()
                    .collect::<Vec<_>>()
            });
            self.allowed.extend(others.unwrap_or_default());
            self.policy = LocalPolicy::Selected;
        }
        self.allowed.remove(participant);
        self.enforce_permissions(now, out);
        Ok(())
    }

    fn require_host(&self, actor: &Id, what: &str) -> Result<(), ErrorBody> {
        if self.is_host(actor) {
            return Ok(());
        }
        Err(err(
            ErrorCode::Forbidden,
            format!("only the host can {what}; {actor} is not the host"),
        ))
    }

    fn refuse_host_target(&self, participant: &Id) -> Result<(), ErrorBody> {
        if !self.is_host(participant) {
            return Ok(());
        }
        Err(err(
            ErrorCode::Conflict,
            format!("{participant} is the host, who may always record locally"),
        ))
    }

    /// L2, L3: after any roster or policy change, a live local recording whose owner left or
    /// lost permission stops (and is kept, or discarded when too short).
    pub(super) fn enforce_permissions(&mut self, now: Now, out: &mut Vec<Output>) {
        for i in 0..self.recs.len() {
            let rec = &self.recs[i];
            if rec.info.kind != RecordingKind::Local || !rec.is_live() || !self.in_current(rec) {
                continue;
            }
            let owner = &rec.info.owner;
            let reason = if !self.present(owner) {
                StopReason::OwnerLeft
            } else if !self.may_record_local(owner) {
                StopReason::Forbidden
            } else {
                continue;
            };
            self.stop_rec(i, reason, None, now, out);
        }
    }
}
