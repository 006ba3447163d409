//! daemon: wires the adapters around the rules engine and runs them until shutdown.
//!
//! Owns: start-up order (storage → catalog and reconciliation → media → engine → MQTT →
//! READY) and shutdown order (stop taking commands → stop recordings and seal → flush the
//! catalog → offline status and disconnect). Must not touch: the rules themselves, SQL,
//! GStreamer elements, MQTT packets — each belongs to its own module.

mod adopt;
mod conversion;
mod core;
mod housekeeping;
mod notify;
mod status;
mod store;
mod watchdog;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::catalog::{Catalog, CatalogError, OrphanFile, SEGMENTS_DIR};
use crate::config::Config;
use crate::control::{self, ControlError, ControlSettings};
use crate::media::{self, MediaError, MediaSettings, TestPicture};
use crate::rules::{Engine, Input, RulesConfig};
use crate::upload::{self, UploadError, UploadSettings};

pub use self::conversion::mp4_name;
pub use self::core::Clock;
pub use self::notify::Notifier;

/// The catalog's file name inside the storage folder.
pub const CATALOG_FILE: &str = "catalog.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "cannot prepare the storage folder {path}: {source}; check storage.dir and its permissions"
    )]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read mqtt.password_file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("media could not start: {0}")]
    Media(#[from] MediaError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("uploads could not start: {0}")]
    Upload(#[from] UploadError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Runs the daemon until `cancel` fires, then shuts down in order. `on_ready` is called once
/// everything is initialised (the binary sends READY=1 there).
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), DaemonError> {
    let storage = config.storage.dir.clone();
    prepare_dirs(&[
        &storage,
        &storage.join(SEGMENTS_DIR),
        &config.storage.save_dir,
    ])?;
    let control_settings = control_settings(&config)?;

    let mut catalog = Catalog::open(&storage.join(CATALOG_FILE))?;
    let capturing = adopt::capturing(&catalog.live_recordings()?);
    // Before reconciling, so they are not reported as unknown files: never the only copy.
    crate::crypt::remove_stale_temps(&storage.join(SEGMENTS_DIR));
    remove_decrypted_leftovers(&storage);
    let report = catalog.reconcile(&storage)?;
    info!(report = ?report, "catalog reconciled with the files on disk");
    let key = config.storage.segment_key.as_ref();
    let encrypt = key.filter(|_| config.storage.encrypt_segments);
    if encrypt.is_some() {
        info!("segments are encrypted at rest once sealed");
    }
    let adopted = adopt::adopt(
        &mut catalog,
        &storage,
        &report.orphan_files,
        &capturing,
        encrypt,
        key,
    )?;
    // A file written but not catalogued (and not adopted) must never be overwritten: number
    // new segments past it too.
    let next_seq = first_free_seq(catalog.next_segment_seq()?, &report.orphan_files);
    if !adopted.is_empty() {
        info!(segments = ?adopted, "segments from before the stop are part of their recordings again");
    }
    let next_recording = catalog.next_recording_number()?;
    let restored = catalog.live_recordings()?;
    let used_bytes = catalog.used_bytes()?;
    let (store, store_thread) = store::Store::spawn(catalog).map_err(DaemonError::Thread)?;
    let (upload_tx, upload_rx) = mpsc::channel(64);
    let upload_cancel = CancellationToken::new();
    let uploader = match &config.upload {
        Some(target) => Some(upload::spawn(
            UploadSettings {
                segment_key: config.storage.segment_key.clone(),
                ..UploadSettings::from_config(target)
            },
            &storage.join(CATALOG_FILE),
            &storage,
            upload_tx,
            upload_cancel.clone(),
        )?),
        None => None,
    };

    let (media_tx, media_rx) = mpsc::channel(64);
    let media = media::spawn(media_settings(&config), next_seq, media_tx)?;
    let watchdog = watchdog::Watchdog::new(media.progress(), Notifier::watchdog_timeout());
    let (inbound_tx, inbound_rx) = mpsc::channel(256);
    let (outbound_tx, outbound_rx) = mpsc::channel(256);
    let (conv_tx, conv_rx) = mpsc::channel(16);

    log_auth(&config.auth);
    let mut core = core::Core {
        engine: Engine::new(rules_config(&config), next_recording),
        auth: crate::auth::Verifier::new(config.auth.clone()),
        store,
        media,
        uploader,
        to_control: outbound_tx,
        conversions: conversion::Conversions::new(
            config.storage.save_dir.clone(),
            storage.clone(),
            config.storage.segment_key.clone(),
            conv_tx,
        ),
        status: status::StatusBoard::new(),
        notifier: Notifier::default(),
        watchdog,
        clock: Clock::new(),
        last_state: None,
        kinds: Default::default(),
        capturing: Default::default(),
        deferred: Vec::new(),
        storage_dir: storage.clone(),
        storage: config.storage.clone(),
        used_bytes,
    };
    for r in &restored {
        core.kinds.insert(r.recording_id.clone(), r.kind);
    }
    core.feed(Input::Restore(restored), None).await;
    // The storage budget is known before the first command can arrive.
    core.refresh_room().await;

    let control_cancel = CancellationToken::new();
    let control = tokio::spawn(control::run(
        control_settings,
        inbound_tx,
        outbound_rx,
        status::offline(),
        control_cancel.clone(),
    ));
    core.notifier.ready();
    info!(device = %config.device_id, prefix = %config.topic_prefix(), "roomrecd ready");

    let inputs = core::CoreInputs {
        inbound: inbound_rx,
        media: media_rx,
        conversions: conv_rx,
        upload: upload_rx,
    };
    core.run(inputs, cancel).await;

    // Uploads cut off now are sent again at the next start.
    upload_cancel.cancel();
    control_cancel.cancel();
    match tokio::time::timeout(Duration::from_secs(5), control).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "MQTT session ended with an error"),
        Ok(Err(e)) => warn!(error = %e, "MQTT task failed"),
        Err(_) => warn!("MQTT session did not close within 5 s"),
    }
    // The catalog thread ends once the core (the last handle owner) is gone.
    let _ = tokio::task::spawn_blocking(move || store_thread.join()).await;
    info!("roomrecd stopped");
    Ok(())
}

