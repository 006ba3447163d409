//! Upload: cloud recordings to S3-compatible object storage, verified and resumable (E1, E2).
//!
//! Owns: the HTTP client and its TLS settings, the signing keys (never logged), the upload
//! queue's progress (the `uploads` rows, through its own [`Catalog`](crate::catalog::Catalog)
//! connection to the same SQLite file: WAL lets two connections share it, and the queue is
//! this module's alone), the bandwidth limiter, and the objects in the bucket: segments, the
//! HLS playlist and the JSON manifest of every cloud recording.
//!
//! Must not touch: the recording rules (completion, share and delete are carried out, not
//! decided, here), MQTT (facts go back to the daemon), media (segments are read as opaque
//! files; only the file name's extension is used, for the object key and content type).
//! In the catalog it writes only `uploads`, the `recording_ops` it queues and completes (share
//! and delete work, durable so that a restart resumes it) and a segment's `released_at` once
//! a delete removed its file; recordings and segments it only reads.
//!
//! Layout in the bucket (deterministic, so a retry overwrites the same object, never adds one):
//! `<key_prefix><creator>/<meeting>/<recording>/<seq:08>.<ext>`, plus `index.m3u8` and
//! `manifest.json` beside them; a transcribed recording (T1) also has `<seq:08>.vtt` per
//! segment, `subtitles.m3u8` and `master.m3u8` (the transcript itself is made by
//! [`crate::transcribe`]; this module only uploads it).

mod actor;
mod error;
mod limiter;
pub mod manifest;
mod store;
mod transcript;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::UploadConfig;
use crate::protocol::{Id, RecordingInfo, Timestamp};

pub use actor::{spawn, UploadHandle};
pub use error::{Failure, Scope, UploadError};
pub use store::{Store, StoreObject};

/// Parallel uploads: two keep a 40 ms RTT link busy while one request waits for its answer.
pub const DEFAULT_CONCURRENCY: usize = 3;
/// How long `Complete` waits, after the last new job of its recording, for more segments when
/// nothing proves the recording's segments are all sealed (a later segment without it does).
/// Zero is right for the daemon, which sends `Complete` only after media's `Released` for
/// that recording; a caller that cannot know should use media's stop bound (10 s) or more.
pub const DEFAULT_SEAL_GRACE: Duration = Duration::ZERO;
/// An upload that moves no byte for this long is aborted and retried (a stalled link): short,
/// so that a silent outage is noticed and probed rather than left to TCP's retransmission
/// backoff, which after 10 s of loss waits seconds more. Even the live floor rate moves a
/// chunk every 2 s.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The live rate's floor when there is neither a cap nor a measured link rate yet: 256 kbit/s.
pub const LIVE_FLOOR_BYTES_PER_S: u64 = 32_000;

/// Everything the upload actor needs; build with [`UploadSettings::from_config`].
#[derive(Clone, Debug)]
pub struct UploadSettings {
    pub store: UploadConfig,
    /// Prepended to every object key; empty or ending in `/`.
    pub key_prefix: String,
    /// Bytes per second for all uploads together; `None` for no cap.
    pub rate_cap: Option<u64>,
    /// Percent of the rate (cap, or measured link) allowed while a meeting is live; bounds:
    /// `config::keys::LIVE_SHARE_PERCENT`.
    pub live_share_percent: u8,
    pub concurrency: usize,
    pub seal_grace: Duration,
    pub stall_timeout: Duration,
    /// Added to the wall clock when signing, on top of what the actor learns from the store's
    /// `Date` header after a `RequestTimeTooSkewed`. For tests of skew handling; 0 otherwise.
    pub clock_offset_s: i64,
    /// The key of segments encrypted at rest: they are decrypted to memory,
    /// checked against their sealed SHA-256 and sent as the plaintext TS. `None`: such
    /// segments cannot be sent (and say so).
    pub segment_key: Option<crate::crypt::SegmentKey>,
    /// T1: the speech model folder that transcribes the recordings completed with
    /// `transcription`; `None`: no recording is transcribed.
    pub transcription_model: Option<PathBuf>,
}

