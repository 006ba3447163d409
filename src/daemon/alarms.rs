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
//! Adding an alarm: a variant of `protocol::AlarmId`, the facts it needs in [`Fact`] and
//! [`Inputs`], one row in [`RULES`], its rows in the tests, and its line in docs/api.md
//! ("Health alarms") and docs/asyncapi.yaml (`AlarmId`).
//!
//! Time: hold times run on the monotonic clock (`Now::mono_ms`); the upload backlog's age is
//! wall time against the wall time a segment was sealed, since it spans restarts.

use crate::protocol::{Alarm, AlarmId, Event, EventType, Severity, Timestamp};
use crate::rules::Now;

/// Below this RMS the microphone counts as silent (the threshold).
pub const SILENT_BELOW_DBFS: f64 = -60.0;
/// How long the microphone must stay silent before the alarm is raised.
pub const SILENT_FOR_MS: u64 = 30_000;
/// How long the picture must stay black, or frozen, before its alarm is raised.
pub const PICTURE_FOR_MS: u64 = 10_000;
/// Below this much recording time left in the storage budget, the disk is low (1 h).
pub const DISK_LOW_BELOW_S: u64 = 3_600;
/// A segment waiting longer than this for its upload is a backlog (1 h).
pub const BACKLOG_OLDER_THAN_MS: i64 = 3_600_000;
/// How long the kernel must say "unsynchronised" before the alarm: a device that just
/// booted gets its first NTP answer within a minute or two.
pub const UNSYNCHRONISED_FOR_MS: u64 = 600_000;

/// A capture device whose loss is an alarm (the content input is optional: no alarm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Camera,
    Microphone,
}

/// What the alarms are decided from; each fact replaces what the table knew of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fact {
    /// Capture runs for at least one recording (true) or for none (false).
    Capturing(bool),
    /// The microphone is muted (M1) or live.
    Muted(bool),
    /// The recorded sound's RMS over the last level interval, all channels together.
    Levels { rms_dbfs: f64 },
    /// The recorded picture's last sample (about once a second while capturing): black, or
    /// unchanged since the sample before (never both).
    Picture { black: bool, frozen: bool },
    /// Recording time the storage budget still holds (`status.storage.remaining_record_s`);
    /// `None` until known.
    Room { remaining_record_s: Option<u64> },
    /// The upload queue: when its oldest waiting segment was sealed (`None`: empty), and
    /// whether the store answers.
    Uploads {
        oldest_pending: Option<Timestamp>,
        store_reachable: bool,
    },
    /// Whether the kernel says the system clock is synchronised (by NTP).
    Clock { synchronised: bool },
    /// A capture device was lost while capturing.
    DeviceLost(Device),
    /// A lost device delivers again.
    DeviceBack(Device),
    /// Which devices are found usable (the media's health check, also while idle): a lost
    /// device found usable again is back, even if no capture was running to notice.
    DevicesUsable { camera: bool, microphone: bool },
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
    /// `(black, frozen)`; `None` until the first sample of this capture.
    picture: Option<(bool, bool)>,
    remaining_record_s: Option<u64>,
    oldest_pending: Option<Timestamp>,
    store_reachable: bool,
    /// `None` until the clock was looked at.
    clock_synchronised: Option<bool>,
    camera_lost: bool,
    microphone_lost: bool,
    /// The wall time of the latest fact, ms since the epoch (ages are measured against it).
    wall_ms: i64,
}

