//! The bandwidth limiter: one token bucket shared by every upload, so the cap holds for all
//! of them together. Owns the current rate and a running byte count (to measure the link).
//! Must not touch: the network itself (callers ask before sending each chunk).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How much may be sent at once after an idle moment: 100 ms at the current rate. Small, so
/// a live call never sees a burst; large enough that sleeps are not a few µs each.
const BURST: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes per second; `None` is unlimited.
    rate: Option<u64>,
    /// May go negative: a chunk larger than the bucket is a debt that the sender sleeps off.
    tokens: f64,
    last: Instant,
    /// Every byte taken, for measuring throughput.
    total: u64,
}

impl Limiter {
    pub fn new(rate: Option<u64>) -> Limiter {
        Limiter {
            state: Mutex::new(State {
                rate,
                tokens: 0.0,
                last: Instant::now(),
                total: 0,
            }),
        }
    }

    /// Changes the rate from now on (a meeting started or ended).
    pub fn set_rate(&self, rate: Option<u64>) {
        let mut s = self.lock();
        s.refill(Instant::now());
        s.rate = rate;
        s.tokens = s.tokens.min(s.burst());
    }

    pub fn rate(&self) -> Option<u64> {
        self.lock().rate
    }

    /// Bytes taken since the start.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Takes `n` bytes' worth of tokens, sleeping as long as the rate requires.
    pub async fn take(&self, n: usize) {
        let wait = {
            let mut s = self.lock();
            s.total = s.total.saturating_add(n as u64);
            let Some(rate) = s.rate else {
                return;
            };
            s.refill(Instant::now());
            s.tokens -= n as f64;
            if s.tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-s.tokens / rate as f64)
        };
        tokio::time::sleep(wait).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the numbers inconsistent: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn burst(&self) -> f64 {
        self.rate
            .map_or(f64::MAX, |r| (r as f64 * BURST.as_secs_f64()).max(16_384.0))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if let Some(rate) = self.rate {
            self.tokens = (self.tokens + elapsed * rate as f64).min(self.burst());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_holds_over_many_chunks() {
        let limiter = Limiter::new(Some(100_000));
        let start = tokio::time::Instant::now();
        for _ in 0..20 {
            limiter.take(10_000).await;
        }
        // 200 kB at 100 kB/s: 2 s, less the initial burst allowance of at most 16 kB.
        let took = start.elapsed().as_secs_f64();
        assert!((1.8..=2.1).contains(&took), "took {took} s");
        assert_eq!(limiter.total(), 200_000);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let limiter = Limiter::new(None);
        let start = tokio::time::Instant::now();
        limiter.take(1 << 30).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
