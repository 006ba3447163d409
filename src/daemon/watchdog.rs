//! The watchdog: whether this turn of the core loop may tell systemd `WATCHDOG=1`.
//!
//! Owns: what "healthy" means for the watchdog, and the stall threshold. Must not touch: the
//! notification socket (`notify`), the pipeline (media publishes its progress through
//! [`MediaProgress`]).
//!
//! Healthy means:
//! - the core loop turns: the ping is sent from the core's one-second tick, so a wedged core
//!   (or a blocked runtime) sends none;
//! - and, while capture runs, buffers keep reaching the segment writer: the open segment grew
//!   on the disk, or a new segment opened, within the stall threshold (the media actor looks
//!   every 0.1 s; the muxer writes a GOP, 0.5 s, at a time).
//!
//! What must not count as a stall: segment cuts (a new segment opens within a GOP), a lost
//! camera or microphone (the pipeline records black frames or silence, so the file grows),
//! pauses and idle time (nothing capturing: no media requirement), start-up (the clock starts
//! when capture starts, so the pipeline has the whole threshold to write its first GOP).
//!
//! Threshold: half of systemd's `WatchdogSec`, at least [`MIN_STALL`]. A stall therefore gets
//! the daemon killed between threshold + `WatchdogSec` after the last progress (45 s with the
//! unit's 30 s).

use std::time::Duration;

use tracing::{error, info};

use super::notify::Notifier;
use crate::media::{MediaProgress, SinceProgress};

/// The shortest stall threshold: far above a GOP (0.5 s), a segment cut and the pipeline's
/// start, whatever `WATCHDOG_USEC` says.
pub const MIN_STALL: Duration = Duration::from_secs(5);

/// How long capture may go without progress before the pings stop, for systemd's watchdog
/// period `watchdog` (`WATCHDOG_USEC`).
pub fn stall_threshold(watchdog: Duration) -> Duration {
    (watchdog / 2).max(MIN_STALL)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ping,
    /// Capture runs and media made no progress for `stalled_for` (at least the threshold).
    Withhold {
        stalled_for: Duration,
    },
}

/// The decision for one core turn: `since_progress` is `None` when nothing captures.
pub fn decide(since_progress: SinceProgress, threshold: Duration) -> Verdict {
    match since_progress {
        Some(stalled_for) if stalled_for >= threshold => Verdict::Withhold { stalled_for },
        _ => Verdict::Ping,
    }
}

/// The core's watchdog: reads media progress, pings through the notifier when healthy, and
/// logs each change between pinging and withholding once.
pub struct Watchdog {
    progress: MediaProgress,
    /// `None` when systemd asked for no watchdog (no `WATCHDOG_USEC`): nothing to send.
    threshold: Option<Duration>,
    withholding: bool,
}

impl Watchdog {
    /// `watchdog` is systemd's period (`Notifier::watchdog_timeout`), if any.
    pub fn new(progress: MediaProgress, watchdog: Option<Duration>) -> Watchdog {
        let threshold = watchdog.map(stall_threshold);
        if let (Some(period), Some(threshold)) = (watchdog, threshold) {
            info!(
                period_ms = period.as_millis() as u64,
                stall_threshold_ms = threshold.as_millis() as u64,
                "systemd watchdog on: pinging while the core turns and capture makes progress"
            );
        }
        Watchdog {
            progress,
            threshold,
            withholding: false,
        }
    }

    /// Called on each turn of the core loop (its tick).
    pub fn on_core_turn(&mut self, notifier: &Notifier) {
        let Some(threshold) = self.threshold else {
            return;
        };
        match decide(self.progress.since_progress(), threshold) {
            Verdict::Ping => {
                if self.withholding {
                    info!("media progresses again: watchdog pings resumed");
                    self.withholding = false;
                }
                notifier.watchdog();
            }
            Verdict::Withhold { stalled_for } => {
                if !self.withholding {
                    error!(
                        stalled_ms = stalled_for.as_millis() as u64,
                        threshold_ms = threshold.as_millis() as u64,
                        "capture stalled: no media reached the segment writer; watchdog pings withheld, systemd will restart the daemon"
                    );
                    self.withholding = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn decide_table() {
        let threshold = S(15);
        // (case, since last progress or None when not capturing, verdict)
        let cases: &[(&str, SinceProgress, Verdict)] = &[
            (
                "idle, paused or stopped: no media requirement",
                None,
                Verdict::Ping,
            ),
            ("capture just started", Some(MS(0)), Verdict::Ping),
            ("a GOP was just written", Some(MS(500)), Verdict::Ping),
            ("a segment cut in progress", Some(MS(1500)), Verdict::Ping),
            (
                "slow start, under the threshold",
                Some(MS(14_999)),
                Verdict::Ping,
            ),
            (
                "stalled for exactly the threshold",
                Some(S(15)),
                Verdict::Withhold { stalled_for: S(15) },
            ),
            (
                "stalled for long",
                Some(S(600)),
                Verdict::Withhold {
                    stalled_for: S(600),
                },
            ),
        ];
        for (case, since, want) in cases {
            assert_eq!(decide(*since, threshold), *want, "{case}");
        }
    }

    #[test]
    fn threshold_is_half_the_watchdog_period_but_never_under_the_minimum() {
        assert_eq!(stall_threshold(S(30)), S(15), "the unit's WatchdogSec=30s");
        assert_eq!(stall_threshold(S(60)), S(30));
        assert_eq!(stall_threshold(S(6)), MIN_STALL);
        assert_eq!(stall_threshold(MS(500)), MIN_STALL);
    }

    #[test]
    fn a_running_capture_without_progress_is_withheld_and_a_stopped_one_pings() {
        let progress = MediaProgress::default();
        assert_eq!(decide(progress.since_progress(), MS(1)), Verdict::Ping);
        progress.started();
        std::thread::sleep(MS(5));
        assert!(matches!(
            decide(progress.since_progress(), MS(1)),
            Verdict::Withhold { .. }
        ));
        progress.stopped();
        assert_eq!(decide(progress.since_progress(), MS(1)), Verdict::Ping);
    }
}
