//! The core's clock: wall time for names and licence checks, monotonic time for durations,
//! and whether the system clock is synchronised.
//!
//! Owns: the daemon's start instant, from which every duration the rules see is measured, so
//! a wall clock stepped by NTP never shortens or stretches a recording (see `rules::Now`);
//! reading the kernel's synchronisation status ([`synchronised`]). Must not touch: anything
//! else (it never sets the clock).

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

/// Whether the kernel says the system clock is synchronised: `adjtimex` (read-only, mode 0)
/// reports `TIME_ERROR` while its `STA_UNSYNC` flag is set, which it is from boot until an
/// NTP client (systemd-timesyncd, chrony, ntpd) disciplines the clock, and again once none
/// has for a while. `None` if the call fails.
pub fn synchronised() -> Option<bool> {
    // SAFETY: a zeroed timex with `modes` 0 only reads; the kernel fills the struct.
    let (state, status) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && status & libc::STA_UNSYNC == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reading agrees with the kernel's own words for it, as `/proc` has no other view:
    /// `adjtimex` answers on every Linux, and its two signs of "unsynchronised" agree.
    #[test]
    fn the_kernel_says_whether_the_clock_is_synchronised() {
        let read = synchronised().expect("adjtimex answers");
        // SAFETY: as in `synchronised`.
        let (state, status) = unsafe {
            let mut tx: libc::timex = std::mem::zeroed();
            (libc::adjtimex(&mut tx), tx.status)
        };
        assert_eq!(
            read,
            state != libc::TIME_ERROR,
            "state {state}, status {status:#x}"
        );
        assert_eq!(
            read,
            status & libc::STA_UNSYNC == 0,
            "state {state}, status {status:#x}"
        );
    }
}
