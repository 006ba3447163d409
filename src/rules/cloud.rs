//! Cloud recording: C1–C8, and the device licence (D1) and microphone (M1) checks every start
//! shares with local recording.
//!
//! Must not touch: local recordings (see `local`), except X1's check of the starter's own.

use super::state::{err, DeviceLicence};
use super::{Effect, Engine, Now, Output};
use crate::protocol::{
    Account, ErrorBody, ErrorCode, EventType, Id, RecordingInfo, RecordingKind, RecordingState,
    StopReason,
};

const GIB: u64 = 1 << 30;

/// C8: the quota in bytes, `None` when unlimited. Add-on packs are already included in the
/// number a snapshot carries; only a snapshot without one falls back to the tier table.
pub(super) fn quota_bytes(account: &Account) -> Option<u64> {
    if let Some(quota) = account.cloud_quota_bytes {
        return quota;
    }
    let gib = match account.tier.as_deref() {
        Some("enterprise" | "education_plus") => return None,
        Some("free_organisation" | "organisation") => 20,
        Some("pro") => 100,
        Some("business" | "education") => 400,
        // "free", a missing tier and an unknown one: the smallest quota, so a tier the
        // device does not know yet can never record beyond what the account pays for.
        _ => 1,
    };
    Some(gib * GIB)
}

impl Engine {
    /// C1, C3, X1, C7, C8, D1, M1: `start` with `kind: cloud`.
    pub(super) fn start_cloud(
        &mut self,
        actor: &Id,
        silent: bool,
        unmute: bool,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        if !self.is_team(actor) {
            return Err(err(
                ErrorCode::Forbidden,
                "only the host and co-hosts can start cloud recording; ask the host or send request_cloud",
            ));
        }
        if self.live_cloud().is_some() {
            return Ok(()); // C3: starting it again is not an error
        }
        self.begin_cloud(actor, Mic::Start { silent, unmute }, now, out)
    }

    /// C2: a member asks the host team to start cloud recording.
    pub(super) fn request_cloud(
        &mut self,
        actor: &Id,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        if self.is_team(actor) {
            return Err(err(
                ErrorCode::Conflict,
                format!("{actor} is a host or co-host and can start cloud recording directly with start kind cloud"),
            ));
        }
        if self.live_cloud().is_some() || self.pending.contains(actor) {
            return Ok(());
        }
        // Refused up front, so a member is not left waiting for an approval that must fail.
        self.cloud_available(now)?;
        self.pending.push(actor.clone());
        if self.pending.len() == 1 {
            let to = self.team();
            out.push(self.request_event(EventType::CloudRecordRequested, to, actor, actor, now));
        }
        Ok(())
    }

    /// C2: approving starts cloud recording as if the approver had started it.
    pub(super) fn approve_cloud(
        &mut self,
        actor: &Id,
        requester: &Id,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        self.require_team(actor, "approve cloud recording requests")?;
        if !self.pending.contains(requester) {
            return Err(err(
                ErrorCode::NotFound,
                format!("{requester} has no pending cloud recording request"),
            ));
        }
        if self.live_cloud().is_some() {
            self.pending.clear();
            return Ok(());
        }
        self.begin_cloud(actor, Mic::Approve, now, out)
    }

    /// C2: denying drops that one request.
    pub(super) fn deny_cloud(&mut self, actor: &Id, requester: &Id) -> Result<(), ErrorBody> {
        self.require_team(actor, "deny cloud recording requests")?;
        let before = self.pending.len();
        self.pending.retain(|p| p != requester);
        if self.pending.len() == before {
            return Err(err(
                ErrorCode::NotFound,
                format!("{requester} has no pending cloud recording request"),
            ));
        }
        Ok(())
    }

    pub(super) fn require_team(&self, actor: &Id, what: &str) -> Result<(), ErrorBody> {
        if self.is_team(actor) {
            return Ok(());
        }
        Err(err(
            ErrorCode::Forbidden,
            format!("only the host and co-hosts can {what}; {actor} is a member"),
        ))
    }

