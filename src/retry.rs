//! retry: exponential backoff with jitter, for every adapter that waits for a peer to come
//! back (the MQTT broker, the object store).
//!
//! Owns: the delay arithmetic. Must not touch: anything else; callers sleep.

use std::time::Duration;

/// `base × 2^attempt`, capped at `max`, then scaled by a random factor in [0.5, 1): a fleet
/// of devices behind one outage does not come back in the same instant, and no delay is ever
/// much shorter than intended.
pub fn jittered(base: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// A backoff that counts its own attempts.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = jittered(self.base, self.max, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let delays: Vec<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] < Duration::from_millis(100));
        assert!(
            delays[19] >= Duration::from_millis(2500),
            "{:?}",
            delays[19]
        );
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(100));
    }
}
