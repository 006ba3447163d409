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

/// Words too common to prove anything was understood.
pub const STOP_WORDS: &[&str] = &["the", "a", "to", "on", "of", "and", "is", "we", "you"];

/// The words of `sentence` that prove it was understood: not in [`STOP_WORDS`].
pub fn content_words(sentence: &str) -> Vec<String> {
    words(sentence)
        .into_iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// The content words of `sentence` that a transcript's `texts` hold.
pub fn heard_in<'a>(sentence: &str, texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let said: Vec<String> = texts.into_iter().flat_map(words).collect();
    content_words(sentence)
        .into_iter()
        .filter(|w| said.contains(w))
        .collect()
}

/// A cue as ffmpeg, an independent WebVTT reader, sees it.
#[derive(Clone, Debug)]
pub struct ReadCue {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// The first subtitle stream of `source` (a WebVTT file, or an HLS master playlist with a
/// subtitle rendition) as ffmpeg reads it. ffmpeg 5.1 takes HLS subtitle renditions only with
/// `-strict experimental`, and reads cue times as written (`-copyts`: not shifted to the
/// playlist's start); it does not apply `X-TIMESTAMP-MAP`.
pub fn cues_read_by_ffmpeg(source: &Path) -> Vec<ReadCue> {
    let dir = tempfile::tempdir().expect("dir");
    let srt = dir.path().join("cues.srt");
    ffmpeg(&[
        "-strict",
        "experimental",
        "-copyts",
        "-i",
        &source.to_string_lossy(),
        "-map",
        "0:s:0",
        &srt.to_string_lossy(),
    ]);
    let text = std::fs::read_to_string(&srt).expect("srt");
    text.split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines().skip_while(|l| !l.contains("-->"));
            let (a, b) = lines.next()?.split_once("-->")?;
            Some(ReadCue {
                start_ms: srt_ms(a),
                end_ms: srt_ms(b),
                text: lines.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// `hh:mm:ss,mmm` in ms.
fn srt_ms(t: &str) -> u64 {
    let (hms, milli) = t.trim().split_once(',').expect("srt time");
    let parts: Vec<u64> = hms.split(':').map(|p| p.parse().expect("number")).collect();
    ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + milli.parse::<u64>().expect("ms")
}

/// Cues as a WebVTT-like listing, for assertion messages.
pub fn show(cues: &[ReadCue]) -> String {
    cues.iter()
        .map(|c| format!("{} --> {} {}\n", c.start_ms, c.end_ms, c.text))
        .collect()
}

/// `sentence` spoken in a room after `lead_ms`, followed by `tail_ms` of the room, as the raw
/// samples the test microphone plays (`roomrec::media::fault::SPEECH_FILE`: 48 kHz mono
/// S16LE) at `out`; returns their length in ms.
pub fn microphone_speech(sentence: &str, lead_ms: u64, tail_ms: u64, out: &Path) -> u64 {
    let dir = tempfile::tempdir().expect("dir");
    let said = dir.path().join("said.wav");
    let room = dir.path().join("room.wav");
    say(sentence, &said);
    in_room(&said, lead_ms, tail_ms, ROOM_NOISE, &room);
    ffmpeg(&[
        "-i",
        &room.to_string_lossy(),
        "-f",
        "s16le",
        "-ar",
        "48000",
        "-ac",
        "1",
        &out.to_string_lossy(),
    ]);
    let bytes = std::fs::metadata(out).expect("speech written").len();
    bytes / 2 * 1000 / 48_000
}
