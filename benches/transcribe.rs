//! T1's accuracy and cost: known sentences spoken by espeak-ng one after the other as in a
//! meeting (1.5 s of the room between them), mixed over a room's noise floor, encoded as the
//! device records (AAC in an MP4 with a picture), transcribed by roomrec's transcriber
//! (`transcribe::transcribe`, the local path). Prints, for each noise floor, the word error
//! rate per sentence and in total (Levenshtein distance on words / reference words), and the
//! CPU seconds per second of audio, with a bare `gst-launch-1.0` of the same recogniser
//! pipeline on the same file as the reference measured in the same run. Asserts nothing.
//!
//!   cargo bench --bench transcribe          (or benches/transcribe.sh)

#[path = "../tests/common/speech.rs"]
#[allow(dead_code)]
mod speech;

use std::path::{Path, PathBuf};

use roomrec::transcribe::{self, Audio, Cue, Model};
use tokio_util::sync::CancellationToken;

const SENTENCES: &[&str] = &[
    "Good morning everyone, welcome to the weekly meeting.",
    "Please open the window before the meeting starts.",
    "We will review the sales report on Monday.",
    "The budget for next year is ready.",
    "Thank you all for coming today.",
    "Please send me the final version of the document.",
    "Can everyone hear me clearly on the call?",
    "Let us move the next review to Thursday afternoon.",
];
/// The room between two sentences, and before the first.
const GAP_MS: u64 = 1_500;
/// Peak amplitudes of the room's pink noise: digital silence, a quiet room, the tests' room.
const NOISE_FLOORS: &[f64] = &[0.0, 0.01, speech::ROOM_NOISE];

fn main() {
    let dir = tempfile::tempdir().expect("work dir");
    let model = Model::find(Path::new(transcribe::DEFAULT_MODEL_DIR))
        .expect("Debian's pocketsphinx-en-us (scripts/install-deps)");
    let (speech_wav, spans) = meeting(dir.path());
    println!(
        "{} sentences, espeak-ng {:?}, {} ms of room between them; pocketsphinx with {}",
        SENTENCES.len(),
        speech::VOICE,
        GAP_MS,
        model.hmm.display()
    );
    for &noise in NOISE_FLOORS {
        let name = format!("meeting-{noise}");
        let wav = dir.path().join(format!("{name}.wav"));
        speech::in_room(&speech_wav, 0, 0, noise, &wav);
        let mp4 = dir.path().join(format!("{name}.mp4"));
        speech::with_picture(&wav, &mp4, 0.0);
        let audio_s = speech::duration_ms(&mp4) as f64 / 1000.0;
        run(&mp4, &model, &spans, noise, audio_s);
    }
}

/// Every sentence's WAV, one after the other with `GAP_MS` of silence before each; returns
/// the file and each sentence's span (ms) in it.
fn meeting(dir: &Path) -> (PathBuf, Vec<(u64, u64)>) {
    let mut samples: Vec<i16> = Vec::new();
    let mut rate = 22_050;
    let mut spans = Vec::new();
    for (i, sentence) in SENTENCES.iter().enumerate() {
        let wav = dir.join(format!("s{i}.wav"));
        speech::say(sentence, &wav);
        let (r, said) = read_wav(&wav);
        rate = r;
        samples.extend(std::iter::repeat_n(
            0,
            (GAP_MS * u64::from(r) / 1000) as usize,
        ));
        let start = samples.len() as u64 * 1000 / u64::from(r);
        samples.extend(said);
        spans.push((start, samples.len() as u64 * 1000 / u64::from(r)));
    }
    samples.extend(std::iter::repeat_n(
        0,
        (GAP_MS * u64::from(rate) / 1000) as usize,
    ));
    let out = dir.join("meeting.wav");
    write_wav(&out, rate, &samples);
    (out, spans)
}

fn run(mp4: &Path, model: &Model, spans: &[(u64, u64)], noise: f64, audio_s: f64) {
    let before = cpu_seconds(libc::RUSAGE_SELF);
    let wall = std::time::Instant::now();
    let cues = transcribe::transcribe(Audio::File(mp4), model, &CancellationToken::new())
        .expect("transcribed");
    let wall_s = wall.elapsed().as_secs_f64();
    let ours = cpu_seconds(libc::RUSAGE_SELF) - before;
    let reference = gst_launch_cpu(mp4, model);

    println!("\nnoise floor: pink noise at {noise} peak (0: digital silence between words)");
    let (mut edits, mut words) = (0, 0);
    for (i, (sentence, span)) in SENTENCES.iter().zip(spans).enumerate() {
        let reference_words = speech::words(sentence);
        let next = spans.get(i + 1).map_or(u64::MAX, |s| s.0);
        let heard = words_in(&cues, span.0.saturating_sub(GAP_MS / 2), next - GAP_MS / 2);
        let e = levenshtein(&reference_words, &heard);
        edits += e;
        words += reference_words.len();
        println!(
            "  WER {:>5.1} %  {:<52} -> {}",
            100.0 * e as f64 / reference_words.len() as f64,
            sentence,
            heard.join(" ")
        );
    }
    let all: Vec<String> = SENTENCES.iter().flat_map(|s| speech::words(s)).collect();
    let said: Vec<String> = cues.iter().flat_map(|c| speech::words(&c.text)).collect();
    println!(
        "  total WER {:.1} % ({edits} word errors in {words} words by sentence; {:.1} % aligned over the whole transcript)",
        100.0 * edits as f64 / words as f64,
        100.0 * levenshtein(&all, &said) as f64 / all.len() as f64
    );
    println!(
        "  CPU {ours:.2} s for {audio_s:.1} s of audio: {:.3} CPU s per audio s ({:.1} CPU s per minute), \
         wall {wall_s:.1} s; bare gst-launch-1.0 of the same pipeline {reference:.2} s: ratio {:.2}",
        ours / audio_s,
        60.0 * ours / audio_s,
        ours / reference
    );
}

/// The words of the cues starting in `[from, to)` ms.
fn words_in(cues: &[Cue], from: u64, to: u64) -> Vec<String> {
    cues.iter()
        .filter(|c| (from..to).contains(&c.start_ms))
        .flat_map(|c| speech::words(&c.text))
        .collect()
}

/// Word-level edit distance (substitutions, insertions, deletions).
fn levenshtein(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(x != y))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// User + system CPU seconds of `who` (this process with all its threads, or its children).
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the struct it is given; nothing else is touched.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds of `gst-launch-1.0` running the same recogniser over `mp4`.
fn gst_launch_cpu(mp4: &Path, model: &Model) -> f64 {
    let before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", mp4.display()))
        .args([
            "!",
            "decodebin",
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
        ])
        .arg("audio/x-raw,format=S16LE,rate=16000,channels=1")
        .args(["!", "pocketsphinx"])
        .arg(format!("hmm={}", model.hmm.display()))
        .arg(format!("lm={}", model.lm.display()))
        .arg(format!("dict={}", model.dict.display()))
        .args(["!", "fakesink"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success(), "gst-launch-1.0 failed");
    cpu_seconds(libc::RUSAGE_CHILDREN) - before
}

fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let data = std::fs::read(path).expect("wav");
    let rate = u32::from_le_bytes([data[24], data[25], data[26], data[27]]);
    // espeak-ng writes a plain 44-byte header, 16-bit mono.
    let at = data
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk")
        + 8;
    let samples = data[at..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (rate, samples)
}

fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let bytes = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + bytes as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + bytes).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&bytes.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).expect("write wav");
}
