//! Watermarks and transcription by account tier: W1–W4 and T1.
//!
//! Owns: the order of the tiers, what a meeting's `settings` put in force on its tier, the
//! events that say a setting was downgraded or refused (reason `tier`) or unreadable
//! (`settings_refused`), the marks media burns in or embeds ([`Marks`]) and the per-recording
//! transcription flag. Must not touch: how marks are drawn or embedded (media), recordings'
//! states.
//!
//! W4 follows from where the marks travel: with the capture set (`Effect::SetCapture`), which
//! media applies from the segment that set opens. A change of settings therefore starts a new
//! segment, and every later capture (after a pause, a device loss and return) gets the marks
//! in force then.

use super::{Engine, Now, Output};
use crate::protocol::{
    ErrorBody, ErrorCode, Event, EventType, Id, InForce, Meeting, RecordingState, Settings,
    VideoWatermark, WatermarkSettings,
};

/// The video watermark media burns into every video stream before encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VideoMark {
    #[default]
    Off,
    /// W1: the text once, semi-transparent, across the picture.
    Single(String),
    /// W2: the text tiled in staggered rows over the whole picture.
    Multi(String),
}

impl VideoMark {
    /// `off`, `single` or `multi`, for logs (the text stays out of them).
    pub fn name(&self) -> &'static str {
        match self {
            VideoMark::Off => "off",
            VideoMark::Single(_) => "single",
            VideoMark::Multi(_) => "multi",
        }
    }
}

/// Everything media marks a segment with; it takes effect from the segment a
/// `SetCapture` opens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    pub video: VideoMark,
    /// W3: the 48-bit payload the audio watermark carries ([`audio_payload`]); `None`: no
    /// audio watermark.
    pub audio: Option<u64>,
}

/// The account tiers, lowest first; each has everything the tiers below it have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Tier {
    Free,
    Pro,
    Business,
    Education,
    Enterprise,
    EducationPlus,
}

impl Tier {
    /// A missing or unknown tier is the lowest, as for quotas (C8): a tier the device does
    /// not know yet never gets more than the account pays for.
    pub fn of(tier: Option<&str>) -> Tier {
        match tier {
            Some("pro") => Tier::Pro,
            Some("business") => Tier::Business,
            Some("education") => Tier::Education,
            Some("enterprise") => Tier::Enterprise,
            Some("education_plus") => Tier::EducationPlus,
            _ => Tier::Free,
        }
    }
}

/// What the tier refused of the settings, each told once per meeting while it lasts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Refusals {
    /// W2: `multi` recorded as `single`.
    pub multi: bool,
    /// W3.
    pub audio: bool,
    /// T1.
    pub transcription: bool,
}

/// W1–W3, T1: what `settings` put in force on `tier`, and what the tier refused. The text
/// defaults to the device's id.
pub(super) fn decide(settings: &Settings, tier: Tier, device_id: &str) -> (InForce, Refusals) {
    let asked = &settings.watermark;
    let multi_ok = tier >= Tier::Business; // W2
    let pro = tier >= Tier::Pro; // W3, T1
    let video = match asked.video {
        VideoWatermark::Multi if !multi_ok => VideoWatermark::Single,
        v => v,
    };
    let text = (video != VideoWatermark::Off)
        .then(|| asked.text.clone().unwrap_or_else(|| device_id.to_owned()));
    let in_force = InForce {
        watermark: WatermarkSettings {
            video,
            text,
            audio: asked.audio && pro,
        },
        transcription: settings.transcription && pro,
    };
    let refused = Refusals {
        multi: asked.video == VideoWatermark::Multi && !multi_ok,
        audio: asked.audio && !pro,
        transcription: settings.transcription && !pro,
    };
    (in_force, refused)
}

