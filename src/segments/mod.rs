//! Segment files: the one owner of the numbered media files under `<storage>/segments/`.
//!
//! Owns: their names (`segments/00000042.ts`, the encrypted `00000042.ts.enc` and its temp
//! file, the private `.plain-<recording>` and `.adopt-<seq>` folders of decrypted copies) and
//! the numbers read back from them; sealing (fsync of file and folder, size, SHA-256: what
//! media hands over); encryption at rest of a sealed segment and decryption for uploads and
//! conversions; adoption of files a crash left uncatalogued; deletion, always with the folder
//! fsynced before the catalog marks a file released; and the byte ledger of the disk budget.
//! No other module builds or parses a segment file's name or knows whether it is encrypted.
//!
//! Must not touch: the cipher and its file format (`crypt`), SQL and the rule of what is
//! evictable (the catalog's methods are called), the recording rules, the GStreamer pipeline,
//! the bucket.

mod adopt;
mod at_rest;
mod ledger;
mod name;
mod remove;
mod seal;

use std::io;
use std::path::{Path, PathBuf};

pub use adopt::{adopt, capturing, first_free_seq, remove_leftovers};
pub use at_rest::{
    decrypted, encrypt_file, keep_sealed, DecryptKey, EncryptKey, Keys, PlainCopies,
};
pub use ledger::{free_bytes, ByteLedger};
pub use name::{
    is_encrypted, on_disk_len, plain_name, relative_path, seq_of, LOCATION_PATTERN, SEGMENTS_DIR,
};
pub use remove::{release, Released};
pub use seal::{seal, sync_parent, Sealed};

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Crypt(#[from] crate::crypt::CryptError),
    #[error("{} is not a segment file name (00000042.ts or 00000042.ts.enc)", .0.display())]
    NotASegment(PathBuf),
    #[error(
        "{} is encrypted at rest and no storage.segment_key_file is configured to read it",
        .0.display()
    )]
    NoKey(PathBuf),
}

impl SegmentError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> SegmentError + '_ {
        move |source| SegmentError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