impl Inputs {
    fn apply(&mut self, fact: Fact, now: Now) {
        self.wall_ms = now.wall.0;
        match fact {
            Fact::Capturing(on) => {
                self.capturing = on;
                self.rms_dbfs = None;
                self.picture = None;
            }
            Fact::Muted(muted) => {
                if muted != self.muted {
                    self.rms_dbfs = None;
                }
                self.muted = muted;
            }
            Fact::Levels { rms_dbfs } => self.rms_dbfs = Some(rms_dbfs),
            Fact::Picture { black, frozen } => self.picture = Some((black, frozen)),
            Fact::Room { remaining_record_s } => self.remaining_record_s = remaining_record_s,
            Fact::Uploads {
                oldest_pending,
                store_reachable,
            } => {
                self.oldest_pending = oldest_pending;
                self.store_reachable = store_reachable;
            }
            Fact::Clock { synchronised } => self.clock_synchronised = Some(synchronised),
            Fact::DeviceLost(device) => *self.lost(device) = true,
            Fact::DeviceBack(device) => *self.lost(device) = false,
            Fact::DevicesUsable { camera, microphone } => {
                self.camera_lost &= !camera;
                self.microphone_lost &= !microphone;
            }
            Fact::Tick => {}
        }
    }

    fn lost(&mut self, device: Device) -> &mut bool {
        match device {
            Device::Camera => &mut self.camera_lost,
            Device::Microphone => &mut self.microphone_lost,
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
const RULES: &[Rule] = &[
    Rule {
        id: AlarmId::MicrophoneSilent,
        severity: Severity::Critical,
        hold_ms: SILENT_FOR_MS,
        message: "The microphone has recorded only silence (below -60 dBFS) for 30 s while not \
                  muted: check that it is plugged in, switched on and not muted on the \
                  microphone itself; the recording goes on.",
        holds: microphone_silent,
    },
    Rule {
        id: AlarmId::PictureFrozen,
        severity: Severity::Critical,
        hold_ms: PICTURE_FOR_MS,
        message: "The recorded picture has not changed for 10 s: the camera (or the shared \
                  content) delivers the same frame over and over; check its cable and power, \
                  or unplug and replug it; the recording goes on with the still picture.",
        holds: picture_frozen,
    },
    Rule {
        id: AlarmId::PictureBlack,
        severity: Severity::Critical,
        hold_ms: PICTURE_FOR_MS,
        message: "The recorded picture has been black for 10 s: check that the camera's lens \
                  is not covered, that the camera is connected and switched on, and that the \
                  room's lights are on; the recording goes on.",
        holds: picture_black,
    },
    Rule {
        id: AlarmId::DiskLow,
        severity: Severity::Warning,
        hold_ms: 0,
        message: "The device has room for less than one hour of recording: free space \
                  (recordings already uploaded or converted are released after their \
                  retention) or raise storage.max_bytes; recordings stop, keeping what they \
                  have, when the room runs out.",
        holds: disk_low,
    },
    Rule {
        id: AlarmId::UploadBacklog,
        severity: Severity::Warning,
        hold_ms: 0,
        message: "A cloud recording segment has waited more than an hour for its upload \
                  although the store answers: uploads do not keep up or are refused; see \
                  status.uploads.last_error, and check the store's credentials and the \
                  device's upload bandwidth (upload.rate_cap). The segments stay on the \
                  device until they are uploaded.",
        holds: upload_backlog,
    },
    Rule {
        id: AlarmId::ClockUnsynchronised,
        severity: Severity::Warning,
        hold_ms: UNSYNCHRONISED_FOR_MS,
        message: "The system clock has not been synchronised for 10 minutes: signed admin \
                  commands may be refused as expired (auth.window_s) and recordings may carry \
                  wrong times; check that the device's NTP service (systemd-timesyncd or \
                  chrony) runs and reaches a time server.",
        holds: clock_unsynchronised,
    },
    Rule {
        id: AlarmId::CameraLost,
        severity: Severity::Critical,
        hold_ms: 0,
        message: "The camera was lost: recordings go on with a black picture; check its cable \
                  and power. The picture comes back into the same recordings once the camera \
                  delivers again.",
        holds: camera_lost,
    },
    Rule {
        id: AlarmId::MicrophoneLost,
        severity: Severity::Critical,
        hold_ms: 0,
        message: "The microphone was lost: recordings go on with silence; check its cable and \
                  power. The sound comes back into the same recordings once the microphone \
                  delivers again.",
        holds: microphone_lost,
    },
];

fn microphone_silent(i: &Inputs) -> bool {
    i.capturing && !i.muted && i.rms_dbfs.is_some_and(|rms| rms < SILENT_BELOW_DBFS)
}

fn picture_frozen(i: &Inputs) -> bool {
    i.capturing && i.picture.is_some_and(|(_, frozen)| frozen)
}

fn picture_black(i: &Inputs) -> bool {
    i.capturing && i.picture.is_some_and(|(black, _)| black)
}

fn disk_low(i: &Inputs) -> bool {
    i.remaining_record_s.is_some_and(|s| s < DISK_LOW_BELOW_S)
}

fn upload_backlog(i: &Inputs) -> bool {
    i.store_reachable
        && i.oldest_pending
            .is_some_and(|sealed| i.wall_ms.saturating_sub(sealed.0) > BACKLOG_OLDER_THAN_MS)
}

fn clock_unsynchronised(i: &Inputs) -> bool {
    i.clock_synchronised == Some(false)
}

fn camera_lost(i: &Inputs) -> bool {
    i.camera_lost
}

fn microphone_lost(i: &Inputs) -> bool {
    i.microphone_lost
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
        self.inputs.apply(fact, now);
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

    const FROZEN: Fact = Fact::Picture {
        black: false,
        frozen: true,
    };
    const BLACK: Fact = Fact::Picture {
        black: true,
        frozen: false,
    };
    const MOVING: Fact = Fact::Picture {
        black: false,
        frozen: false,
    };

    /// `(ms, fact)` about once a second from `from` to `to` (inclusive), as media samples.
    fn every_second(from: u64, to: u64, fact: Fact) -> Vec<(u64, Fact)> {
        (from..=to).step_by(1_000).map(|ms| (ms, fact)).collect()
    }

    fn steps(parts: &[&[(u64, Fact)]]) -> Vec<(u64, Fact)> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    /// Frozen and black pictures, 10 s while recording: raised once, since the first such
    /// sample; cleared when the picture moves again.
    #[test]
    fn picture_frozen_and_black_are_raised_after_10_s_and_clear_when_it_moves() {
        for (look, id) in [(FROZEN, "picture_frozen"), (BLACK, "picture_black")] {
            let (alarms, seen) = run(&steps(&[
                &[(0, Fact::Capturing(true)), (500, MOVING)],
                &every_second(1_500, 11_000, look),
                &[(11_499, Fact::Tick)],
                &every_second(11_500, 20_500, look),
            ]));
            assert_eq!(seen, changes(&[(11_500, &format!("+{id}"))]), "{id}");
            let active = alarms.active();
            assert_eq!(active.len(), 1, "{active:?}");
            assert_eq!(active[0].severity, Severity::Critical);
            assert_eq!(
                active[0].since,
                at(1_500).wall,
                "{id}: since the first sample"
            );
            let (_, seen) = run(&steps(&[
                &[(0, Fact::Capturing(true))],
                &every_second(0, 12_000, look),
                &[(12_500, MOVING), (13_000, look), (22_999, Fact::Tick)],
                &[(23_000, Fact::Tick)],
            ]));
            assert_eq!(
                seen,
                changes(&[
                    (10_000, &format!("+{id}")),
                    (12_500, &format!("-{id}")),
                    (23_000, &format!("+{id}")),
                ]),
                "{id}"
            );
        }
    }

    /// Only while recording, only from a sample of this capture, and a black picture that
    /// turns frozen (or back) starts its own count.
    #[test]
    fn picture_alarms_need_a_recording_and_a_fresh_sample() {
        type Case<'a> = (&'a str, Vec<(u64, Fact)>, &'a [(u64, &'a str)]);
        let table: [Case; 4] = [
            ("idle", every_second(0, 30_000, BLACK), &[]),
            (
                "stopped",
                steps(&[
                    &[(0, Fact::Capturing(true))],
                    &every_second(0, 10_000, FROZEN),
                    &[(10_500, Fact::Capturing(false)), (30_000, Fact::Tick)],
                ]),
                &[(10_000, "+picture_frozen"), (10_500, "-picture_frozen")],
            ),
            (
                "restarted: the old sample does not count",
                steps(&[
                    &[(0, Fact::Capturing(true)), (0, BLACK)],
                    &[
                        (5_000, Fact::Capturing(false)),
                        (5_000, Fact::Capturing(true)),
                    ],
                    &[(20_000, Fact::Tick), (20_000, BLACK), (30_000, Fact::Tick)],
                ]),
                &[(30_000, "+picture_black")],
            ),
            (
                "black then frozen: neither lasts 10 s",
                steps(&[
                    &[(0, Fact::Capturing(true))],
                    &every_second(0, 6_000, BLACK),
                    &every_second(7_000, 15_000, FROZEN),
                ]),
                &[],
            ),
        ];
        for (name, steps, want) in table {
            let (_, seen) = run(&steps);
            assert_eq!(seen, changes(want), "{name}");
        }
    }