    fn begin_cloud(
        &mut self,
        starter: &Id,
        mic: Mic,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<(), ErrorBody> {
        if self.own_local(starter).is_some() {
            return Err(err(
                ErrorCode::Conflict,
                format!("{starter} is recording locally and cannot also start cloud recording; stop the local recording first, or ask another host or co-host to start it"),
            )); // X1
        }
        self.cloud_available(now)?;
        self.confirm_mic(mic, out)?;
        let Some(m) = self.active() else {
            return Err(err(ErrorCode::NoMeeting, "there is no active meeting"));
        };
        let owner = m.creator.clone(); // C4
        self.create(RecordingKind::Cloud, owner, starter, now, out);
        self.pending.clear(); // C2: any request is satisfied now
        Ok(())
    }

    /// Creates a recording in state `recording` and announces it.
    pub(super) fn create(
        &mut self,
        kind: RecordingKind,
        owner: Id,
        starter: &Id,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Some((meeting_id, host)) = self
            .active()
            .map(|m| (m.meeting_id.clone(), m.host.clone()))
        else {
            return;
        };
        let recording_id = Id::parse(&format!("r-{}", self.next_recording))
            .expect("r-<number> is always a valid id");
        self.next_recording += 1;
        let info = RecordingInfo {
            recording_id,
            meeting_id,
            kind,
            owner,
            started_by: starter.clone(),
            host,
            state: RecordingState::Recording,
            created_at: now.wall,
            recorded_ms: 0,
            bytes: 0,
            shared: false,
            location: None,
            transcription: self.in_force().transcription, // T1
        };
        let i = self.put(info, out);
        self.recs[i].since = Some(now.mono_ms);
        let mut ev = self.rec_event(
            EventType::RecordingStarted,
            i,
            self.audience(&self.recs[i].info),
            now,
        );
        ev.actor = Some(starter.clone());
        out.push(Output::Event(ev));
    }

    /// Whether a cloud recording could start now, quota aside from the state's point of view.
    fn cloud_available(&self, now: Now) -> Result<(), ErrorBody> {
        if !self.config.cloud_available {
            return Err(err(
                ErrorCode::Conflict,
                "cloud recording is not available on this device: no upload target is configured",
            ));
        }
        self.check_device_licence(now)?; // D1
        self.check_account_licence(now)?; // C7
        if self.quota_short(true) {
            return Err(err(
                ErrorCode::QuotaExhausted,
                "the meeting creator's cloud storage is full; free space or add storage to record to the cloud, or record locally",
            )); // C8
        }
        self.check_devices()?;
        self.check_room() // disk budget: cloud segments are written here first
    }

    /// `cloud.state` is `unavailable` while cloud recording could not be started for a reason
    /// other than the quota (C7, D1, no upload target).
    pub(super) fn cloud_unavailable(&self, now: Now) -> bool {
        !self.config.cloud_available || !self.device_licence_valid(now) || self.account_expired(now)
    }

    fn account_expired(&self, now: Now) -> bool {
        self.active()
            .and_then(|m| m.account.licence_expires_at)
            .is_some_and(|t| t <= now.wall)
    }

    /// C7. A snapshot without `licence_expires_at` carries no paid licence to expire.
    fn check_account_licence(&self, now: Now) -> Result<(), ErrorBody> {
        let Some(m) = self.active() else {
            return Ok(());
        };
        match m.account.licence_expires_at {
            Some(t) if t <= now.wall => Err(err(
                ErrorCode::LicenceExpired,
                format!(
                    "the paid licence of {}'s account expired at {}; cloud recording cannot be started, but local recording can",
                    m.creator,
                    t.to_rfc3339()
                ),
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn device_licence_valid(&self, now: Now) -> bool {
        matches!(&self.licence, DeviceLicence::Held(l) if l.is_valid_rooms(now.wall))
    }

    /// D1: every start needs a valid Rooms licence; running recordings are left alone.
    pub(super) fn check_device_licence(&self, now: Now) -> Result<(), ErrorBody> {
        let problem = match &self.licence {
            DeviceLicence::Held(l) if l.is_valid_rooms(now.wall) => return Ok(()),
            DeviceLicence::NotReceived => {
                "the device has not received its Rooms licence yet; recording starts are possible once it arrives".to_owned()
            }
            DeviceLicence::Absent => {
                "the device has no Rooms licence; ask an administrator to install one".to_owned()
            }
            DeviceLicence::Held(l) if l.kind != "rooms" => format!(
                "the device licence is of kind {:?}, not a Rooms licence; ask an administrator to install a Rooms licence",
                l.kind
            ),
            DeviceLicence::Held(l) => format!(
                "the device's Rooms licence expired at {}; ask an administrator to renew it",
                l.valid_until.to_rfc3339()
            ),
        };
        Err(err(ErrorCode::LicenceExpired, problem))
    }

    /// M1: a start while the microphone is muted needs the sender to say what they want.
    pub(super) fn confirm_mic(&mut self, mic: Mic, out: &mut Vec<Output>) -> Result<(), ErrorBody> {
        if !self.muted {
            return Ok(());
        }
        let message = match mic {
            Mic::Start { silent: true, .. } => return Ok(()),
            Mic::Start { unmute: true, .. } => {
                self.set_muted(false, out);
                return Ok(());
            }
            Mic::Start { .. } => "the microphone is muted; send the start again with unmute: true to unmute and record, or with silent: true to record without sound",
            Mic::Approve => "the microphone is muted; unmute it with the mute command and approve again, or start cloud recording with silent: true to record without sound",
        };
        let mut body = err(ErrorCode::NeedsConfirmation, message);
        body.reason = Some("muted".into());
        Err(body)
    }

    pub(super) fn set_muted(&mut self, muted: bool, out: &mut Vec<Output>) {
        self.muted = muted;
        out.push(Output::Effect(Effect::SetMuted(muted)));
    }

    /// C8: bytes per second, measured from sealed cloud segments once there are any.
    pub(super) fn bitrate(&self) -> u64 {
        let measured = (self.meter.cloud_ms > 0).then(|| {
            let per_s = u128::from(self.meter.cloud_bytes) * 1000 / u128::from(self.meter.cloud_ms);
            u64::try_from(per_s).unwrap_or(u64::MAX)
        });
        measured.unwrap_or(self.config.reference_bytes_per_s).max(1)
    }

    /// Quota bytes left for the current meeting's creator; `None` when unlimited or no meeting.
    fn remaining_bytes(&self) -> Option<u64> {
        let m = self.active()?;
        let quota = quota_bytes(&m.account)?;
        let this_meeting: u64 = self
            .recs
            .iter()
            .filter(|r| r.info.kind == RecordingKind::Cloud && self.in_current(r))
            .map(|r| r.info.bytes)
            .sum();
        let used = m.account.cloud_used_bytes.saturating_add(this_meeting);
        Some(quota.saturating_sub(used))
    }

    pub(super) fn remaining_s(&self) -> Option<u64> {
        self.remaining_bytes().map(|b| b / self.bitrate())
    }

    /// C8: would the next `quota_headroom_ms` of recording overrun the quota? A start needs
    /// strictly more than that left; a running recording stops only once it would overrun,
    /// so one that just started is not stopped by the same margin that let it start.
    fn quota_short(&self, starting: bool) -> bool {
        let Some(left) = self.remaining_bytes() else {
            return false;
        };
        let need = u128::from(self.bitrate()) * u128::from(self.config.quota_headroom_ms) / 1000;
        let left = u128::from(left);
        if starting {
            left <= need
        } else {
            left < need
        }
    }

    /// C8: stops the running cloud recording before it overruns the quota.
    pub(super) fn enforce_quota(&mut self, now: Now, out: &mut Vec<Output>) {
        if let Some(i) = self.live_cloud() {
            if self.quota_short(false) {
                self.stop_rec(i, StopReason::QuotaExhausted, None, now, out);
            }
        }
    }
}

/// How a start came in, for M1's answer.
#[derive(Clone, Copy, Debug)]
pub(super) enum Mic {
    Start {
        silent: bool,
        unmute: bool,
    },
    /// `approve_cloud` carries no `silent` or `unmute`.
    Approve,
}
