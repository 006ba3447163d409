//! T1 from the outside: the daemon's `status` says whether transcription is available, a
//! missing speech model never touches recording, and speech in the room (the test microphone
//! playing espeak-ng's sentence, `media::fault::SPEECH_FILE`) comes out as a transcript beside
//! a local MP4 and as the subtitles of a cloud recording, read back by ffmpeg.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::device::{config_text, Client, Device, PREFIX};
use common::s3::S3Server;
use common::speech::{self, ReadCue};
use common::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_is_unavailable_in_status_and_recordings_are_made_as_always() {
    let broker = Broker::start();
    let model = tempfile::tempdir().expect("dir");
    let nowhere = model.path().join("no-model");
    let extra = format!("[transcription]\nmodel_dir = \"{}\"\n", nowhere.display());
    let _device = Device::start(&broker, &extra);
    let mut c = Client::connect(&broker).await;
    let status = c
        .wait("status with transcription", |m| {
            m.topic == format!("{PREFIX}/status") && m.json["online"] == true
        })
        .await;
    let t = &status.json["transcription"];
    assert_eq!(t["available"], false, "{}", status.json);
    let reason = t["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("no-model") && reason.contains("transcription.model_dir"),
        "the reason names the folder and the key to set: {reason}"
    );

    c.join_meeting().await;
    let (_, mp4) = c.local_mp4(11_000).await;
    let info = roomrec::media::probe(&mp4).expect("the MP4 plays");
    assert!(info.duration_ms >= 10_000, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_debians_model_installed_transcription_is_available() {
    let broker = Broker::start();
    let _device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    let status = c
        .wait("status", |m| {
            m.topic == format!("{PREFIX}/status") && m.json["online"] == true
        })
        .await;
    assert_eq!(
        status.json["transcription"],
        serde_json::json!({"available": true}),
        "{}",
        status.json
    );
}

/// m-1 (`common::device::meeting`) on `tier`, asking for transcription.
fn transcribed_meeting(tier: &str) -> serde_json::Value {
    let mut m = common::device::meeting(1);
    m["account"]["tier"] = tier.into();
    m["settings"] = serde_json::json!({"transcription": true});
    m
}

/// Records 11 s locally in `meeting`, ends it, and returns the MP4 once converted.
async fn record_local_mp4(c: &mut Client, meeting: serde_json::Value) -> PathBuf {
    let want = meeting["account"]["tier"] == "pro";
    c.licence("2099-01-01T00:00:00Z").await;
    c.meeting(meeting).await;
    c.wait_state(
        "meeting applied, transcription in force as its tier says",
        |s| s["meeting_id"] == "m-1" && s["in_force"]["transcription"] == want,
    )
    .await;
    c.local_mp4(11_000).await.1
}

/// T1 through the daemon: a pro meeting asking for transcription gets a WebVTT transcript
/// beside its local MP4 (written after the MP4, at low priority); what it recognises in
/// speech is tested in `tests/library/transcribe.rs`, here the source is the test tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_a_pro_meeting_gets_a_transcript_beside_its_mp4() {
    let broker = Broker::start();
    let _device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    let mp4 = record_local_mp4(&mut c, transcribed_meeting("pro")).await;
    let vtt = mp4.with_extension("vtt");
    let mut waited = 0;
    while !vtt.exists() && waited < 240 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        waited += 1;
    }
    let text = std::fs::read_to_string(&vtt).expect("a WebVTT transcript beside the MP4");
    assert!(text.starts_with("WEBVTT"), "{text}");
}

/// T1 below pro: no transcript, and the host team is told why (reason `tier`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_a_free_meeting_is_told_and_gets_no_transcript() {
    let broker = Broker::start();
    let _device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    let mp4 = record_local_mp4(&mut c, transcribed_meeting("free")).await;
    // Told when the meeting was applied (the client keeps what it has seen).
    let told = c.wait_event("transcription_unavailable").await;
    assert_eq!(told["reason"], "tier", "{told}");
    // The conversion job writes a transcript right after the MP4; give it the time a
    // transcript of 11 s takes (~3 s here) before looking. The state above already showed
    // transcription not in force.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    assert!(
        !mp4.with_extension("vtt").exists(),
        "no transcript below pro"
    );
}

/// What the test microphone says, after [`LEAD_MS`] of the room and before [`TAIL_MS`] more,
/// over and over.
const SENTENCE: &str = "Good morning everyone, welcome to the weekly meeting.";
const LEAD_MS: u64 = 1_000;
const TAIL_MS: u64 = 2_500;
/// The content words of [`SENTENCE`] in `cues`.
fn heard<'a>(cues: impl IntoIterator<Item = &'a ReadCue>) -> Vec<String> {
    speech::heard_in(SENTENCE, cues.into_iter().map(|c| c.text.as_str()))
}

