//! Helpers for tests that drive `roomrec::media` directly.

use std::path::Path;
use std::time::Duration;

use roomrec::media::{self, MediaCommand, MediaFact, MediaSettings, SealedFile};
use tokio::sync::mpsc;

/// Generous bounds: they only catch a hung pipeline, never a slow machine.
pub const FACT_TIMEOUT: Duration = Duration::from_secs(60);
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

pub use super::records::id;

/// Room for every fact a test's capture reports before the test reads them: media waits on a
/// full channel, and levels (twice a second), picture looks (once a second) and segments come
/// on their own: 64 filled in about 20 s and stalled a 20 s capture.
pub const FACTS: usize = 4096;

/// Small frames keep the pipelines cheap on CI's two cores.
pub fn small(dir: &Path) -> MediaSettings {
    MediaSettings {
        segments_dir: dir.join("segments"),
        width: 320,
        height: 240,
        framerate: 15,
        video_bitrate_kbps: 300,
        ..MediaSettings::default()
    }
}

pub fn capture(recordings: &[&str]) -> MediaCommand {
    MediaCommand::SetCapture {
        recordings: recordings.iter().map(|r| id(r)).collect(),
        marks: media::Marks::default(),
    }
}

/// Shut media down (bounded) and collect every fact it reported.
pub async fn finish(
    handle: media::MediaHandle,
    mut rx: mpsc::Receiver<MediaFact>,
) -> Vec<MediaFact> {
    tokio::time::timeout(SHUTDOWN_TIMEOUT, handle.shutdown())
        .await
        .expect("media shut down in time");
    let mut facts = Vec::new();
    while let Ok(f) = rx.try_recv() {
        facts.push(f);
    }
    facts
}

pub fn sealed(facts: &[MediaFact]) -> Vec<SealedFile> {
    facts
        .iter()
        .filter_map(|f| match f {
            MediaFact::Sealed(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}
