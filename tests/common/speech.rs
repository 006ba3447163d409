//! Known speech for the transcription tests and bench: espeak-ng reads a sentence, ffmpeg
//! makes it into what roomrec records (H.264 + AAC in an MP4, or MPEG-TS segments).
//! `scripts/install-deps` installs espeak-ng and ffmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The voice and rate every test and the bench use: Debian's espeak-ng US English at 140
/// words a minute.
pub const VOICE: [&str; 4] = ["-v", "en-us", "-s", "140"];

/// `text` spoken into the WAV file `out`.
pub fn say(text: &str, out: &Path) {
    let status = Command::new("espeak-ng")
        .args(VOICE)
        .arg("-w")
        .arg(out)
        .arg(text)
        .status()
        .expect("espeak-ng runs (scripts/install-deps installs it)");
    assert!(status.success(), "espeak-ng failed for {text:?}");
}

/// Runs ffmpeg quietly, failing the test with its message.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The room's noise floor mixed under the speech: pink noise of this peak amplitude (full
/// scale 1.0), seeded so every run hears the same. A microphone always hears a room; digital
/// silence between words is what no recording has, and pocketsphinx's voice activity
/// detector and noise estimate go wrong on it (docs/transcription.md has the figures).
pub const ROOM_NOISE: f64 = 0.04;

/// `wav` after `lead_ms` and followed by `tail_ms` of the room alone, over the room's noise
/// floor of `noise` (0: digital silence), as 48 kHz mono.
pub fn in_room(wav: &Path, lead_ms: u64, tail_ms: u64, noise: f64, out: &Path) {
    let graph = format!(
        "[0]adelay={lead_ms}:all=1,apad=pad_dur={:.3}[speech];\
         anoisesrc=color=pink:amplitude={noise}:sample_rate=22050:seed=1[room];\
         [speech][room]amix=inputs=2:duration=first:normalize=0",
        tail_ms as f64 / 1000.0
    );
    ffmpeg(&[
        "-i",
        &wav.to_string_lossy(),
        "-filter_complex",
        &graph,
        "-ar",
        "48000",
        "-ac",
        "1",
        &out.to_string_lossy(),
    ]);
}

/// A grey 320×240 picture at 30 fps for as long as `wav` lasts, with `wav` as AAC, in the
/// container `out`'s extension says (`.mp4`, or `.ts` with `ts_offset_s` as the first
/// timestamp: a later run of a recording after a pause starts later on the capture clock).
pub fn with_picture(wav: &Path, out: &Path, ts_offset_s: f64) {
    let mut args = vec![
        "-f".to_owned(),
        "lavfi".to_owned(),
        "-i".to_owned(),
        "color=c=gray:size=320x240:rate=30".to_owned(),
        "-i".to_owned(),
        wav.to_string_lossy().into_owned(),
        "-shortest".to_owned(),
        "-c:v".to_owned(),
        "libx264".to_owned(),
        "-preset".to_owned(),
        "ultrafast".to_owned(),
        "-bf".to_owned(),
        "0".to_owned(),
        "-g".to_owned(),
        "15".to_owned(),
        "-pix_fmt".to_owned(),
        "yuv420p".to_owned(),
        "-c:a".to_owned(),
        "aac".to_owned(),
        "-b:a".to_owned(),
        "96k".to_owned(),
    ];
    if out.extension().is_some_and(|e| e == "ts") {
        args.extend(["-output_ts_offset".to_owned(), format!("{ts_offset_s:.3}")]);
    }
    args.push(out.to_string_lossy().into_owned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
}

/// A file's duration in ms, by ffprobe.
pub fn duration_ms(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("duration of {}: {text}", path.display()));
    (secs * 1000.0).round() as u64
}

/// `sentence` spoken in the room after `lead_ms` and followed by `tail_ms`, with a picture,
/// as `dir/<name>`.
pub fn spoken_media(
    dir: &Path,
    name: &str,
    sentence: &str,
    lead_ms: u64,
    tail_ms: u64,
    ts_offset_s: f64,
) -> PathBuf {
    let raw = dir.join(format!("{name}.said.wav"));
    let wav = dir.join(format!("{name}.wav"));
    let out = dir.join(name);
    say(sentence, &raw);
    in_room(&raw, lead_ms, tail_ms, ROOM_NOISE, &wav);
    with_picture(&wav, &out, ts_offset_s);
    out
}

/// The words of `text`, lower case, without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}
