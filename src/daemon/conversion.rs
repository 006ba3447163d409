//! Conversion workers (L5): each turns one local recording's segments into one MP4, then,
//! when the recording is transcribed (T1), writes its WebVTT transcript beside it.
//!
//! Owns: the blocking conversion and transcription jobs and their cancel tokens. A segment
//! whose file is missing or does not decrypt is handed to the conversion as a hole (it goes
//! on past it, see `media::convert_recording`); the gaps go back with the MP4, and with the
//! evidence the core read from the catalog they make the completeness report written beside
//! it (`<name>.json`). Must not
//! touch: the catalog or the rules — results go back to the core as `ConversionDone` (sent as
//! soon as the MP4 is there: the transcript follows it, at the lowest CPU priority, and a
//! transcript that cannot be made is logged, never a failed recording); segment files, which
//! `segments::PlainCopies` reads (decrypting encrypted ones into a private folder removed
//! whatever the outcome). The MP4 and its transcript are the user's output: plaintext.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::dispatch;
use crate::catalog::SegmentRecord;
use crate::completeness::{self, Evidence};
use crate::media::{self, RecordedSegment};
use crate::protocol::{GapCause, Id, RecordingInfo, Timestamp};
use crate::rules::Converted;
use crate::segments::{DecryptKey, PlainCopies};

#[derive(Debug)]
pub struct ConversionDone {
    pub recording_id: Id,
    /// The MP4's path and its gaps, or why there is none.
    pub result: Result<Converted, String>,
}

pub struct Conversions {
    save_dir: PathBuf,
    storage_dir: PathBuf,
    key: Option<DecryptKey>,
    /// `transcription.model_dir`.
    model_dir: PathBuf,
    done: mpsc::Sender<ConversionDone>,
    running: HashMap<Id, Job>,
    /// Jobs whose MP4 is reported but whose transcript may still be in the making.
    transcribing: Vec<Job>,
}

type Job = (CancellationToken, JoinHandle<()>);

impl Conversions {
    pub fn new(
        save_dir: PathBuf,
        storage_dir: PathBuf,
        key: Option<DecryptKey>,
        model_dir: PathBuf,
        done: mpsc::Sender<ConversionDone>,
    ) -> Conversions {
        Conversions {
            save_dir,
            storage_dir,
            key,
            model_dir,
            done,
            running: HashMap::new(),
            transcribing: Vec::new(),
        }
    }

    /// Converts `segments` (the catalog's, in seq order) into the recording's MP4 and, with
    /// `evidence`, writes its completeness report `<name>.json` beside it; with
    /// `transcription` (T1 in force for the recording), then writes `<name>.vtt` beside it.
    pub fn start(
        &mut self,
        info: &RecordingInfo,
        segments: Vec<SegmentRecord>,
        evidence: Option<Evidence>,
    ) {
        let transcription = info.transcription;
        let id = info.recording_id.clone();
        if self.running.contains_key(&id) {
            warn!(recording = %id, "conversion already running");
            return;
        }
        let out = self.save_dir.join(mp4_name(info));
        let cancel = CancellationToken::new();
        let done = self.done.clone();
        let (job_cancel, job_id) = (cancel.clone(), id.clone());
        let plain = PlainCopies::for_conversion(&self.storage_dir, &id, self.key.clone());
        let model_dir = transcription.then(|| self.model_dir.clone());
        let storage_dir = self.storage_dir.clone();
        let report = evidence.map(|e| (info.created_at, e));
        info!(recording = %id, segments = segments.len(), out = %out.display(), transcription, "conversion started");
        let handle = tokio::spawn(async move {
            let result = convert(&storage_dir, segments, out, plain, job_cancel.clone())
                .await
                .map(|c| with_report(&job_id, c, report));
            match &result {
                Ok(c) => {
                    info!(recording = %job_id, path = %c.location, gaps = c.gaps.len(), "conversion done")
                }
                Err(reason) => warn!(recording = %job_id, %reason, "conversion did not complete"),
            }
            let mp4 = result.as_ref().ok().map(|c| PathBuf::from(&c.location));
            let _ = done
                .send(ConversionDone {
                    recording_id: job_id.clone(),
                    result,
                })
                .await;
            if let (Some(mp4), Some(model_dir)) = (mp4, model_dir) {
                transcribe(&job_id, mp4, model_dir, job_cancel).await;
            }
        });
        self.running.insert(id, (cancel, handle));
    }

    /// Reports a conversion that could not even start, through the same channel as results.
    pub fn fail(&self, recording_id: Id, reason: String) {
        warn!(recording = %recording_id, %reason, "conversion cannot start");
        let done = self.done.clone();
        tokio::spawn(async move {
            let _ = done
                .send(ConversionDone {
                    recording_id,
                    result: Err(reason),
                })
                .await;
        });
    }