impl UploadSettings {
    /// Settings for the `[upload]` section with this module's defaults for the rest.
    pub fn from_config(config: &UploadConfig) -> UploadSettings {
        UploadSettings {
            store: config.clone(),
            key_prefix: config.key_prefix.clone(),
            rate_cap: config.rate_cap,
            live_share_percent: config.live_share_percent,
            concurrency: DEFAULT_CONCURRENCY,
            seal_grace: DEFAULT_SEAL_GRACE,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            clock_offset_s: 0,
            segment_key: None,
            transcription_model: None,
        }
    }

    fn validate(&self) -> Result<(), UploadError> {
        let bad = |msg: &str| Err(UploadError::Settings(msg.to_owned()));
        let share = crate::config::keys::LIVE_SHARE_PERCENT;
        if !share.range().contains(&u32::from(self.live_share_percent)) {
            return Err(UploadError::Settings(format!(
                "live_share_percent must be {} to {}",
                share.min, share.max
            )));
        }
        if self.concurrency == 0 || self.concurrency > 16 {
            return bad("concurrency must be 1 to 16");
        }
        if self.rate_cap == Some(0) {
            return bad("rate_cap must be above 0 bytes/s (leave it unset for no cap)");
        }
        if !self.key_prefix.is_empty() && !self.key_prefix.ends_with('/') {
            return bad("key_prefix must be empty or end with '/'");
        }
        if self.key_prefix.starts_with('/') || self.key_prefix.contains("//") {
            return bad("key_prefix must not start with '/' nor contain '//'");
        }
        Ok(())
    }
}

/// What the daemon asks of the upload actor.
#[derive(Clone, Debug, PartialEq)]
pub enum UploadCommand {
    /// A job was queued (a cloud segment was sealed): look at the queue now.
    Wake,
    /// A meeting is live (true): keep to the live share of the rate; false: full rate.
    MeetingLive(bool),
    /// E1 (`Effect::CompleteCloud`): once every segment is uploaded, write the manifest and
    /// report [`UploadFact::Completed`]. May arrive before the last segments are sealed.
    /// With `transcription` (T1 in force for the recording) and a usable model, a WebVTT
    /// subtitle rendition and a master playlist referencing it are uploaded first.
    Complete {
        recording: RecordingInfo,
        transcription: bool,
    },
    /// E2: rewrite the manifest's shared flag.
    Share { recording_id: Id, shared: bool },
    /// E2: remove the recording's objects and the local files only it needed.
    Delete { recording_id: Id },
}

/// What the upload actor reports, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum UploadFact {
    /// One segment is in the store and verified (C8: `bytes` count against the quota).
    Uploaded {
        seq: u64,
        recording_id: Id,
        bytes: u64,
    },
    /// E1: the manifest is uploaded; `location` is the playlist's URL
    /// (feed `Input::CloudCompleted`).
    Completed {
        recording_id: Id,
        location: String,
        /// The figures of the completeness report in the manifest, for `recording_ready`.
        completeness: Option<crate::protocol::CompletenessSummary>,
    },
    /// E2: the manifest now says `shared`.
    Shared { recording_id: Id, shared: bool },
    /// E2: the objects (`objects` removed) and the local segment files only this recording
    /// needed (`files`, of `freed_bytes` media bytes, released) are gone.
    Deleted {
        recording_id: Id,
        objects: u64,
        files: u64,
        freed_bytes: u64,
    },
    /// For `status.uploads` and the `upload_backlog` alarm; sent when it changes.
    Health {
        pending: u64,
        pending_bytes: u64,
        last_error: Option<String>,
        /// When the oldest segment waiting for its upload was sealed (`None`: none waits).
        oldest_pending: Option<Timestamp>,
        /// Whether the store answers (false until the first probe succeeds, and while the
        /// link is down; a store that answers with a refusal is reachable).
        store_reachable: bool,
    },
}
