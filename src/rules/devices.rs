//! The capture devices as the rules see them: a recording cannot start while the camera or
//! the microphone is missing or unusable (`device_unavailable`), and the host team hears when
//! a device is lost or comes back mid-recording (the recording goes on with a "no signal"
//! picture or silence, so it is not stopped).
//!
//! Owns: the device problems media last reported. Must not touch: the devices.

use super::state::err;
use super::{Engine, Now, Output};
use crate::protocol::{ErrorBody, ErrorCode, Event, EventType};

impl Engine {
    pub(super) fn set_device_problems(&mut self, problems: Vec<String>) {
        self.device_problems = problems;
    }

    /// Refuses a start while a capture device is missing or unusable; it recovers when media
    /// reports the device usable.
    pub(super) fn check_devices(&self) -> Result<(), ErrorBody> {
        if self.device_problems.is_empty() {
            return Ok(());
        }
        Err(err(
            ErrorCode::DeviceUnavailable,
            format!(
                "cannot record: {}; check the device named, its connection and the service's access to it (status and the log say more; recording becomes possible by itself when it is usable)",
                self.device_problems.join(" and ")
            ),
        ))
    }

    /// A device lost (`back` false) or back mid-meeting: an event to the host team.
    pub(super) fn device_event(
        &mut self,
        device: String,
        back: bool,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let kind = if back {
            EventType::DeviceBack
        } else {
            EventType::DeviceLost
        };
        let mut ev = Event::new(kind, now.wall, self.team());
        ev.meeting_id = self.active().map(|m| m.meeting_id.clone());
        ev.reason = Some(device);
        out.push(Output::Event(ev));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CommandContext, Input, RulesConfig};
    use super::*;
    use crate::protocol::{Command, Licence, MeetingSnapshot, Reply, Timestamp};

    const MEETING: &str = r#"{"version":1,"meeting_id":"m-1","state":"active","creator":"u-1",
      "host":"u-1","cohosts":["u-2"],"participants":["u-1","u-2","u-3"],
      "account":{"tier":"business","cloud_quota_bytes":null}}"#;

    fn engine() -> (Engine, Now) {
        let now = Now {
            wall: Timestamp(1_800_000_000_000),
            mono_ms: 0,
        };
        let mut e = Engine::new(RulesConfig::default(), 1);
        let licence = Licence {
            kind: "rooms".into(),
            valid_until: Timestamp(4_000_000_000_000),
        };
        e.handle(Input::Licence(Some(licence)), now);
        e.handle(
            Input::Meeting(MeetingSnapshot::decode(MEETING.as_bytes()).unwrap()),
            now,
        );
        (e, now)
    }

    fn start_local(e: &mut Engine, now: Now) -> Reply {
        let cmd = Command::decode(br#"{"id":"s","actor":"u-1","action":"start","kind":"local"}"#)
            .unwrap();
        let out = e.handle(Input::Command(cmd, CommandContext::default()), now);
        out.iter()
            .find_map(Output::reply)
            .cloned()
            .expect("one reply")
    }

    #[test]
    fn a_missing_device_refuses_starts_until_it_is_back() {
        let (mut e, now) = engine();
        e.handle(
            Input::DevicesUnusable(vec!["the camera is missing".into()]),
            now,
        );
        let r = start_local(&mut e, now);
        let error = r.error.expect("refused");
        assert_eq!(error.code, ErrorCode::DeviceUnavailable);
        assert!(
            error
                .message
                .contains("cannot record: the camera is missing;"),
            "{}",
            error.message
        );
        e.handle(Input::DevicesUnusable(Vec::new()), now);
        assert!(
            start_local(&mut e, now).ok,
            "recovers when the device appears"
        );
    }

    #[test]
    fn a_device_lost_mid_recording_is_told_and_does_not_stop_it() {
        let (mut e, now) = engine();
        assert!(start_local(&mut e, now).ok);
        let out = e.handle(
            Input::DeviceChanged {
                device: "the camera /dev/video0".into(),
                back: false,
            },
            now,
        );
        let ev = out
            .iter()
            .find_map(|o| match o {
                Output::Event(ev) => Some(ev),
                _ => None,
            })
            .expect("an event");
        assert_eq!(ev.kind, EventType::DeviceLost);
        assert_eq!(
            ev.to.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            ["u-1", "u-2"]
        );
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Effect(super::super::Effect::SetCapture { .. }))),
            "capture goes on: {out:?}"
        );
    }
}