    pub fn cancel(&mut self, id: &Id) {
        if let Some((cancel, _)) = self.running.get(id) {
            info!(recording = %id, "stopping conversion");
            cancel.cancel();
        }
    }

    /// The MP4 is reported; its job may go on with the transcript.
    pub fn finished(&mut self, id: &Id) {
        self.transcribing
            .retain(|(_, handle)| !handle.is_finished());
        if let Some(job) = self.running.remove(id) {
            self.transcribing.push(job);
        }
    }

    pub fn cancel_all(&mut self) {
        for (cancel, _) in self.running.values().chain(&self.transcribing) {
            cancel.cancel();
        }
    }

    /// Waits for every job to end; an interrupted conversion is `needs_finalize` at the next
    /// start, an interrupted transcript is not made (the MP4 is complete without it).
    pub async fn wait_all(&mut self) {
        let jobs = self.running.drain().map(|(_, job)| job);
        for (_, handle) in jobs.chain(self.transcribing.drain(..)).collect::<Vec<_>>() {
            let _ = handle.await;
        }
    }
}

/// Issue 14 item 4: the report of the converted recording, its gaps from `evidence` and the
/// conversion's unusable segments, written atomically as `<name>.json` beside the MP4; its
/// figures go with `conversion_done`. A report that cannot be written is logged: the MP4 is
/// the recording all the same.
fn with_report(
    id: &Id,
    mut converted: Converted,
    evidence: Option<(Timestamp, Evidence)>,
) -> Converted {
    let Some((created_at, mut evidence)) = evidence else {
        return converted;
    };
    evidence.unusable = converted
        .gaps
        .iter()
        .flat_map(|g| g.seqs.iter().map(|seq| (*seq, g.cause)))
        .collect();
    let report = completeness::report(id, created_at, &evidence);
    let path = report_path(Path::new(&converted.location));
    let json = dispatch::to_json(&report);
    match crate::transcribe::write_atomically(&path, &json) {
        Ok(()) => {
            info!(recording = %id, report = %path.display(), recorded_ms = report.summary.recorded_ms,
                covered_ms = report.summary.covered_ms, gaps = report.gaps.len(), "completeness report written");
            converted.completeness = Some(report.summary);
        }
        Err(e) => warn!(recording = %id, error = %e, "the completeness report was not written"),
    }
    converted
}

/// `<name>.json` beside `<name>.mp4`.
pub fn report_path(mp4: &Path) -> PathBuf {
    mp4.with_extension("json")
}

/// T1: `<name>.vtt` beside the MP4, on a blocking thread at the lowest CPU priority.
async fn transcribe(id: &Id, mp4: PathBuf, model_dir: PathBuf, cancel: CancellationToken) {
    let started = std::time::Instant::now();
    let job = tokio::task::spawn_blocking(move || {
        crate::transcribe::transcribe_mp4(&mp4, &model_dir, &cancel)
    });
    match job.await {
        Ok(Ok(vtt)) => info!(
            recording = %id,
            vtt = %vtt.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "transcript written"
        ),
        Ok(Err(e)) => warn!(recording = %id, error = %e, "no transcript for this recording"),
        Err(e) => warn!(recording = %id, error = %e, "the transcription task failed"),
    }
}

async fn convert(
    storage_dir: &Path,
    segments: Vec<SegmentRecord>,
    out: PathBuf,
    plain: PlainCopies,
    cancel: CancellationToken,
) -> Result<Converted, String> {
    if segments.is_empty() {
        return Err("no media was recorded for this recording".into());
    }
    let paths: Vec<PathBuf> = segments.iter().map(|s| storage_dir.join(&s.path)).collect();
    #[cfg(feature = "fault-injection")]
    let storage_dir = storage_dir.to_path_buf();
    let job = tokio::task::spawn_blocking(move || {
        #[cfg(feature = "fault-injection")]
        media::fault::hold_conversion_if_asked(&storage_dir, &cancel);
        let result = plain
            .each_input(&paths)
            .map_err(|e| e.to_string())
            .and_then(|inputs| {
                let recorded = recorded_segments(&segments, &paths, inputs);
                media::convert_recording(&recorded, &out, &cancel)
                    .map(|c| Converted {
                        location: out.display().to_string(),
                        gaps: c.gaps,
                        completeness: None,
                    })
                    .map_err(|e| match e {
                        // The recording stays `needs_finalize` with every segment; the reason
                        // starts with the error code, as the other `disk_full` reasons.
                        media::MediaError::NoRoom { .. } | media::MediaError::DiskFull(_) => {
                            format!("disk_full: {e}")
                        }
                        e => e.to_string(),
                    })
            });
        // The decrypted copies go whatever the outcome.
        drop(plain);
        result
    });
    match job.await {
        Ok(Ok(converted)) => Ok(converted),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(format!("conversion task failed: {e}")),
    }
}

