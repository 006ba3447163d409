//! Media progress, as the watchdog sees it: whether capture is running, and when the open
//! segment last grew on the disk.
//!
//! Owns: the two shared values and their clock. The media actor writes them (capture started
//! or stopped, a segment opened, the open segment grew at a flush tick); the daemon's
//! watchdog reads them from another thread. Must not touch: the pipeline, the decision to
//! ping (that is `daemon::watchdog`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared between the media thread (writer) and the watchdog (reader); cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaProgress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    capturing: AtomicBool,
    /// Milliseconds since `epoch` of the last progress (or of the capture start).
    last_ms: AtomicU64,
}

/// What the watchdog reads: `None` when nothing is capturing (no media requirement), else how
/// long ago the media last made progress.
pub type SinceProgress = Option<Duration>;

impl Default for MediaProgress {
    fn default() -> Self {
        MediaProgress {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                capturing: AtomicBool::new(false),
                last_ms: AtomicU64::new(0),
            }),
        }
    }
}

impl MediaProgress {
    /// Capture started: the clock starts now, so start-up gets the whole stall threshold.
    pub(crate) fn started(&self) {
        self.advanced();
        self.inner.capturing.store(true, Ordering::SeqCst);
    }

    /// Buffers reached the segment writer (a segment opened, or the open one grew).
    pub(crate) fn advanced(&self) {
        let ms = self.inner.epoch.elapsed().as_millis() as u64;
        self.inner.last_ms.store(ms, Ordering::SeqCst);
    }

    /// Capture stopped or failed: nothing is expected of the pipeline any more.
    pub(crate) fn stopped(&self) {
        self.inner.capturing.store(false, Ordering::SeqCst);
    }

    /// How long ago media last made progress, if capture is running.
    pub fn since_progress(&self) -> SinceProgress {
        if !self.inner.capturing.load(Ordering::SeqCst) {
            return None;
        }
        let last = Duration::from_millis(self.inner.last_ms.load(Ordering::SeqCst));
        Some(self.inner.epoch.elapsed().saturating_sub(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_capture_has_an_age_and_progress_resets_it() {
        let p = MediaProgress::default();
        assert_eq!(p.since_progress(), None, "idle: no media requirement");
        p.started();
        std::thread::sleep(Duration::from_millis(60));
        let later = p.since_progress().expect("capturing");
        assert!(later >= Duration::from_millis(60), "{later:?}");
        p.advanced();
        let after = p.since_progress().expect("capturing");
        assert!(after < later, "{after:?} after progress, {later:?} before");
        p.stopped();
        assert_eq!(p.since_progress(), None);
    }
}
