//! Health alarms: which are raised, since when, and when they clear.
//!
//! Owns: the alarm table. Each alarm is one row of [`RULES`]: its id, severity, the advice a
//! person reads, a condition over the latest facts, and how long the condition must hold
//! before the alarm is raised. Facts and time come in ([`Fact`], [`Now`] from the daemon's
//! clock); raised and cleared alarms come out ([`Change`]). Pure and synchronous, so the table
//! is tested row by row with a clock the test drives.
//! Must not touch: I/O, clocks, channels, MQTT: the core publishes the changes as events and
//! lists [`Alarms::active`] in `status`.
//!
//! Adding an alarm (picture frozen, disk low, upload backlog, clock, device lost): a variant of
//! `protocol::AlarmId`, the facts it needs in [`Fact`] and [`Inputs`], one row in [`RULES`],
//! and its rows in the tests.

use crate::protocol::{Alarm, AlarmId, Event, EventType, Severity, Timestamp};
use crate::rules::Now;

/// Below this RMS the microphone counts as silent (the threshold).
pub const SILENT_BELOW_DBFS: f64 = -60.0;
/// How long the microphone must stay silent before the alarm is raised.
pub const SILENT_FOR_MS: u64 = 30_000;

/// What the alarms are decided from; each fact replaces what the table knew of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fact {
    /// Capture runs for at least one recording (true) or for none (false).
    Capturing(bool),
    /// The microphone is muted (M1) or live.
    Muted(bool),
    /// The recorded sound's RMS over the last level interval, all channels together.
    Levels { rms_dbfs: f64 },
    /// Time passed (the core's tick): hold times run out without a new fact.
    Tick,
}

/// The latest of every fact.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Inputs {
    capturing: bool,
    muted: bool,
    /// `None` until the first reading of this capture and after a mute change (a reading of
    /// the other state may still be on its way).
    rms_dbfs: Option<f64>,
}

impl Inputs {
    fn apply(&mut self, fact: Fact) {
        match fact {
            Fact::Capturing(on) => {
                self.capturing = on;
                self.rms_dbfs = None;
            }
            Fact::Muted(muted) => {
                if muted != self.muted {
                    self.rms_dbfs = None;
                }
                self.muted = muted;
            }
            Fact::Levels { rms_dbfs } => self.rms_dbfs = Some(rms_dbfs),
            Fact::Tick => {}
        }
    }
}

/// One alarm of the table.
struct Rule {
    id: AlarmId,
    severity: Severity,
    /// How long `holds` must be true before the alarm is raised.
    hold_ms: u64,
    message: &'static str,
    holds: fn(&Inputs) -> bool,
}

/// The alarm table.
const RULES: &[Rule] = &[Rule {
    id: AlarmId::MicrophoneSilent,
    severity: Severity::Critical,
    hold_ms: SILENT_FOR_MS,
    message: "The microphone has recorded only silence (below -60 dBFS) for 30 s while not \
              muted: check that it is plugged in, switched on and not muted on the microphone \
              itself; the recording goes on.",
    holds: microphone_silent,
}];

fn microphone_silent(i: &Inputs) -> bool {
    i.capturing && !i.muted && i.rms_dbfs.is_some_and(|rms| rms < SILENT_BELOW_DBFS)
}

/// An alarm raised or cleared by one fact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Raised(Alarm),
    /// The alarm as it was raised.
    Cleared(Alarm),
}

impl Change {
    /// The event that tells of it (`to` is empty: alarms are for whoever watches the device,
    /// not for a meeting's participants).
    pub fn event(&self, at: Timestamp) -> Event {
        let (kind, alarm) = match self {
            Change::Raised(a) => (EventType::AlarmRaised, a),
            Change::Cleared(a) => (EventType::AlarmCleared, a),
        };
        let mut event = Event::new(kind, at, Vec::new());
        event.alarm = Some(alarm.clone());
        event
    }
}

/// Per rule: since when its condition holds, and whether the alarm is raised.
#[derive(Clone, Copy, Debug, Default)]
struct Watch {
    since: Option<(u64, Timestamp)>,
    raised: bool,
}

/// The alarm table's state.
#[derive(Debug)]
pub struct Alarms {
    inputs: Inputs,
    /// One per row of [`RULES`], in order.
    watches: Vec<Watch>,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms {
            inputs: Inputs::default(),
            watches: vec![Watch::default(); RULES.len()],
        }
    }
}

