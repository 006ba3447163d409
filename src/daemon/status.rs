//! The device's health as published on `<p>/status`, and the one-line systemd STATUS.
//!
//! Owns: uptime, device health flags, storage figures, whether transcription is available,
//! and the health alarms' table (`alarms`), whose active alarms it lists.
//! Must not touch: the rules.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::protocol::{
    CloudState, DeviceHealth, StateDoc, StatusDoc, StorageStatus, TranscriptionStatus, UploadStatus,
};

use super::alarms::Alarms;
use super::catalog_thread::CatalogHandle;

pub struct StatusBoard {
    started: Instant,
    pub broker_connected: bool,
    pub camera: DeviceHealth,
    pub microphone: DeviceHealth,
    /// The health alarms: the core feeds them facts and publishes what they raise or clear.
    pub alarms: Alarms,
    uploads: UploadStatus,
    /// `transcription.model_dir`: looked at with each snapshot, so installing the model
    /// shows without a restart.
    transcription_model: PathBuf,
}

impl StatusBoard {
    pub fn new(transcription_model: PathBuf) -> StatusBoard {
        StatusBoard {
            started: Instant::now(),
            broker_connected: false,
            camera: DeviceHealth::Ok,
            microphone: DeviceHealth::Ok,
            alarms: Alarms::default(),
            uploads: UploadStatus::default(),
            transcription_model,
        }
    }

    pub fn media_error(&mut self) {
        self.camera = DeviceHealth::Error;
    }

    /// Records the uploader's health; true when it changed (worth publishing at once).
    pub fn set_uploads(
        &mut self,
        pending: u64,
        pending_bytes: u64,
        last_error: Option<String>,
    ) -> bool {
        let new = UploadStatus {
            pending,
            pending_bytes,
            last_error,
        };
        let changed = new != self.uploads;
        self.uploads = new;
        changed
    }

    pub async fn snapshot(&self, catalog: &CatalogHandle, storage_dir: &Path) -> StatusDoc {
        // The queue's size comes from the catalog (it survives restarts); the error from the
        // uploader, which alone knows why the store is not taking it.
        let (pending, pending_bytes) = catalog
            .call(|c| c.upload_backlog())
            .await
            .unwrap_or((self.uploads.pending, self.uploads.pending_bytes));
        StatusDoc {
            online: true,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: self.started.elapsed().as_secs(),
            camera: self.camera,
            microphone: self.microphone,
            storage: storage_status(storage_dir),
            uploads: UploadStatus {
                pending,
                pending_bytes,
                last_error: self.uploads.last_error.clone(),
            },
            transcription: transcription_status(&self.transcription_model),
            alarms: self.alarms.active(),
        }
    }
}

fn transcription_status(model_dir: &Path) -> TranscriptionStatus {
    let reason = crate::transcribe::unavailable_reason(model_dir);
    TranscriptionStatus {
        available: reason.is_none(),
        reason,
    }
}

/// The retained status after a clean stop (the last will says the same after a crash).
pub fn offline() -> Vec<u8> {
    br#"{"online":false}"#.to_vec()
}

fn storage_status(dir: &Path) -> StorageStatus {
    StorageStatus {
        free_bytes: crate::segments::free_bytes(dir).unwrap_or(0),
        used_bytes: used_bytes(dir),
        remaining_record_s: None,
    }
}

/// Bytes under the storage folder (two levels: segments and local recordings).
fn used_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: u32) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() && depth > 0 => walk(&e.path(), depth - 1),
                Ok(m) if m.is_file() => m.len(),
                _ => 0,
            })
            .sum()
    }
    walk(dir, 2)
}

/// One line for systemd's STATUS=, e.g. "meeting m-42: cloud recording, 1 local".
pub fn summary(doc: &StateDoc) -> String {
    let Some(meeting) = &doc.meeting_id else {
        return "idle: no meeting".into();
    };
    let cloud = match doc.cloud.state {
        CloudState::Recording => "cloud recording",
        CloudState::Paused => "cloud paused",
        CloudState::Idle => "cloud idle",
        CloudState::Unavailable => "cloud unavailable",
    };
    format!("meeting {meeting}: {cloud}, {} local", doc.local.len())
}
