//! T1 for cloud recordings: the WebVTT subtitle rendition, made from the recording's local
//! segments and uploaded beside them before the master playlist that references it.
//!
//! Owns: when the transcript of a completed recording is made (once: a retry finds its
//! playlist in the store and does not make it again) and uploading its objects. Must not
//! touch: recognising speech or writing WebVTT (`crate::transcribe`), the playlists' text
//! (`manifest`), the catalog.
//!
//! A transcript that cannot be made (no model, a segment gone) is logged and the recording is
//! completed without it: it never holds back or fails the recording.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::error::Failure;
use super::manifest::{self, ManifestSegment};
use super::store::Store;
use crate::catalog::UploadJob;
use crate::crypt::SegmentKey;
use crate::protocol::Id;
use crate::segments::{DecryptKey, PlainCopies};
use crate::transcribe::{self, SegmentSpan};

/// What making a cloud recording's transcript needs.
#[derive(Clone, Debug)]
pub(super) struct TranscriptSource {
    pub model_dir: PathBuf,
    pub storage_dir: PathBuf,
    pub segment_key: Option<SegmentKey>,
    /// Cancelled when the actor stops: a transcript in the making is abandoned (made again by
    /// the completion after the restart).
    pub cancel: CancellationToken,
}

/// Whether the recording in `dir` already has its subtitle rendition in the store.
pub(super) async fn present(store: &Store, dir: &str) -> Result<bool, Failure> {
    Ok(store
        .head(&format!("{dir}{}", manifest::SUBTITLES_NAME))
        .await?
        .is_some())
}

/// Makes and uploads the subtitle segments and their playlist, unless the store has them
/// already. True when the recording has its rendition in the store.
pub(super) async fn upload(
    store: &Store,
    dir: &str,
    recording: &Id,
    jobs: &[UploadJob],
    segments: &[ManifestSegment],
    source: &TranscriptSource,
) -> Result<bool, Failure> {
    if present(store, dir).await? {
        return Ok(true);
    }
    let files = match make(recording, jobs, source).await {
        Ok(files) => files,
        Err(_) if source.cancel.is_cancelled() => {
            // The actor is stopping and aborts this task: completing without the transcript
            // now would lose it for good; the completion after the restart makes it.
            std::future::pending::<()>().await;
            return Ok(false);
        }
        Err(reason) => {
            warn!(recording = %recording, %reason, "no transcript for this cloud recording");
            return Ok(false);
        }
    };
    for (segment, vtt) in segments.iter().zip(files) {
        let key = format!("{dir}{}", manifest::subtitle_name(segment.seq));
        store.put_bytes(&key, vtt.into_bytes()).await?;
    }
    let playlist = manifest::subtitles_playlist(segments);
    store
        .put_bytes(
            &format!("{dir}{}", manifest::SUBTITLES_NAME),
            playlist.into_bytes(),
        )
        .await?;
    info!(recording = %recording, segments = segments.len(), "transcript uploaded");
    Ok(true)
}

/// One WebVTT file per segment, made on a blocking thread at the lowest CPU priority from the
/// plaintext segments (encrypted ones decrypted into a private folder removed afterwards).
async fn make(
    recording: &Id,
    jobs: &[UploadJob],
    source: &TranscriptSource,
) -> Result<Vec<String>, String> {
    let source = source.clone();
    let recording = recording.clone();
    let files: Vec<(PathBuf, u64)> = jobs
        .iter()
        .map(|j| {
            (
                source.storage_dir.join(&j.segment.path),
                j.segment.duration_ms,
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let made = tokio::task::spawn_blocking(move || {
        let model = transcribe::Model::find(&source.model_dir).map_err(|e| e.to_string())?;
        let key = source.segment_key.map(DecryptKey::new);
        let plain = PlainCopies::for_conversion(&source.storage_dir, &recording, key);
        let paths: Vec<PathBuf> = files.iter().map(|f| f.0.clone()).collect();
        let inputs = plain.inputs(&paths).map_err(|e| e.to_string())?;
        let spans: Vec<SegmentSpan> = inputs
            .into_iter()
            .zip(&files)
            .map(|(path, f)| SegmentSpan {
                path,
                duration_ms: f.1,
            })
            .collect();
        let result = transcribe::hls_subtitles(&spans, &model, &source.cancel);
        drop(plain);
        result.map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("the transcription task failed: {e}"))?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        ok = made.is_ok(),
        "transcription ran"
    );
    made
}
