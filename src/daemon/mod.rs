//! daemon: wires the adapters around the rules engine and runs them until shutdown.
//!
//! Owns: start-up order (storage → catalog and reconciliation → media → engine → MQTT →
//! READY) and shutdown order (stop taking commands → stop recordings and seal → flush the
//! catalog → offline status and disconnect). Must not touch: the rules themselves, SQL,
//! GStreamer elements, MQTT packets — each belongs to its own module.

pub(crate) mod admission;
mod alarms;
mod barrier;
mod catalog_thread;
mod clock;
mod conversion;
mod core;
pub(crate) mod dispatch;
mod housekeeping;
mod notify;
mod schedule;
mod silence;
mod status;
mod watchdog;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::catalog::{Catalog, CatalogError};
use crate::config::Config;
use crate::control::{self, ControlError, ControlSettings};
use crate::media::{self, MediaError, MediaSettings};
use crate::rules::{Engine, RulesConfig};
use crate::segments::{self, SEGMENTS_DIR};
use crate::upload::{self, UploadError, UploadSettings};

pub use self::conversion::mp4_name;
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

/// Runs the daemon until `cancel` fires, then shuts down in order. READY=1 goes to systemd
/// once everything is initialised and the MQTT session is starting.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), DaemonError> {
    let storage = config.storage.dir.clone();
    prepare_dirs(&[
        &storage,
        &storage.join(SEGMENTS_DIR),
        &config.storage.save_dir,
    ])?;
    let control_settings = ControlSettings::from_config(&config);

    let mut catalog = Catalog::open(&storage.join(CATALOG_FILE))?;
    let capturing = segments::capturing(&catalog.live_recordings()?);
    segments::remove_leftovers(&storage);
    let report = catalog.reconcile(&storage)?;
    info!(report = ?report, "catalog reconciled with the files on disk");
    mark_start(&mut catalog);
    let keys = segments::Keys::from_config(&config.storage);
    if keys.encrypt().is_some() {
        info!("segments are encrypted at rest once sealed");
    }
    let adopted = segments::adopt(
        &mut catalog,
        &storage,
        &report.orphan_files,
        &capturing,
        &keys,
    )?;
    let next_seq = segments::first_free_seq(catalog.next_segment_seq()?, &report.orphan_files);
    if !adopted.is_empty() {
        info!(segments = ?adopted, "segments from before the stop are part of their recordings again");
    }
    let next_recording = catalog.next_recording_number()?;
    let restored = catalog.live_recordings()?;
    let ledger = segments::ByteLedger::new(catalog.used_bytes()?);
    let meeting_version = last_meeting_version(&catalog);
    let (catalog, catalog_thread) =
        catalog_thread::CatalogHandle::spawn(catalog).map_err(DaemonError::Thread)?;
    let (upload_tx, upload_rx) = mpsc::channel(64);
    let upload_cancel = CancellationToken::new();
    let uploader = match &config.upload {
        Some(target) => Some(upload::spawn(
            UploadSettings {
                segment_key: config.storage.segment_key.clone(),
                transcription_model: Some(config.transcription.model_dir.clone()),
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
    let media_settings = MediaSettings::from_config(&config, storage.join(SEGMENTS_DIR));
    let media = media::spawn(media_settings, next_seq, media_tx)?;
    let watchdog = watchdog::Watchdog::new(media.progress(), Notifier::watchdog_timeout());
    let (inbound_tx, inbound_rx) = mpsc::channel(256);
    let (outbound_tx, outbound_rx) = mpsc::channel(256);
    let (conv_tx, conv_rx) = mpsc::channel(16);

    log_auth(&config.auth);
    let mut core = core::Core::new(core::Wiring {
        engine: Engine::new(RulesConfig::from_config(&config), next_recording),
        verifier: crate::auth::Verifier::new(config.auth.clone()),
        catalog,
        media,
        uploader,
        to_control: outbound_tx,
        conversions: conversion::Conversions::new(
            config.storage.save_dir.clone(),
            storage.clone(),
            keys.decrypt().cloned(),
            config.transcription.model_dir.clone(),
            conv_tx,
        ),
        watchdog,
        storage: config.storage.clone(),
        ledger,
        transcription_model: config.transcription.model_dir.clone(),
    });
    core.restore(restored, meeting_version).await;

    let control_cancel = CancellationToken::new();
    let control = tokio::spawn(control::run(
        control_settings,
        inbound_tx,
        outbound_rx,
        status::offline(),
        control_cancel.clone(),
    ));
    core.ready();
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
    let _ = tokio::task::spawn_blocking(move || catalog_thread.join()).await;
    info!("roomrecd stopped");
    Ok(())
}

/// The version of the last snapshot applied before this start. A row that cannot be read
/// is reported and treated as none: the device then applies the next snapshot it gets.
/// The service starts: a recording that was live before it has a gap up to here (a crash, a
/// power cut, a restart), which its completeness report names.
fn mark_start(catalog: &mut Catalog) {
    let mark = crate::completeness::Mark {
        at: crate::protocol::Timestamp::now(),
        kind: crate::completeness::MarkKind::Restarted,
    };
    if let Err(e) = catalog.add_mark(None, &mark) {
        warn!(error = %e, "the start was not marked; completeness reports will call a gap across it unexplained");
    }
}

fn last_meeting_version(catalog: &Catalog) -> Option<u64> {
    match catalog.last_meeting() {
        Ok(last) => last.and_then(|snapshot| snapshot.version),
        Err(e) => {
            warn!(error = %e, "cannot read the last applied meeting snapshot; the next one applies whatever its version");
            None
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