    #[test]
    fn disk_low_holds_while_the_room_is_below_one_hour_of_recording() {
        let room = |s: Option<u64>| Fact::Room {
            remaining_record_s: s,
        };
        let (alarms, seen) = run(&[
            (0, room(None)),
            (1_000, room(Some(3_600))),
            (2_000, room(Some(3_599))),
            (3_000, room(Some(10))),
            (4_000, room(Some(7_200))),
            (5_000, room(Some(0))),
            (6_000, Fact::Capturing(true)),
        ]);
        assert_eq!(
            seen,
            changes(&[
                (2_000, "+disk_low"),
                (4_000, "-disk_low"),
                (5_000, "+disk_low")
            ])
        );
        let active = alarms.active();
        assert_eq!(active[0].severity, Severity::Warning);
        assert!(
            active[0].message.contains("storage.max_bytes"),
            "{active:?}"
        );
    }

    /// The age is wall time since the oldest waiting segment was sealed: a backlog from
    /// before a restart counts at once, one that ages past the hour is raised at that tick.
    #[test]
    fn upload_backlog_holds_while_the_oldest_waiting_upload_is_over_an_hour_old_and_the_store_answers(
    ) {
        let sealed = |ms_before_start: i64| Some(Timestamp(at(0).wall.0 - ms_before_start));
        let uploads = |oldest, store_reachable| Fact::Uploads {
            oldest_pending: oldest,
            store_reachable,
        };
        let (alarms, seen) = run(&[
            (0, uploads(sealed(2 * 3_600_000), false)),
            (1_000, uploads(sealed(2 * 3_600_000), true)),
            (2_000, uploads(sealed(2 * 3_600_000), false)),
            (3_000, uploads(sealed(3_600_000 - 10_000), true)),
            (10_000, Fact::Tick),
            (10_001, Fact::Tick),
            (14_000, uploads(None, true)),
            (15_000, uploads(sealed(0), true)),
            (3_600_000, Fact::Tick),
            (3_600_001, Fact::Tick),
        ]);
        assert_eq!(
            seen,
            changes(&[
                (1_000, "+upload_backlog"),
                (2_000, "-upload_backlog"),
                (10_001, "+upload_backlog"),
                (14_000, "-upload_backlog"),
                (3_600_001, "+upload_backlog"),
            ])
        );
        let active = alarms.active();
        assert_eq!(
            active[0].since,
            at(3_600_001).wall,
            "since it crossed the hour"
        );
        assert_eq!(active[0].severity, Severity::Warning);
    }

