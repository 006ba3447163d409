//! Audio levels end to end: a real roomrecd on the test source publishes the recorded sound's
//! peak and RMS on `<p>/levels` about twice a second while it records, and nothing while
//! idle; the values are the test tone's, as computed from its amplitude and as ffmpeg reads
//! them from the recording itself.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::device::{Client, Device, Msg, PREFIX};
use common::Broker;
use serde_json::Value;

/// The levels messages among `seen`.
fn levels(seen: &[Msg]) -> Vec<&Msg> {
    let topic = format!("{PREFIX}/levels");
    seen.iter().filter(|m| m.topic == topic).collect()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// ffmpeg's `volumedetect` of the file's sound: (max_volume, mean_volume) in dBFS, its peak
/// and RMS.
fn volumedetect(path: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stderr);
    let read = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.split(&format!("{name}: ")).nth(1))
            .and_then(|v| v.trim_end_matches(" dB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in ffmpeg's output:\n{text}"))
    };
    (read("max_volume"), read("mean_volume"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_arrive_twice_a_second_while_recording_with_the_test_tones_values() {
    let broker = Broker::start();
    let _device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;

    // Idle: nothing on levels.
    c.drain_for(Duration::from_secs(3)).await;
    assert!(
        levels(&c.seen).is_empty(),
        "levels while idle: {:?}",
        levels(&c.seen)
    );
    c.seen.clear();

    // The tone's amplitude gives its levels: a sine's peak is its amplitude, its RMS
    // amplitude/sqrt(2).
    let amplitude = roomrec::media::TEST_TONE_VOLUME;
    let peak = 20.0 * amplitude.log10();
    let rms = 20.0 * (amplitude / 2f64.sqrt()).log10();
    // 11 s: a local recording under 10 s is discarded (L4) and has no MP4.
    let (_local, mp4) = c.local_mp4(11_000).await;
    let during = levels(&c.seen);
    let at_ms = |m: &Msg| roomrec::protocol::Timestamp::parse(m.json["at"].as_str().unwrap());
    assert!(during.len() >= 15, "{} levels in 11 s", during.len());
    for m in &during {
        assert!(!m.retain, "levels are not retained: {m:?}");
    }
    // About twice a second: the median interval between readings.
    let times: Vec<i64> = during
        .iter()
        .map(|m| at_ms(m).expect("an RFC 3339 `at`").0)
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    let gap = median(gaps);
    assert!((400.0..=600.0).contains(&gap), "median interval {gap} ms");
    // Every reading but the first (it may cover the start) is the tone's, within 1 dB, for
    // all channels together and each.
    for m in &during[1..] {
        let j = &m.json;
        assert!((f(j, "peak_dbfs") - peak).abs() <= 1.0, "peak {peak}: {j}");
        assert!((f(j, "rms_dbfs") - rms).abs() <= 1.0, "rms {rms}: {j}");
        let channels = j["channels"].as_array().expect("channels");
        assert!(!channels.is_empty(), "{j}");
        for ch in channels {
            assert!((f(ch, "peak_dbfs") - peak).abs() <= 1.0, "{j}");
            assert!((f(ch, "rms_dbfs") - rms).abs() <= 1.0, "{j}");
        }
    }
    // What ffmpeg reads from the recording agrees with what was published.
    let published_rms = median(during.iter().map(|m| f(&m.json, "rms_dbfs")).collect());
    let published_peak = median(during.iter().map(|m| f(&m.json, "peak_dbfs")).collect());
    let (max_volume, mean_volume) = volumedetect(&mp4);
    assert!(
        (mean_volume - published_rms).abs() <= 1.0,
        "ffmpeg mean_volume {mean_volume} vs published RMS {published_rms}"
    );
    assert!(
        (max_volume - published_peak).abs() <= 1.0,
        "ffmpeg max_volume {max_volume} vs published peak {published_peak}"
    );
    eprintln!(
        "levels: expected peak {peak:.2} rms {rms:.2}; published peak {published_peak} rms \
         {published_rms}; ffmpeg max {max_volume} mean {mean_volume}; median interval {gap} ms"
    );

    // The recording has stopped (its MP4 is made): no more levels.
    c.seen.clear();
    c.drain_for(Duration::from_secs(3)).await;
    assert!(
        levels(&c.seen).is_empty(),
        "levels after the recording stopped: {:?}",
        levels(&c.seen)
    );
}