impl Alarms {
    /// Takes `fact` at `now`; returns the alarms it raised or cleared, in table order.
    pub fn observe(&mut self, fact: Fact, now: Now) -> Vec<Change> {
        self.inputs.apply(fact);
        let mut changes = Vec::new();
        for (rule, watch) in RULES.iter().zip(self.watches.iter_mut()) {
            if !(rule.holds)(&self.inputs) {
                if watch.raised {
                    changes.push(Change::Cleared(alarm(rule, watch)));
                }
                *watch = Watch::default();
                continue;
            }
            let (since_ms, _) = *watch.since.get_or_insert((now.mono_ms, now.wall));
            if !watch.raised && now.mono_ms.saturating_sub(since_ms) >= rule.hold_ms {
                watch.raised = true;
                changes.push(Change::Raised(alarm(rule, watch)));
            }
        }
        changes
    }

    /// The alarms raised and not cleared, oldest first.
    pub fn active(&self) -> Vec<Alarm> {
        let mut active: Vec<Alarm> = RULES
            .iter()
            .zip(&self.watches)
            .filter(|(_, w)| w.raised)
            .map(|(rule, watch)| alarm(rule, watch))
            .collect();
        active.sort_by_key(|a| a.since);
        active
    }
}

fn alarm(rule: &Rule, watch: &Watch) -> Alarm {
    Alarm {
        id: rule.id,
        severity: rule.severity,
        since: watch.since.map_or(Timestamp(0), |(_, wall)| wall),
        message: rule.message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` after a start at 2027-01-01T00:00:00Z, on both clocks.
    fn at(ms: u64) -> Now {
        Now {
            wall: Timestamp(1_798_761_600_000 + ms as i64),
            mono_ms: ms,
        }
    }

    const QUIET: Fact = Fact::Levels { rms_dbfs: -75.0 };
    const TONE: Fact = Fact::Levels { rms_dbfs: -5.0 };

    /// Feeds `(ms, fact)` in order; returns what each step changed, as "+id" / "-id".
    fn run(steps: &[(u64, Fact)]) -> (Alarms, Vec<(u64, Vec<String>)>) {
        let mut alarms = Alarms::default();
        let mut out = Vec::new();
        for &(ms, fact) in steps {
            let changes = alarms.observe(fact, at(ms));
            let names = changes
                .iter()
                .map(|c| match c {
                    Change::Raised(a) => format!("+{}", wire(a.id)),
                    Change::Cleared(a) => format!("-{}", wire(a.id)),
                })
                .collect::<Vec<_>>();
            if !names.is_empty() {
                out.push((ms, names));
            }
        }
        (alarms, out)
    }

    fn wire(id: AlarmId) -> String {
        serde_json::to_value(id)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn changes(list: &[(u64, &str)]) -> Vec<(u64, Vec<String>)> {
        list.iter()
            .map(|(ms, c)| (*ms, vec![c.to_string()]))
            .collect()
    }

    /// Silence from the first silent reading: raised once 30 s later, and only once.
    #[test]
    fn microphone_silent_is_raised_after_30_s_of_silence_while_recording() {
        let (alarms, seen) = run(&[
            (0, Fact::Capturing(true)),
            (500, QUIET),
            (30_000, QUIET),
            (30_499, Fact::Tick),
            (30_500, QUIET),
            (31_000, QUIET),
            (40_000, Fact::Tick),
        ]);
        assert_eq!(seen, changes(&[(30_500, "+microphone_silent")]));
        let active = alarms.active();
        assert_eq!(active.len(), 1, "{active:?}");
        assert_eq!(active[0].severity, Severity::Critical);
        assert_eq!(active[0].since, at(500).wall, "since the silence began");
        assert!(active[0].message.contains("check that it is plugged in"));
    }

    /// The hold time also runs out on a tick, with no new reading.
    #[test]
    fn microphone_silent_is_raised_by_a_tick_once_the_hold_ran_out() {
        let (_, seen) = run(&[
            (0, Fact::Capturing(true)),
            (1_000, QUIET),
            (31_000, Fact::Tick),
        ]);
        assert_eq!(seen, changes(&[(31_000, "+microphone_silent")]));
    }

    #[test]
    fn microphone_silent_clears_when_sound_returns_and_counts_afresh_after() {
        let (alarms, seen) = run(&[
            (0, Fact::Capturing(true)),
            (0, QUIET),
            (30_000, QUIET),
            (35_000, TONE),
            (36_000, QUIET),
            (65_999, QUIET),
            (66_000, QUIET),
        ]);
        assert_eq!(
            seen,
            changes(&[
                (30_000, "+microphone_silent"),
                (35_000, "-microphone_silent"),
                (66_000, "+microphone_silent"),
            ])
        );
        assert_eq!(alarms.active()[0].since, at(36_000).wall);
    }

    #[test]
    fn microphone_silent_clears_when_the_recording_stops_or_the_microphone_is_muted() {
        for stop in [Fact::Capturing(false), Fact::Muted(true)] {
            let (alarms, seen) = run(&[
                (0, Fact::Capturing(true)),
                (0, QUIET),
                (30_000, QUIET),
                (31_000, stop),
                (70_000, QUIET),
                (80_000, Fact::Tick),
            ]);
            assert_eq!(
                seen,
                changes(&[
                    (30_000, "+microphone_silent"),
                    (31_000, "-microphone_silent")
                ]),
                "{stop:?}"
            );
            assert!(alarms.active().is_empty(), "{stop:?}");
        }
    }

    /// Silence that is expected, or not long enough, raises nothing.
    #[test]
    fn microphone_silent_is_not_raised_when_muted_idle_or_briefly_silent() {
        let table: [(&str, Vec<(u64, Fact)>); 4] = [
            (
                "muted",
                vec![
                    (0, Fact::Capturing(true)),
                    (0, Fact::Muted(true)),
                    (0, QUIET),
                    (60_000, QUIET),
                ],
            ),
            ("idle", vec![(0, QUIET), (60_000, QUIET)]),
            (
                "29.5 s",
                vec![
                    (0, Fact::Capturing(true)),
                    (0, QUIET),
                    (29_500, QUIET),
                    (30_000, TONE),
                    (50_000, Fact::Tick),
                ],
            ),
            (
                "at -60 dBFS exactly",
                vec![
                    (0, Fact::Capturing(true)),
                    (0, Fact::Levels { rms_dbfs: -60.0 }),
                    (60_000, Fact::Levels { rms_dbfs: -60.0 }),
                ],
            ),
        ];
        for (name, steps) in table {
            let (alarms, seen) = run(&steps);
            assert!(seen.is_empty(), "{name}: {seen:?}");
            assert!(alarms.active().is_empty(), "{name}");
        }
    }

    /// A capture that restarts, and an unmute, start counting from the next reading: a
    /// reading from before is not taken as still true.
    #[test]
    fn a_new_capture_or_a_mute_change_waits_for_a_fresh_reading() {
        let (_, seen) = run(&[
            (0, Fact::Capturing(true)),
            (0, QUIET),
            (10_000, Fact::Capturing(false)),
            (10_000, Fact::Capturing(true)),
            (45_000, Fact::Tick),
            (45_000, QUIET),
            (74_999, Fact::Tick),
            (75_000, Fact::Tick),
        ]);
        assert_eq!(seen, changes(&[(75_000, "+microphone_silent")]));
        let (_, seen) = run(&[
            (0, Fact::Capturing(true)),
            (0, Fact::Muted(true)),
            (0, QUIET),
            (10_000, Fact::Muted(false)),
            (45_000, Fact::Tick),
        ]);
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn changes_become_alarm_events_for_no_participant() {
        let (alarms, _) = run(&[(0, Fact::Capturing(true)), (0, QUIET), (30_000, QUIET)]);
        let alarm = alarms.active().remove(0);
        let raised = Change::Raised(alarm.clone()).event(at(30_000).wall);
        assert_eq!(raised.kind, EventType::AlarmRaised);
        assert!(raised.to.is_empty());
        assert_eq!(raised.alarm.as_ref(), Some(&alarm));
        let json = serde_json::to_value(Change::Cleared(alarm).event(at(31_000).wall)).unwrap();
        assert_eq!(json["type"], "alarm_cleared");
        assert_eq!(json["alarm"]["id"], "microphone_silent");
        assert_eq!(json["alarm"]["severity"], "critical");
        assert_eq!(json["alarm"]["since"], "2027-01-01T00:00:00Z");
    }
}