fn first_free_seq(catalog_next: u64, orphans: &[OrphanFile]) -> u64 {
    orphans
        .iter()
        .filter_map(|o| adopt::seq_of(&o.path))
        .map(|seq| seq + 1)
        .fold(catalog_next, u64::max)
}

/// Removes the private folders of decrypted copies (conversions, adoption) a crash left:
/// plaintext that must not outlive the run that made it.
fn remove_decrypted_leftovers(storage: &Path) {
    let Ok(entries) = std::fs::read_dir(storage) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(conversion::PLAIN_DIR_PREFIX) || name.starts_with(".adopt-") {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    info!(path = %entry.path().display(), "removed decrypted copies left by an interrupted run")
                }
                Err(e) => {
                    warn!(path = %entry.path().display(), error = %e, "cannot remove decrypted copies left by an interrupted run")
                }
            }
        }
    }
}

fn prepare_dirs(dirs: &[&Path]) -> Result<(), DaemonError> {
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::Storage {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Says once at start how admin commands are authenticated (key names only, never keys).
fn log_auth(auth: &crate::auth::AuthConfig) {
    let admins: Vec<&str> = auth.admin_keys.keys().map(String::as_str).collect();
    if auth.allow_unsigned_admin {
        warn!("auth.allow_unsigned_admin is on: anyone who may publish on the cmd topic can act as an admin");
    } else if admins.is_empty() {
        info!("no admin keys configured (auth.admin_keys): admin commands will be refused");
    } else {
        info!(
            ?admins,
            window_s = auth.window.as_secs(),
            "admin commands must be signed"
        );
    }
    if auth.require_signed_meeting {
        info!(
            keys = auth.meeting_keys.len(),
            "meeting snapshots must be signed"
        );
    }
}

fn rules_config(config: &Config) -> RulesConfig {
    RulesConfig {
        cloud_available: config.upload.is_some(),
        // Look one and a half segments ahead: the quota stop must land before the next
        // segment could cross the limit.
        quota_headroom_ms: u64::from(config.media.segment_seconds) * 1500,
        ..RulesConfig::default()
    }
}

fn media_settings(config: &Config) -> MediaSettings {
    let m = &config.media;
    MediaSettings {
        segments_dir: config.storage.dir.join(SEGMENTS_DIR),
        segment_ms: u64::from(m.segment_seconds) * 1000,
        width: m.width,
        height: m.height,
        framerate: m.framerate,
        video_bitrate_kbps: m.video_bitrate_kbps,
        audio: m.audio_codec,
        encoder: m.encoder,
        source: m.source,
        camera: m.camera.clone(),
        camera_card: m.camera_card.clone(),
        camera_bus: m.camera_bus.clone(),
        microphone: m.microphone.clone(),
        content: m.content.clone(),
        pip: m.pip,
        multistream: m.multistream,
        test_picture: TestPicture::default(),
    }
}

fn control_settings(config: &Config) -> Result<ControlSettings, DaemonError> {
    let m = &config.mqtt;
    let password = match (&m.password, &m.password_file) {
        (Some(p), _) => Some(p.expose().to_owned()),
        (None, Some(path)) => Some(read_secret(path)?),
        (None, None) => None,
    };
    Ok(ControlSettings {
        host: m.host.clone(),
        port: m.port,
        tls: m.tls,
        client_id: m.client_id.clone(),
        prefix: config.topic_prefix(),
        keep_alive: m.keep_alive,
        reconnect_max: m.reconnect_max,
        username: m.username.clone(),
        password,
        ca_file: m.ca_file.clone(),
        client_cert: m
            .client_auth
            .as_ref()
            .map(|a| (a.cert_file.clone(), a.key_file.clone())),
    })
}

fn read_secret(path: &Path) -> Result<String, DaemonError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|source| DaemonError::PasswordFile {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_segments_are_numbered_past_uncatalogued_files() {
        let orphan = |p: &str| OrphanFile {
            path: PathBuf::from(p),
            bytes: 1,
        };
        assert_eq!(first_free_seq(5, &[]), 5);
        assert_eq!(first_free_seq(5, &[orphan("segments/00000009.mkv")]), 10);
        assert_eq!(first_free_seq(12, &[orphan("segments/00000009.mkv")]), 12);
        assert_eq!(first_free_seq(3, &[orphan("segments/notes.txt")]), 3);
    }
}
