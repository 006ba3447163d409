//! The media barrier: effects that need every segment of their recording sealed wait here
//! until media releases the recording.
//!
//! Owns: the set of recordings media may still have unsealed segments for (sent to capture,
//! not yet released) and the effects held for them. Must not touch: media, the catalog, the
//! clock (instants are given), so it is tested without tokio.
//!
//! Why: a conversion or a cloud completion started at meeting end lost up to 3 s, the last
//! segment still being written. Media says `Released` once no later segment can carry a
//! recording (normally well under a second); past a timeout the effect goes ahead anyway,
//! since waiting for ever is worse than missing a segment.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::protocol::Id;
use crate::rules::Effect;

/// How long an effect waits for media to seal its recording's last segment.
pub const MEDIA_RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct MediaBarrier {
    capturing: HashSet<Id>,
    held: Vec<(Effect, Instant)>,
}

impl MediaBarrier {
    /// Media was asked to capture these recordings.
    pub fn capturing(&mut self, recordings: &[Id]) {
        self.capturing.extend(recordings.iter().cloned());
    }

    /// Media sealed the last segment these recordings can have.
    pub fn released(&mut self, recordings: &[Id]) {
        for id in recordings {
            self.capturing.remove(id);
        }
    }

    /// Lets `effect` through now, or holds it (and returns `None`) while its recording may
    /// still get a segment.
    pub fn pass(&mut self, effect: Effect, now: Instant) -> Option<Effect> {
        match waits_for_media(&effect) {
            Some(id) if self.capturing.contains(id) => {
                self.held.push((effect, now));
                None
            }
            _ => Some(effect),
        }
    }

    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The held effects whose recording was released, and those held longer than `timeout`
    /// (a warning each: media never confirmed), in the order they were held.
    pub fn ready(&mut self, now: Instant, timeout: Duration) -> Vec<Effect> {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(effect, since)| {
                waits_for_media(effect).is_none_or(|id| !self.capturing.contains(id))
                    || now.duration_since(*since) > timeout
            });
        self.held = waiting;
        ready
            .into_iter()
            .map(|(effect, since)| {
                if let Some(id) = waits_for_media(&effect) {
                    if self.capturing.remove(id) {
                        warn!(recording = %id, waited_s = now.duration_since(since).as_secs(),
                            "media never confirmed the last segment; going ahead without waiting longer");
                    }
                }
                effect
            })
            .collect()
    }
}

/// Effects that need every segment of their recording sealed first.
fn waits_for_media(effect: &Effect) -> Option<&Id> {
    match effect {
        Effect::Convert { recording_id } | Effect::CompleteCloud { recording_id } => {
            Some(recording_id)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse(s).expect("valid id")
    }

    fn convert(rid: &str) -> Effect {
        Effect::Convert {
            recording_id: id(rid),
        }
    }

    #[test]
    fn a_conversion_waits_until_its_recording_is_released() {
        let (t0, mut barrier) = (Instant::now(), MediaBarrier::default());
        barrier.capturing(&[id("r-1"), id("r-2")]);
        assert!(barrier.pass(convert("r-1"), t0).is_none());
        assert!(barrier.is_holding());
        assert!(barrier.ready(t0, MEDIA_RELEASE_TIMEOUT).is_empty());
        barrier.released(&[id("r-1")]);
        let ready = barrier.ready(t0 + Duration::from_secs(1), MEDIA_RELEASE_TIMEOUT);
        assert_eq!(ready, [convert("r-1")]);
        assert!(!barrier.is_holding());
    }

    #[test]
    fn effects_of_released_recordings_and_other_effects_pass_at_once() {
        let (t0, mut barrier) = (Instant::now(), MediaBarrier::default());
        barrier.capturing(&[id("r-1")]);
        barrier.released(&[id("r-1")]);
        assert_eq!(barrier.pass(convert("r-1"), t0), Some(convert("r-1")));
        barrier.capturing(&[id("r-2")]);
        let mute = Effect::SetMuted(true);
        assert_eq!(barrier.pass(mute.clone(), t0), Some(mute));
    }

    #[test]
    fn an_effect_held_past_the_timeout_goes_ahead_and_is_forgotten() {
        let (t0, mut barrier) = (Instant::now(), MediaBarrier::default());
        barrier.capturing(&[id("r-1")]);
        let complete = Effect::CompleteCloud {
            recording_id: id("r-1"),
        };
        assert!(barrier.pass(complete.clone(), t0).is_none());
        let at_timeout = t0 + MEDIA_RELEASE_TIMEOUT;
        assert!(barrier.ready(at_timeout, MEDIA_RELEASE_TIMEOUT).is_empty());
        let late = at_timeout + Duration::from_millis(1);
        assert_eq!(barrier.ready(late, MEDIA_RELEASE_TIMEOUT), [complete]);
        // The recording no longer counts as capturing: a later conversion is not held.
        assert!(barrier.pass(convert("r-1"), late).is_some());
    }
}
