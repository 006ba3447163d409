//! T1 transcription against real parts: speech synthesised by espeak-ng from known sentences,
//! made into an MP4 or MPEG-TS segments by ffmpeg, recognised by the real `pocketsphinx`
//! element with Debian's US English model, the WebVTT read back by ffmpeg.
//!
//! The speech is mixed over a room's noise floor (`common::speech::ROOM_NOISE`), as a
//! microphone hears it. The tests assert what holds robustly: cues exist, they sit where the
//! speech is on the recording's timeline, and at least half of the sentence's own content
//! words come out (docs/transcription.md has the word error rate the bench measures).

use crate::common;

use std::path::Path;

use common::speech::{self, content_words};
use roomrec::transcribe::{self, Audio, Cue, Model};
use tokio_util::sync::CancellationToken;

const FIRST: &str = "Please open the window before the meeting starts.";
const SECOND: &str = "Good morning everyone, welcome to the weekly meeting.";

fn model() -> Model {
    Model::find(Path::new(transcribe::DEFAULT_MODEL_DIR))
        .expect("Debian's pocketsphinx-en-us is installed (scripts/install-deps)")
}

/// The content words of `sentence` found in `cues`.
fn heard<'a>(sentence: &str, cues: impl Iterator<Item = &'a Cue>) -> Vec<String> {
    speech::heard_in(sentence, cues.map(|c| c.text.as_str()))
}

#[test]
fn a_local_recordings_speech_becomes_a_webvtt_transcript_beside_its_mp4() {
    let dir = tempfile::tempdir().expect("dir");
    // Speech from 2.0 s on.
    let mp4 = speech::spoken_media(dir.path(), "rec.mp4", FIRST, 2_000, 1_000, 0.0);
    let length = speech::duration_ms(&mp4);
    let vtt = transcribe::transcribe_mp4(
        &mp4,
        Path::new(transcribe::DEFAULT_MODEL_DIR),
        &CancellationToken::new(),
    )
    .expect("transcribed");
    assert_eq!(vtt, dir.path().join("rec.vtt"), "beside the MP4");
    let text = std::fs::read_to_string(&vtt).expect("vtt");
    assert!(text.starts_with("WEBVTT\n"), "{text}");

    let cues = speech::cues_read_by_ffmpeg(&vtt);
    assert!(!cues.is_empty(), "ffmpeg reads cues from:\n{text}");
    // The first cue is the sentence's: the noise floor's onset at 0 s gives no stray word
    // (the recogniser's warm-up takes it, docs/transcription.md).
    let first = &cues[0];
    assert!(
        !speech::heard_in(FIRST, [first.text.as_str()]).is_empty(),
        "the first cue holds a word of the sentence:\n{text}"
    );
    let first_start = first.start_ms;
    assert!(
        (1_500..=4_000).contains(&first_start),
        "the speech's cue starts where the speech does (2.0 s), not at {first_start} ms:\n{text}"
    );
    let last_end = cues.iter().map(|c| c.end_ms).max().unwrap_or(0);
    assert!(
        last_end <= length + 100,
        "no cue after the recording ends ({length} ms):\n{text}"
    );
    let found = speech::heard_in(FIRST, cues.iter().map(|c| c.text.as_str()));
    assert!(
        found.len() * 2 >= content_words(FIRST).len(),
        "only {found:?} of {:?} recognised in:\n{text}",
        content_words(FIRST)
    );
    eprintln!(
        "recognised {found:?} of {:?}:\n{text}",
        content_words(FIRST)
    );
}