fn content_words() -> Vec<String> {
    speech::content_words(SENTENCE)
}

/// The start of the first cue holding a word of the sentence at or after `from_ms`.
fn first_spoken(cues: &[ReadCue], from_ms: u64) -> Option<u64> {
    cues.iter()
        .filter(|c| c.start_ms >= from_ms)
        .find(|c| !heard([*c]).is_empty())
        .map(|c| c.start_ms)
}

/// Waits for the file at `path` (a transcript is written after the MP4, at nice 19).
async fn appears(path: &Path) -> bool {
    for _ in 0..240 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// T1 as a room uses it: a pro meeting asking for transcription, someone speaking, a cloud
/// and a local recording. The cloud recording (started first, with the capture) has the
/// sentence at [`LEAD_MS`] of every loop of the speech in its subtitles, read by ffmpeg
/// through the uploaded master playlist; the local MP4 has it in the `.vtt` beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_speech_in_the_room_is_in_the_local_transcript_and_the_cloud_subtitles() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let (port, upload) = (broker.port, s3.upload_toml(""));
    let device = Device::start_custom(|dir| config_text(port, dir, &upload));
    let trigger = device.storage().join(roomrec::media::fault::SPEECH_FILE);
    let loop_ms = speech::microphone_speech(SENTENCE, LEAD_MS, TAIL_MS, &trigger);
    let mut c = Client::connect(&broker).await;
    c.licence("2099-01-01T00:00:00Z").await;
    c.meeting(transcribed_meeting("pro")).await;
    c.wait_state("transcription in force", |s| {
        s["in_force"]["transcription"] == true
    })
    .await;
    let cloud = c.start_recording("u-1", "cloud").await;
    // A participant the host allows records locally (the host, recording to the cloud,
    // cannot also).
    let allowed = c
        .cmd(serde_json::json!({"actor": "u-1", "action": "allow_local", "participant": "u-3"}))
        .await;
    assert_eq!(allowed["ok"], true, "{allowed}");
    let _local = c.start_recording("u-3", "local").await;
    // Two whole loops in the cloud recording.
    c.wait_state("two loops of speech recorded", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 2 * loop_ms + 500
    })
    .await;
    c.end_meeting().await;
    let done = c.wait_event("conversion_done").await;
    let mp4 = PathBuf::from(done["location"].as_str().expect("the MP4's location"));
    let ready = c.wait_event("recording_ready").await;
    assert_eq!(ready["recording_id"], cloud.as_str(), "{ready}");

    // Cloud: the subtitles through the master playlist, on the recording's timeline.
    let master = s3.object_path(&format!("u-1/m-1/{cloud}/master.m3u8"));
    assert!(master.is_file(), "a master playlist: {ready}");
    let cues = speech::cues_read_by_ffmpeg(&master);
    let shown = speech::show(&cues);
    assert!(
        cues.first().is_some_and(|c| !heard([c]).is_empty()),
        "the first cue holds a word of the sentence (no stray word from the room's noise \
         at the start):\n{shown}"
    );
    for n in 0..2 {
        let said_at = n * loop_ms + LEAD_MS;
        let found = first_spoken(&cues, n * loop_ms + 500);
        assert!(
            found.is_some_and(|t| (said_at.saturating_sub(300)..=said_at + 2_500).contains(&t)),
            "loop {n}: the sentence is said at {said_at} ms of the recording, its first cue \
             is at {found:?}:\n{shown}"
        );
    }
    let found = heard(&cues);
    assert!(
        found.len() * 2 >= content_words().len(),
        "only {found:?} of {:?} in the cloud subtitles:\n{shown}",
        content_words()
    );
    eprintln!("cloud subtitles:\n{shown}");

    // Local: the transcript beside the MP4 (started a moment after the cloud recording, so
    // its timeline starts a segment later at most), within the MP4's length.
    let vtt = mp4.with_extension("vtt");
    assert!(appears(&vtt).await, "a transcript beside {}", mp4.display());
    let cues = speech::cues_read_by_ffmpeg(&vtt);
    let shown = speech::show(&cues);
    let length = speech::duration_ms(&mp4);
    let found = heard(&cues);
    assert!(
        found.len() * 2 >= content_words().len(),
        "only {found:?} of {:?} in the local transcript:\n{shown}",
        content_words()
    );
    let last_end = cues.iter().map(|c| c.end_ms).max().unwrap_or(0);
    assert!(
        last_end <= length + 100,
        "no cue after the MP4's end at {length} ms:\n{shown}"
    );
    eprintln!("local transcript ({length} ms):\n{shown}");
}
