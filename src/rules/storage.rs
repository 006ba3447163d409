//! The local disk budget (issue item 7): how much the device may still write, whether a start
//! fits, and stopping live recordings cleanly before the disk is exhausted.
//!
//! Owns: the room figure the daemon reports (`Input::Storage`), the device bitrate measured
//! from every sealed segment, the `disk_full` refusal of starts and the `disk_full` stop.
//! Must not touch: the disk itself (the daemon measures free space and evicts), the cloud
//! quota (C8, see `cloud`), whose bitrate this only falls back to.

use super::state::err;
use super::{Engine, Now, Output, SealedSegment};
use crate::protocol::{ErrorBody, ErrorCode, StopReason};

impl Engine {
    /// The daemon's latest figure of bytes the device may still write; running recordings
    /// stop if the next stretch no longer fits.
    pub(super) fn set_room(&mut self, room_bytes: u64, now: Now, out: &mut Vec<Output>) {
        self.room_bytes = Some(room_bytes);
        self.enforce_room(now, out);
    }

    /// Every sealed segment is a file on this disk, whichever recordings it belongs to.
    pub(super) fn meter_disk(&mut self, seg: &SealedSegment) {
        self.meter.disk_bytes = self.meter.disk_bytes.saturating_add(seg.bytes);
        self.meter.disk_ms = self.meter.disk_ms.saturating_add(seg.duration_ms);
    }

    /// Bytes per second written to disk: measured from all sealed segments, else the C8
    /// figure (measured cloud bitrate or the reference), never zero.
    fn disk_bitrate(&self) -> u64 {
        if self.meter.disk_ms == 0 {
            return self.bitrate();
        }
        let per_s = u128::from(self.meter.disk_bytes) * 1000 / u128::from(self.meter.disk_ms);
        u64::try_from(per_s).unwrap_or(u64::MAX).max(1)
    }

    /// Whether fewer than `ms` of recording fit in the room; `false` before the daemon has
    /// reported any room (nothing is known to be short).
    fn room_short(&self, ms: u64) -> bool {
        let Some(room) = self.room_bytes else {
            return false;
        };
        let need = u128::from(self.disk_bitrate()) * u128::from(ms) / 1000;
        u128::from(room) < need
    }

    /// Seconds of recording the room holds at the measured bitrate, for `status`; `None`
    /// until the daemon has reported the room.
    pub fn remaining_record_s(&self) -> Option<u64> {
        self.room_bytes.map(|room| room / self.disk_bitrate())
    }

    /// A start (either kind, and C2's approval) needs `min_room_ms` of recording to fit.
    pub(super) fn check_room(&self) -> Result<(), ErrorBody> {
        if !self.room_short(self.config.min_room_ms) {
            return Ok(());
        }
        Err(err(
            ErrorCode::DiskFull,
            format!(
                "the device has room for less than {} of recording; free space or raise storage.max_bytes",
                span(self.config.min_room_ms)
            ),
        ))
    }

    /// Stops every live recording once the next `quota_headroom_ms` would not fit, so media
    /// seals its last segment before the disk is exhausted; what was recorded is kept.
    pub(super) fn enforce_room(&mut self, now: Now, out: &mut Vec<Output>) {
        let live = self.recs.iter().any(|r| r.is_live());
        if live && self.room_short(self.config.quota_headroom_ms) {
            self.stop_all(StopReason::DiskFull, now, out);
        }
    }
}

/// "1 minute", "5 minutes", "30 seconds": the refusal names what the operator must free.
fn span(ms: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if ms >= 60_000 {
        plural(ms.div_ceil(60_000), "minute")
    } else {
        plural(ms.div_ceil(1000), "second")
    }
}