#[test]
fn speech_after_a_pause_is_at_its_offset_in_recorded_time() {
    let dir = tempfile::tempdir().expect("dir");
    // Two runs of one recording's capture clock, 60 s of pause between them: the second
    // segment's timestamps start a minute after the first one's end.
    let one = speech::spoken_media(dir.path(), "00000001.ts", SECOND, 1_000, 1_000, 10.0);
    let one_ms = speech::duration_ms(&one);
    let resume_s = 10.0 + one_ms as f64 / 1000.0 + 60.0;
    let two = speech::spoken_media(dir.path(), "00000003.ts", FIRST, 1_500, 1_000, resume_s);
    let two_ms = speech::duration_ms(&two);

    let segments = [one, two];
    let cues = transcribe::transcribe(
        Audio::Segments(&segments),
        &model(),
        &CancellationToken::new(),
    )
    .expect("transcribed");
    let shown = transcribe::webvtt_document(&cues);
    assert!(
        cues.iter().any(|c| c.start_ms < one_ms),
        "the first segment's speech has cues:\n{shown}"
    );
    let after: Vec<&Cue> = cues.iter().filter(|c| c.start_ms >= one_ms).collect();
    // The second segment's noise starts abruptly too: its first cue with a sentence word.
    let resumed = after
        .iter()
        .find(|c| !heard(FIRST, std::iter::once(**c)).is_empty())
        .map_or(0, |c| c.start_ms);
    assert!(
        (one_ms + 1_000..=one_ms + 4_000).contains(&resumed),
        "the speech after the pause starts 1.5 s into the second segment, at {} ms of \
         recorded time (not a minute later): first cue after the pause at {resumed}\n{shown}",
        one_ms + 1_500
    );
    let end = cues.iter().map(|c| c.end_ms).max().unwrap_or(0);
    assert!(
        end <= one_ms + two_ms + 100,
        "no cue beyond the recorded {} ms:\n{shown}",
        one_ms + two_ms
    );
    let found = heard(FIRST, after.into_iter());
    assert!(
        found.len() * 2 >= content_words(FIRST).len(),
        "only {found:?} of {:?} recognised after the pause:\n{shown}",
        content_words(FIRST)
    );
    assert!(
        heard(SECOND, cues.iter().filter(|c| c.start_ms < one_ms)).len() * 2
            >= content_words(SECOND).len(),
        "the first segment's sentence recognised before the pause:\n{shown}"
    );
    eprintln!("{shown}");
}

#[test]
fn a_missing_model_is_said_and_no_transcript_is_written() {
    let dir = tempfile::tempdir().expect("dir");
    let mp4 = speech::spoken_media(dir.path(), "rec.mp4", "Hello.", 200, 200, 0.0);
    let nowhere = dir.path().join("no-model");
    let reason = transcribe::unavailable_reason(&nowhere).expect("unavailable");
    assert!(
        reason.contains("no-model") && reason.contains("transcription.model_dir"),
        "the sentence names the folder and the key: {reason}"
    );
    let e = transcribe::transcribe_mp4(&mp4, &nowhere, &CancellationToken::new()).unwrap_err();
    assert!(
        matches!(e, transcribe::TranscribeError::Model { .. }),
        "{e}"
    );
    assert!(!transcribe::vtt_path(&mp4).exists());
    assert!(mp4.exists(), "the recording is untouched");
    assert_eq!(
        transcribe::unavailable_reason(Path::new(transcribe::DEFAULT_MODEL_DIR)),
        None,
        "Debian's model is usable"
    );
}

/// A recording that starts muted (digital silence, encoded by voaacenc as the device does)
/// has no cue in that silence. (This file does not set the detector off even without the
/// recogniser's dither; a silenced cloud recording through the daemon did, and the console's
/// browser test, which records one, shows no cue there since the dither.)
#[test]
fn a_recording_that_starts_muted_has_no_cue_in_the_silence() {
    let dir = tempfile::tempdir().expect("dir");
    let raw = dir.path().join("said.wav");
    let wav = dir.path().join("muted.wav");
    let mp4 = dir.path().join("muted.mp4");
    speech::say(SECOND, &raw);
    // 4 s of digital silence, the sentence, 1 s of silence.
    speech::in_room(&raw, 4_000, 1_000, 0.0, &wav);
    // Encoded as the device encodes (voaacenc), not by ffmpeg's encoder.
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", wav.display()))
        .args([
            "!",
            "wavparse",
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
        ])
        .args([
            "audio/x-raw,rate=48000",
            "!",
            "voaacenc",
            "!",
            "aacparse",
            "!",
            "mp4mux",
        ])
        .args(["!", "filesink"])
        .arg(format!("location={}", mp4.display()))
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success());
    let cues = transcribe::transcribe(Audio::File(&mp4), &model(), &CancellationToken::new())
        .expect("transcribed");
    let shown = transcribe::webvtt_document(&cues);
    assert!(!cues.is_empty(), "the sentence is heard:\n{shown}");
    assert!(
        cues.iter().all(|c| c.start_ms >= 3_700),
        "no cue in the 4 s of silence before the sentence:\n{shown}"
    );
}
