//! The silent time of the segment being written, for completeness reports (issue 14, item 4):
//! each level reading (one per `media::LEVEL_INTERVAL`) below -60 dBFS RMS counts as that
//! long silent; the sum is taken when a segment is sealed, so the catalog keeps it with the
//! segment and it survives a restart exactly as far as the media does.
//!
//! Owns: that sum. Must not touch: the alarms, which judge the same readings on their own.

use std::time::Duration;

use super::alarms::SILENT_BELOW_DBFS;
use crate::media::LEVEL_INTERVAL;

#[derive(Debug, Default)]
pub struct SilenceMeter {
    silent: Duration,
}

impl SilenceMeter {
    /// One level reading of the recorded sound.
    pub fn heard(&mut self, rms_dbfs: f64) {
        if rms_dbfs < SILENT_BELOW_DBFS {
            self.silent += LEVEL_INTERVAL;
        }
    }

    /// The silent time since the last seal, at most the sealed segment's length; starts over.
    pub fn take(&mut self, duration_ms: u64) -> u64 {
        let silent = std::mem::take(&mut self.silent);
        u64::try_from(silent.as_millis())
            .unwrap_or(u64::MAX)
            .min(duration_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_readings_add_up_per_segment_and_never_exceed_it() {
        let mut meter = SilenceMeter::default();
        for rms in [-75.0, -61.0, -60.0, -20.0, -90.0] {
            meter.heard(rms);
        }
        let step = LEVEL_INTERVAL.as_millis() as u64;
        assert_eq!(
            meter.take(10_000),
            3 * step,
            "-60 dBFS itself is not below -60"
        );
        assert_eq!(meter.take(10_000), 0, "taken: the next segment starts over");
        for _ in 0..10 {
            meter.heard(-80.0);
        }
        assert_eq!(meter.take(1_000), 1_000);
    }
}