/// The catalog's segments with the files to read: an encrypted segment that does not
/// decrypt is a hole, `missing` when its file is gone, `corrupt` otherwise.
fn recorded_segments(
    segments: &[SegmentRecord],
    paths: &[PathBuf],
    inputs: Vec<Result<PathBuf, crate::segments::SegmentError>>,
) -> Vec<RecordedSegment> {
    segments
        .iter()
        .zip(paths)
        .zip(inputs)
        .map(|((segment, path), input)| RecordedSegment {
            seq: segment.seq,
            duration_ms: segment.duration_ms,
            file: input.map_err(|e| {
                warn!(seq = segment.seq, error = %e, "a segment does not decrypt");
                match path.try_exists() {
                    Ok(false) => GapCause::Missing,
                    _ => GapCause::Corrupt,
                }
            }),
        })
        .collect()
}

/// `<date>_<meeting>_<owner>_<recording>.mp4`, with every character outside a portable set
/// replaced, so the name is valid on any file system an operator may copy it to.
pub fn mp4_name(info: &RecordingInfo) -> String {
    let date = info
        .created_at
        .to_rfc3339()
        .chars()
        .take(19)
        .map(|c| if c == ':' { '-' } else { c })
        .collect::<String>();
    let raw = format!(
        "{date}_{}_{}_{}.mp4",
        info.meeting_id, info.owner, info.recording_id
    );
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    debug_assert!(!Path::new(&name).components().any(|c| c.as_os_str() == ".."));
    name
}

/// Known speech made by espeak-ng and ffmpeg, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/common/speech.rs"]
#[allow(dead_code)]
mod speech_fixture;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RecordingKind, RecordingState, Timestamp};
    use speech_fixture as speech;

    fn info(id: &str, transcription: bool) -> RecordingInfo {
        let id_of = |s: &str| Id::parse(s).expect("id");
        RecordingInfo {
            recording_id: id_of(id),
            meeting_id: id_of("m-1"),
            kind: RecordingKind::Local,
            owner: id_of("u-1"),
            started_by: id_of("u-1"),
            host: id_of("u-1"),
            state: RecordingState::Stopped,
            created_at: Timestamp(1_700_000_000_000),
            recorded_ms: 0,
            bytes: 0,
            shared: false,
            location: None,
            transcription,
        }
    }

    /// Converts `segments` with `transcription`, waits for the whole job (transcript
    /// included), returns the MP4.
    async fn convert_and_wait(dir: &Path, segments: Vec<PathBuf>, transcription: bool) -> PathBuf {
        let (tx, mut rx) = mpsc::channel(4);
        let save = dir.join("save");
        std::fs::create_dir_all(&save).expect("save dir");
        let mut conversions = Conversions::new(
            save,
            dir.join("storage"),
            None,
            PathBuf::from(crate::transcribe::DEFAULT_MODEL_DIR),
            tx,
        );
        let info = info(if transcription { "r-t" } else { "r-n" }, transcription);
        let records = segments
            .iter()
            .enumerate()
            .map(|(seq, path)| SegmentRecord {
                seq: seq as u64,
                path: path.display().to_string(),
                bytes: 0,
                duration_ms: 0,
                sha256: String::new(),
                sealed_at: Timestamp(0),
                silent_ms: 0,
            })
            .collect();
        conversions.start(&info, records, None);
        let done = rx.recv().await.expect("conversion done");
        let mp4 = PathBuf::from(done.result.expect("converted").location);
        conversions.finished(&info.recording_id);
        conversions.wait_all().await;
        mp4
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transcribed_recording_gets_its_vtt_beside_the_mp4_after_the_conversion() {
        let dir = tempfile::tempdir().expect("dir");
        let sentence = "Please open the window before the meeting starts.";
        // One segment: the pause and the timeline are the transcriber's tests'; this is the
        // job's order (MP4 reported, then the transcript) and the flag.
        let one = speech::spoken_media(dir.path(), "1.ts", sentence, 1_000, 500, 10.0);

        let mp4 = convert_and_wait(dir.path(), vec![one.clone()], true).await;
        let vtt = crate::transcribe::vtt_path(&mp4);
        let text = std::fs::read_to_string(&vtt).expect("the transcript is beside the MP4");
        assert!(text.starts_with("WEBVTT"), "{text}");
        assert!(text.contains("window"), "{text}");

        let plain = convert_and_wait(dir.path(), vec![one], false).await;
        assert!(plain.exists());
        assert!(
            !crate::transcribe::vtt_path(&plain).exists(),
            "no transcript when T1 is not in force"
        );
    }
}