    #[test]
    fn clock_unsynchronised_is_raised_after_10_minutes_and_clears_once_synchronised() {
        let clock = |synchronised| Fact::Clock { synchronised };
        let (alarms, seen) = run(&[
            (0, clock(false)),
            (599_999, clock(false)),
            (600_000, clock(false)),
            (601_000, clock(false)),
            (700_000, clock(true)),
            (701_000, clock(false)),
            (1_300_999, Fact::Tick),
            (1_301_000, Fact::Tick),
        ]);
        assert_eq!(
            seen,
            changes(&[
                (600_000, "+clock_unsynchronised"),
                (700_000, "-clock_unsynchronised"),
                (1_301_000, "+clock_unsynchronised"),
            ])
        );
        let message = &alarms.active()[0].message;
        assert!(
            message.contains("signed admin commands may be refused"),
            "{message}"
        );
        // Never looked at, or synchronised all along: nothing.
        let (_, seen) = run(&[(0, Fact::Tick), (900_000, Fact::Tick)]);
        assert!(seen.is_empty(), "{seen:?}");
        let (_, seen) = run(&[(0, clock(true)), (900_000, clock(true))]);
        assert!(seen.is_empty(), "{seen:?}");
    }

    /// Raised on loss, at once; cleared when the device delivers again, or when the health
    /// check finds it usable (after the capture that lost it has ended).
    #[test]
    fn camera_and_microphone_lost_hold_from_the_loss_until_the_device_is_back() {
        for (device, id) in [
            (Device::Camera, "camera_lost"),
            (Device::Microphone, "microphone_lost"),
        ] {
            let usable = |ok: bool| Fact::DevicesUsable {
                camera: ok || device == Device::Microphone,
                microphone: ok || device == Device::Camera,
            };
            let (alarms, seen) = run(&[
                (0, Fact::Capturing(true)),
                (1_000, Fact::DeviceLost(device)),
                (1_000, usable(false)),
                (5_000, Fact::DeviceBack(device)),
                (6_000, Fact::DeviceLost(device)),
                (7_000, Fact::Capturing(false)),
                (8_000, usable(false)),
                (60_000, usable(true)),
            ]);
            assert_eq!(
                seen,
                changes(&[
                    (1_000, &format!("+{id}")),
                    (5_000, &format!("-{id}")),
                    (6_000, &format!("+{id}")),
                    (60_000, &format!("-{id}")),
                ]),
                "{id}"
            );
            assert!(alarms.active().is_empty());
        }
        // The other device's health does not clear it.
        let (alarms, _) = run(&[
            (0, Fact::DeviceLost(Device::Camera)),
            (
                1_000,
                Fact::DevicesUsable {
                    camera: false,
                    microphone: true,
                },
            ),
        ]);
        assert_eq!(alarms.active()[0].id, AlarmId::CameraLost);
    }

