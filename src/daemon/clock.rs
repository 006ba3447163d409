//! The core's clock: wall time for names and licence checks, monotonic time for durations.
//!
//! Owns: the daemon's start instant, from which every duration the rules see is measured, so
//! a wall clock stepped by NTP never shortens or stretches a recording (see `rules::Now`).
//! Must not touch: anything else.

use std::time::Instant;

use crate::protocol::Timestamp;
use crate::rules::Now;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Now {
        Now {
            wall: Timestamp::now(),
            mono_ms: self.start.elapsed().as_millis() as u64,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
