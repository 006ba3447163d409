//! systemd notification: READY once initialised, STATUS on each change, watchdog pings (sent
//! by the core loop when `watchdog` finds the daemon healthy: a wedged core or a stalled
//! capture stops them, and systemd restarts the daemon).
//!
//! Owns: the sd_notify socket messages. Must not touch: anything else. Outside systemd
//! (no NOTIFY_SOCKET) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

#[derive(Clone, Debug, Default)]
pub struct Notifier {
    last_status: String,
}

impl Notifier {
    pub fn ready(&self) {
        send(&[NotifyState::Ready]);
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping]);
    }

    pub fn reloading(&self) {
        send(&[NotifyState::Reloading]);
    }

    /// Sends STATUS only when it changed, so the journal is not flooded.
    pub fn status(&mut self, status: &str) {
        if self.last_status != status {
            self.last_status = status.to_owned();
            send(&[NotifyState::Status(status)]);
        }
    }

    pub fn watchdog(&self) {
        send(&[NotifyState::Watchdog]);
    }

    /// The watchdog period systemd asked for (`WATCHDOG_USEC`, for this process), if any.
    pub fn watchdog_timeout() -> Option<Duration> {
        sd_notify::watchdog_enabled()
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}
