//! Measuring A/V sync: the offset of each flash/click pair of the sync signal
//! ([`super::TestPicture::Sync`]) in a recorded file, as ffmpeg decodes it.
//!
//! Owns: running ffmpeg on a file (segment, MP4 or HLS playlist), finding flash frames by
//! their mean luma and click onsets by their peak level, and pairing them. Must not touch: the
//! pipelines, SQLite, MQTT.
//!
//! Why ffmpeg and not GStreamer: the offset that matters is the one a player shows, and the
//! files were written by GStreamer; an independent decoder is the honest reader. Both streams
//! are read with `-copyts`, so their timestamps are the file's own, on one clock.

use std::path::Path;
use std::process::Command;

use super::MediaError;

/// A frame is a flash above this mean luma (black 16, the flash 235).
const FLASH_LUMA: f64 = 128.0;
/// A 1 ms chunk of sound is a click above this peak (dBFS; the click is at about -2).
const CLICK_DB: f64 = -20.0;
/// Sound is read in chunks of this many samples at 48 kHz: 1 ms.
const CHUNK_SAMPLES: u32 = 48;
/// A flash and a click further apart than this are not a pair.
const PAIR_WINDOW_S: f64 = 0.5;

/// The flashes, clicks and pairs found in one file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    pub flashes: Vec<f64>,
    pub clicks: Vec<f64>,
    /// (flash time, click time minus flash time), in seconds: positive when sound is late.
    pub pairs: Vec<(f64, f64)>,
}

impl SyncReport {
    pub fn offsets_ms(&self) -> Vec<f64> {
        self.pairs.iter().map(|(_, o)| o * 1e3).collect()
    }

    /// The last pair's offset minus the first's (ms): drift over the file.
    pub fn drift_ms(&self) -> f64 {
        match (self.pairs.first(), self.pairs.last()) {
            (Some(a), Some(b)) => (b.1 - a.1) * 1e3,
            _ => 0.0,
        }
    }

    /// One line per figure, for people.
    pub fn summary(&self) -> String {
        let o = self.offsets_ms();
        let (min, max) = o
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(*x), hi.max(*x))
            });
        let mean = o.iter().sum::<f64>() / o.len().max(1) as f64;
        format!(
            "{} flashes, {} clicks, {} pairs; offset (sound minus picture) mean {mean:.1} ms, \
             min {min:.1} ms, max {max:.1} ms, drift {:.1} ms",
            self.flashes.len(),
            self.clicks.len(),
            self.pairs.len(),
            self.drift_ms()
        )
    }
}

/// Measure the sync signal in `path` (anything ffmpeg reads; an HLS playlist too).
pub fn measure(path: &Path) -> Result<SyncReport, MediaError> {
    let video = ffmpeg_metadata(
        path,
        "0:v:0",
        "-vf",
        "settb=AVTB,signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
    )?;
    let audio = ffmpeg_metadata(
        path,
        "0:a:0",
        "-af",
        &format!(
            "aresample=48000,asetnsamples=n={CHUNK_SAMPLES}:p=0,asettb=AVTB,\
             astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.Peak_level:file=-"
        ),
    )?;
    let flashes = onsets(&video, |luma| luma > FLASH_LUMA);
    let clicks = onsets(&audio, |db| db > CLICK_DB);
    let pairs = pair(&flashes, &clicks);
    Ok(SyncReport {
        flashes,
        clicks,
        pairs,
    })
}

/// ffmpeg's `metadata=print` output for one stream through `filter`: (pts_time, value) pairs.
fn ffmpeg_metadata(
    path: &Path,
    map: &str,
    filter_flag: &str,
    filter: &str,
) -> Result<Vec<(f64, f64)>, MediaError> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-copyts"])
        .args(["-protocol_whitelist", "file,crypto,data"])
        .arg("-i")
        .arg(path)
        .args(["-map", map, filter_flag, filter, "-f", "null", "-"])
        .output()
        .map_err(|e| MediaError::Probe {
            path: path.to_path_buf(),
            message: format!("cannot run ffmpeg ({e}); install the Debian package ffmpeg"),
        })?;
    if !out.status.success() {
        return Err(MediaError::Probe {
            path: path.to_path_buf(),
            message: format!("ffmpeg: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(parse_metadata(&String::from_utf8_lossy(&out.stdout)))
}

/// `frame:N pts:P pts_time:T` lines, each followed by `key=value`. The filters set the time
/// base to microseconds (`settb=AVTB`) and `pts` is read, not `pts_time`, which ffmpeg prints
/// with 6 significant digits: 10 ms steps an hour into a file.
fn parse_metadata(text: &str) -> Vec<(f64, f64)> {
    let mut values = Vec::new();
    let mut time = None;
    for line in text.lines() {
        if let Some(t) = line.split_whitespace().find_map(|f| f.strip_prefix("pts:")) {
            time = t.parse::<i64>().ok().map(|us| us as f64 / 1e6);
        } else if let Some((_, v)) = line.split_once('=') {
            // astats prints -inf for digital silence.
            let v = if v.trim() == "-inf" {
                Some(f64::NEG_INFINITY)
            } else {
                v.trim().parse::<f64>().ok()
            };
            if let (Some(t), Some(v)) = (time.take(), v) {
                values.push((t, v));
            }
        }
    }
    values
}

/// The times where `on` becomes true after being false.
fn onsets(values: &[(f64, f64)], on: impl Fn(f64) -> bool) -> Vec<f64> {
    let mut was = false;
    let mut times = Vec::new();
    for (t, v) in values {
        let now = on(*v);
        if now && !was {
            times.push(*t);
        }
        was = now;
    }
    times
}

/// Each flash with the nearest click within the window.
fn pair(flashes: &[f64], clicks: &[f64]) -> Vec<(f64, f64)> {
    flashes
        .iter()
        .filter_map(|f| {
            let c = clicks
                .iter()
                .min_by(|a, b| (*a - f).abs().total_cmp(&(*b - f).abs()))?;
            ((c - f).abs() < PAIR_WINDOW_S).then_some((*f, c - f))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lines_become_onsets_and_pairs() {
        let text = "frame:0    pts:500000  pts_time:0.5\nlavfi.signalstats.YAVG=16.0\n\
                    frame:1    pts:1000000 pts_time:1\nlavfi.signalstats.YAVG=235.0\n\
                    frame:2    pts:1033333 pts_time:1.03333\nlavfi.signalstats.YAVG=16.0\n\
                    frame:3    pts:2000000 pts_time:2\nlavfi.signalstats.YAVG=234.0\n";
        let values = parse_metadata(text);
        assert_eq!(values.len(), 4);
        let flashes = onsets(&values, |l| l > FLASH_LUMA);
        assert_eq!(flashes, vec![1.0, 2.0]);
        let audio = parse_metadata(
            "frame:0 pts:1012000 pts_time:1.012\nlavfi.astats.Overall.Peak_level=-inf\n\
             frame:1 pts:1013000 pts_time:1.013\nlavfi.astats.Overall.Peak_level=-2.1\n",
        );
        let clicks = onsets(&audio, |db| db > CLICK_DB);
        assert_eq!(clicks, vec![1.013]);
        let pairs = pair(&flashes, &clicks);
        assert_eq!(
            pairs.len(),
            1,
            "the flash at 2 s has no click within the window"
        );
        assert!((pairs[0].1 - 0.013).abs() < 1e-9);
    }
}