    /// Several at once are listed oldest first, each with its own sentence.
    #[test]
    fn every_alarm_has_one_row_and_they_are_listed_oldest_first() {
        let ids: Vec<AlarmId> = RULES.iter().map(|r| r.id).collect();
        for id in ALL {
            assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "{id:?}");
        }
        assert_eq!(ids.len(), ALL.len());
        let (alarms, _) = run(&[
            (0, Fact::DeviceLost(Device::Microphone)),
            (
                1_000,
                Fact::Room {
                    remaining_record_s: Some(60),
                },
            ),
            (2_000, Fact::DeviceLost(Device::Camera)),
        ]);
        let active: Vec<AlarmId> = alarms.active().iter().map(|a| a.id).collect();
        assert_eq!(
            active,
            [
                AlarmId::MicrophoneLost,
                AlarmId::DiskLow,
                AlarmId::CameraLost
            ]
        );
        for rule in RULES {
            assert!(rule.message.ends_with('.'), "{:?}", rule.id);
        }
    }

    /// Every alarm id; the match fails to compile when one is added without being listed.
    const ALL: &[AlarmId] = &[
        AlarmId::MicrophoneSilent,
        AlarmId::PictureFrozen,
        AlarmId::PictureBlack,
        AlarmId::DiskLow,
        AlarmId::UploadBacklog,
        AlarmId::ClockUnsynchronised,
        AlarmId::CameraLost,
        AlarmId::MicrophoneLost,
    ];

    #[allow(dead_code)]
    fn all_is_complete(id: AlarmId) {
        match id {
            AlarmId::MicrophoneSilent
            | AlarmId::PictureFrozen
            | AlarmId::PictureBlack
            | AlarmId::DiskLow
            | AlarmId::UploadBacklog
            | AlarmId::ClockUnsynchronised
            | AlarmId::CameraLost
            | AlarmId::MicrophoneLost => {}
        }
    }
}
