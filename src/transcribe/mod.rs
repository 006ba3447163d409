//! Transcription (T1): a recording's speech as WebVTT cues on the recording's timeline.
//!
//! Owns: finding the speech model in its folder (`transcription.model_dir`), the recogniser
//! (`pocketsphinx` through GStreamer, at the lowest CPU priority), the cues, the WebVTT files
//! (the `.vtt` beside a local MP4, written atomically; the per-segment files of a cloud
//! recording's HLS subtitle rendition) and whether transcription is available at all (for
//! `status`). Must not touch: the rules (whether a recording is transcribed is decided there
//! and handed in as a plain `bool` by the caller), the catalog, the playlists and the bucket
//! (the upload's), the capture pipeline.
//!
//! Times: a cue's time is the offset into the recording as it plays: paused time is absent,
//! because the local MP4 has none and a cloud recording's segments are read through media's
//! [`recording_source`](crate::media::recording_source), which places them as the MP4 is.
//! See `docs/transcription.md` for the model, the accuracy measured and the CPU cost.

mod cues;
mod priority;
mod recognise;
mod warmup;
mod webvtt;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

pub use cues::Cue;
pub use recognise::Audio;

/// Debian's `pocketsphinx-en-us`: US English.
pub const DEFAULT_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";

/// Why there is no transcript, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error(
        "the speech model in {} is not usable: {what}; install pocketsphinx-en-us or set \
         transcription.model_dir to a folder holding a pocketsphinx model (an acoustic model \
         folder with mdef, one *.lm.bin and one *.dict)",
        dir.display()
    )]
    Model { dir: PathBuf, what: String },
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
    #[error("transcription pipeline: {0}")]
    Pipeline(String),
    #[error("the recording has no sound to transcribe")]
    NoSound,
    #[error("the transcription made no progress for {0} s and was stopped")]
    Stalled(u64),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the transcription was cancelled")]
    Cancelled,
}

/// A pocketsphinx model: the acoustic model folder, the language model and the dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub hmm: PathBuf,
    pub lm: PathBuf,
    pub dict: PathBuf,
}

impl Model {
    /// The model in `dir`, laid out as Debian's `pocketsphinx-en-us`: the one sub-folder
    /// holding `mdef` (acoustic model), the one `*.lm.bin` (or `*.lm`) that is not a
    /// `-phone` model (language model), the one `*.dict` (dictionary).
    pub fn find(dir: &Path) -> Result<Model, TranscribeError> {
        let bad = |what: String| TranscribeError::Model {
            dir: dir.to_owned(),
            what,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read it ({e})")))?;
        let (mut hmm, mut lm, mut dict) = (Vec::new(), Vec::new(), Vec::new());
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.join("mdef").is_file() {
                hmm.push(path);
            } else if is_language_model(&name) && path.is_file() {
                lm.push(path);
            } else if name.ends_with(".dict") && path.is_file() {
                dict.push(path);
            }
        }
        Ok(Model {
            hmm: one(hmm, "acoustic model folder (a sub-folder with mdef)").map_err(bad)?,
            lm: one(lm, "language model (*.lm.bin or *.lm)").map_err(bad)?,
            dict: one(dict, "dictionary (*.dict)").map_err(bad)?,
        })
    }
}

fn is_language_model(name: &str) -> bool {
    let stem = name
        .strip_suffix(".lm.bin")
        .or_else(|| name.strip_suffix(".lm"));
    stem.is_some_and(|s| !s.is_empty() && !s.ends_with("-phone"))
}

fn one(mut found: Vec<PathBuf>, what: &str) -> Result<PathBuf, String> {
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("it holds no {what}")),
        n => Err(format!("it holds {n} candidates for the {what}; keep one")),
    }
}

/// `None` when transcription can run with the model in `dir`; else the sentence `status`
/// shows. Cheap: a few file checks and a plugin registry lookup.
pub fn unavailable_reason(dir: &Path) -> Option<String> {
    if let Err(e) = Model::find(dir) {
        return Some(e.to_string());
    }
    let element = gstreamer::init()
        .ok()
        .and_then(|()| gstreamer::ElementFactory::find("pocketsphinx"));
    if element.is_none() {
        return Some(
            "the GStreamer element pocketsphinx is not installed; install gstreamer1.0-pocketsphinx"
                .into(),
        );
    }
    None
}