/// W3: the payload that identifies a recording, 48 bits. A device id `r-<n>` with
/// n < 2^47 carries n itself, so a reader can name the recording; any other id carries the
/// top bit set and 47 bits of its FNV-1a hash.
pub fn audio_payload(recording_id: &Id) -> u64 {
    const LOW47: u64 = (1 << 47) - 1;
    if let Some(n) = numeric(recording_id).filter(|n| *n <= LOW47) {
        return n;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in recording_id.as_str().bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (1 << 47) | (hash & LOW47)
}

fn numeric(id: &Id) -> Option<u64> {
    id.as_str().strip_prefix("r-")?.parse().ok()
}

impl Engine {
    /// The watermark and transcription in force for the current meeting; all off without an
    /// active one.
    pub(super) fn in_force(&self) -> InForce {
        self.active()
            .map(|m| self.decide_for(m).0)
            .unwrap_or_default()
    }

    fn decide_for(&self, m: &Meeting) -> (InForce, Refusals) {
        let tier = Tier::of(m.account.tier.as_deref());
        decide(&m.settings, tier, &self.config.device_id)
    }

    /// The marks for a capture of `recordings` (sorted ids). The audio payload names the
    /// first-created of them: one segment can carry one mark, and the recordings sharing it
    /// all started in this meeting.
    pub(super) fn marks_for(&self, recordings: &[Id]) -> Marks {
        let f = self.in_force();
        let text = f.watermark.text.unwrap_or_default();
        let video = match f.watermark.video {
            VideoWatermark::Off => VideoMark::Off,
            VideoWatermark::Single => VideoMark::Single(text),
            VideoWatermark::Multi => VideoMark::Multi(text),
        };
        let first = recordings
            .iter()
            .min_by_key(|id| (numeric(id).unwrap_or(u64::MAX), id.as_str().to_owned()));
        Marks {
            video,
            audio: first.filter(|_| f.watermark.audio).map(audio_payload),
        }
    }

    /// After a snapshot applied: tells the host team what the tier refused (once per meeting
    /// while it lasts) and why the settings could not be read; marks live recordings of the
    /// meeting for transcription while it is in force (T1).
    pub(super) fn apply_settings(&mut self, now: Now, out: &mut Vec<Output>) {
        let Some(m) = self.active().cloned() else {
            self.refusals = Refusals::default();
            self.settings_refused = None;
            return;
        };
        let (in_force, refused) = self.decide_for(&m);
        let tier = m.account.tier.clone().unwrap_or_else(|| "free".into());
        let told = self.refusals;
        for (now_refused, before, kind) in [
            (refused.multi, told.multi, EventType::WatermarkDowngraded),
            (
                refused.audio,
                told.audio,
                EventType::AudioWatermarkUnavailable,
            ),
            (
                refused.transcription,
                told.transcription,
                EventType::TranscriptionUnavailable,
            ),
        ] {
            if now_refused && !before {
                let mut ev = Event::new(kind, now.wall, self.team());
                ev.meeting_id = Some(m.meeting_id.clone());
                ev.reason = Some("tier".into());
                out.push(Output::Event(ev));
                tracing::info!(meeting_id = %m.meeting_id, tier, event = ?kind, "setting not in this tier");
            }
        }
        self.refusals = refused;
        if m.settings.refused != self.settings_refused {
            if let Some(message) = &m.settings.refused {
                let mut ev = Event::new(EventType::SettingsRefused, now.wall, self.team());
                ev.meeting_id = Some(m.meeting_id.clone());
                ev.error = Some(ErrorBody::new(ErrorCode::BadRequest, message.clone()));
                out.push(Output::Event(ev));
                tracing::warn!(meeting_id = %m.meeting_id, %message, "meeting settings refused");
            }
            self.settings_refused = m.settings.refused.clone();
        }
        if in_force.transcription {
            self.flag_transcription(&m.meeting_id, out);
        }
    }

    /// T1: every live recording of the meeting is to be transcribed (a flag that stays once
    /// set: the transcript covers the recording as a whole).
    fn flag_transcription(&mut self, meeting_id: &Id, out: &mut Vec<Output>) {
        for rec in &mut self.recs {
            let live = matches!(
                rec.info.state,
                RecordingState::Recording | RecordingState::Paused
            );
            if live && rec.info.meeting_id == *meeting_id && !rec.info.transcription {
                rec.info.transcription = true;
                out.push(Output::Effect(super::Effect::SaveRecording(
                    rec.info.clone(),
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_and_unknown_ones_are_the_lowest() {
        let order = [
            "free",
            "pro",
            "business",
            "education",
            "enterprise",
            "education_plus",
        ];
        for pair in order.windows(2) {
            assert!(
                Tier::of(Some(pair[0])) < Tier::of(Some(pair[1])),
                "{pair:?}"
            );
        }
        assert_eq!(Tier::of(Some("platinum")), Tier::Free);
        assert_eq!(Tier::of(None), Tier::Free);
    }

    #[test]
    fn audio_payloads_fit_48_bits_and_name_device_ids() {
        let id = |s: &str| Id::parse(s).unwrap();
        assert_eq!(audio_payload(&id("r-17")), 17);
        for s in ["rec-x", "r-999999999999999999", "r-"] {
            let p = audio_payload(&id(s));
            assert!((1 << 47..1 << 48).contains(&p), "{s}: {p:#x}");
        }
        assert_ne!(audio_payload(&id("rec-a")), audio_payload(&id("rec-b")));
    }
}
