//! Sealing a closed segment file as media reports it: `segments::seal` (fsync of file and
//! folder, size, SHA-256) with its errors in media's terms, so that a full disk is
//! `DiskFull`, which stops recordings rather than retrying.
//!
//! Owns: that translation. Must not touch: how a segment is sealed or named (`segments`),
//! the pipeline, SQLite, MQTT. A segment is announced only after [`seal_file`] returned `Ok`.

use std::path::Path;

use super::MediaError;
use crate::segments::{self, Sealed, SegmentError};

/// fsync `path` and its folder, then hash it.
pub(crate) fn seal_file(path: &Path) -> Result<Sealed, MediaError> {
    segments::seal(path).map_err(media_error)
}

/// fsync the folder holding `path`, making a new or renamed entry durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), MediaError> {
    segments::sync_parent(path).map_err(media_error)
}

fn media_error(e: SegmentError) -> MediaError {
    match e {
        SegmentError::Io { path, source } => MediaError::io(path, source),
        other => MediaError::Pipeline(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_reported_as_such() {
        let full = SegmentError::Io {
            path: "segments/00000001.ts".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert!(matches!(media_error(full), MediaError::DiskFull(_)));
        let dir = tempfile::tempdir().expect("tempdir");
        let e = seal_file(&dir.path().join("00000002.ts")).unwrap_err();
        assert!(matches!(e, MediaError::Io { .. }), "{e}");
        assert!(e.to_string().contains("00000002.ts"), "{e}");
    }
}