/// The cues of `audio`; blocking, at the lowest CPU priority (run it on a blocking thread).
pub fn transcribe(
    audio: Audio<'_>,
    model: &Model,
    cancel: &CancellationToken,
) -> Result<Vec<Cue>, TranscribeError> {
    let utterances = recognise::recognise(audio, model, cancel)?;
    Ok(cues::cues(&utterances))
}

/// `<name>.vtt` beside `<name>.mp4`.
pub fn vtt_path(mp4: &Path) -> PathBuf {
    mp4.with_extension("vtt")
}

/// Local recordings (T1): transcribe the MP4 with the model in `model_dir` and write
/// [`vtt_path`] atomically. Returns the file written. Blocking.
pub fn transcribe_mp4(
    mp4: &Path,
    model_dir: &Path,
    cancel: &CancellationToken,
) -> Result<PathBuf, TranscribeError> {
    let model = Model::find(model_dir)?;
    let cues = transcribe(Audio::File(mp4), &model, cancel)?;
    let out = vtt_path(mp4);
    write_atomically(&out, webvtt::document(&cues).as_bytes())?;
    tracing::info!(mp4 = %mp4.display(), vtt = %out.display(), cues = cues.len(), "transcript written");
    Ok(out)
}

/// One media segment of a cloud recording, as its subtitle segment needs it.
#[derive(Clone, Debug)]
pub struct SegmentSpan {
    /// The plaintext segment file.
    pub path: PathBuf,
    /// Its length, as the media playlist says.
    pub duration_ms: u64,
}

/// Cloud recordings (T1): one WebVTT file per media segment (same order), each with the cues
/// of its span of the recording and an `X-TIMESTAMP-MAP` tying it to the segment's first
/// MPEG-TS timestamp. Blocking.
pub fn hls_subtitles(
    segments: &[SegmentSpan],
    model: &Model,
    cancel: &CancellationToken,
) -> Result<Vec<String>, TranscribeError> {
    let paths: Vec<PathBuf> = segments.iter().map(|s| s.path.clone()).collect();
    let cues = transcribe(Audio::Segments(&paths), model, cancel)?;
    let mut start_ms = 0;
    let mut files = Vec::with_capacity(segments.len());
    for s in segments {
        let pts = crate::media::segment_first_pts(&s.path)?.unwrap_or(0);
        files.push(webvtt::hls_segment(&cues, start_ms, s.duration_ms, pts));
        start_ms += s.duration_ms;
    }
    Ok(files)
}

/// The whole transcript of `cues` as WebVTT.
pub fn webvtt_document(cues: &[Cue]) -> String {
    webvtt::document(cues)
}

/// Temp file beside `out`, fsynced, renamed onto it, folder fsynced: `out` is whole or absent.
/// Also writes the completeness report beside an MP4 (`daemon::conversion`).
pub(crate) fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), TranscribeError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TranscribeError::Io { path, source }
    };
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = out.with_file_name(format!(".{}.part", name.unwrap_or_default()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_dir(files: &[&str], dirs: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in dirs {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("mdef"), b"").unwrap();
        }
        for f in files {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        dir
    }

    #[test]
    fn the_debian_layout_is_found_and_the_phone_model_ignored() {
        let dir = model_dir(
            &["en-us.lm.bin", "en-us-phone.lm.bin", "cmudict-en-us.dict"],
            &["en-us"],
        );
        let m = Model::find(dir.path()).unwrap();
        assert_eq!(m.hmm, dir.path().join("en-us"));
        assert_eq!(m.lm, dir.path().join("en-us.lm.bin"));
        assert_eq!(m.dict, dir.path().join("cmudict-en-us.dict"));
    }

    #[test]
    fn a_missing_or_ambiguous_model_says_what_is_wrong() {
        let e = Model::find(Path::new("/nonexistent/model")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/model"), "{e}");
        assert!(e.to_string().contains("transcription.model_dir"), "{e}");
        let dir = model_dir(&["a.lm", "b.lm.bin", "x.dict"], &["hmm"]);
        let e = Model::find(dir.path()).unwrap_err().to_string();
        assert!(e.contains("2 candidates for the language model"), "{e}");
        let dir = model_dir(&["a.lm"], &["hmm"]);
        let e = Model::find(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no dictionary"), "{e}");
        assert!(unavailable_reason(Path::new("/nonexistent/model")).is_some());
    }

    #[test]
    fn the_transcript_goes_beside_the_mp4_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = vtt_path(&dir.path().join("rec.mp4"));
        assert_eq!(out, dir.path().join("rec.vtt"));
        write_atomically(&out, b"WEBVTT\n\n").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"WEBVTT\n\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file is left");
    }
}
