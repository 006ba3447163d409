//! The core's clock-driven chores: what is due at each one-second tick.
//!
//! Owns: the intervals of the periodic work (retention, status, forgetting old command ids and
//! nonces) and how long command ids are remembered. Must not touch: the work itself.

use std::time::Duration;

/// The core ticks once a second: the engine's timers (L4's minimum, licences) need no finer.
pub const TICK: Duration = Duration::from_secs(1);
/// Retention runs on the first tick and then every minute: segments are kept for days, so a
/// minute late costs nothing, and a pass reads the catalog.
pub const EVICTION_EVERY: Duration = Duration::from_secs(60);
/// Status is republished every 30 s even unchanged, so uptime and free space stay fresh for a
/// console that joined late.
pub const STATUS_EVERY: Duration = Duration::from_secs(30);
/// Old command ids and nonces are pruned hourly.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The dedupe log only has to outlive MQTT redelivery and sender retries; nonces are kept as
/// long, far longer than the signing window, so a clock that jumps (a wrong clock corrected
/// by NTP) cannot reopen the window for a captured command.
pub const COMMAND_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// What is due at one tick, besides feeding the engine and the watchdog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub eviction: bool,
    pub status: bool,
    pub prune: bool,
}

/// The chores due at tick number `tick` (the first tick is 1).
pub fn due(tick: u64) -> Due {
    let every = |interval: Duration| tick % (interval.as_secs() / TICK.as_secs()).max(1);
    Due {
        eviction: every(EVICTION_EVERY) == 1,
        status: every(STATUS_EVERY) == 0,
        prune: every(PRUNE_EVERY) == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_on_the_first_tick_then_each_minute() {
        let ticks: Vec<u64> = (1..=200).filter(|t| due(*t).eviction).collect();
        assert_eq!(ticks, [1, 61, 121, 181]);
    }

    #[test]
    fn status_every_half_minute_and_pruning_hourly() {
        let status: Vec<u64> = (1..=100).filter(|t| due(*t).status).collect();
        assert_eq!(status, [30, 60, 90]);
        let prune: Vec<u64> = (1..=7300).filter(|t| due(*t).prune).collect();
        assert_eq!(prune, [3600, 7200]);
        assert_eq!(due(2), Due::default());
    }
}
