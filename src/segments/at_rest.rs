//! Segments encrypted at rest (`storage.encrypt_segments`): which key does what, encrypting a
//! sealed segment in place of its plaintext, and reading an encrypted one back for an upload
//! (to memory) or a conversion (to a private folder). The cipher and file format are
//! `crypt`'s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{debug, error, warn};

use super::name;
use super::SegmentError;
use crate::config::StorageConfig;
use crate::crypt::{self, SegmentKey};
use crate::protocol::Id;

/// The key newly sealed segments are encrypted with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptKey(SegmentKey);

/// The key segments already encrypted are read with: whenever a key is configured, so that
/// segments encrypted before `encrypt_segments` was turned off still read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptKey(SegmentKey);

impl EncryptKey {
    pub fn new(key: SegmentKey) -> EncryptKey {
        EncryptKey(key)
    }
}

impl DecryptKey {
    pub fn new(key: SegmentKey) -> DecryptKey {
        DecryptKey(key)
    }
}

/// The keys of the storage folder, each for its one use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    encrypt: Option<EncryptKey>,
    decrypt: Option<DecryptKey>,
}

impl Keys {
    /// `storage.segment_key` reads encrypted segments; it encrypts new ones only with
    /// `storage.encrypt_segments`.
    pub fn from_config(storage: &StorageConfig) -> Keys {
        let key = storage.segment_key.clone();
        Keys {
            encrypt: key
                .clone()
                .filter(|_| storage.encrypt_segments)
                .map(EncryptKey),
            decrypt: key.map(DecryptKey),
        }
    }

    pub fn encrypt(&self) -> Option<&EncryptKey> {
        self.encrypt.as_ref()
    }

    pub fn decrypt(&self) -> Option<&DecryptKey> {
        self.decrypt.as_ref()
    }
}

/// Encrypts the sealed plaintext segment `plain` into its encrypted file durably, then removes
/// the plaintext (see `crypt::encrypt_file` for the crash-safe order). Blocking. Returns the
/// encrypted file's path.
pub fn encrypt_file(key: &EncryptKey, plain: &Path) -> Result<PathBuf, SegmentError> {
    let seq = name::seq_of(plain).ok_or_else(|| SegmentError::NotASegment(plain.to_owned()))?;
    let enc = name::encrypted_path(plain);
    crypt::encrypt_file(&key.0, seq, plain, &enc, &name::temp_path(plain))?;
    Ok(enc)
}

/// The path to catalogue for sealed segment `relative` (relative to `storage`): its encrypted
/// file once encrypted when `keys` say so, else itself. If encryption fails the plaintext is
/// kept and catalogued: losing media is worse than one segment stored in clear, and the error
/// says so. Blocking. The size and SHA-256 catalogued stay the media's own: uploads send the
/// plaintext, quotas count it.
pub fn keep_sealed(keys: &Keys, storage: &Path, relative: &str) -> String {
    let Some(key) = keys.encrypt() else {
        return relative.to_owned();
    };
    let plain = storage.join(relative);
    let started = Instant::now();
    match encrypt_file(key, &plain) {
        Ok(_) => {
            debug!(
                path = relative,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "segment encrypted at rest"
            );
            name::encrypted_relative(relative)
        }
        Err(e) => {
            error!(path = relative, error = %e, "cannot encrypt a sealed segment; it stays in clear on disk");
            relative.to_owned()
        }
    }
}

/// The plaintext of segment `seq` at `path` when it is encrypted at rest (decrypted to memory
/// and authenticated as segment `seq`, so a tampered or swapped file is refused); `None` for
/// a plaintext segment, which is read from its path.
pub fn decrypted(
    key: Option<&DecryptKey>,
    seq: u64,
    path: &Path,
) -> Result<Option<Vec<u8>>, SegmentError> {
    if !name::is_encrypted(path) {
        return Ok(None);
    }
    let key = key.ok_or_else(|| SegmentError::NoKey(path.to_owned()))?;
    Ok(Some(crypt::decrypt_to_vec(&key.0, seq, path)?))
}

/// A private folder (mode 0700, files 0600) of plaintext copies of encrypted segments, for
/// tools that need files (a conversion, adoption's probe). Removed with everything in it when
/// dropped, and at the next start after a crash.
#[derive(Debug)]
pub struct PlainCopies {
    dir: PathBuf,
    key: Option<DecryptKey>,
}

impl PlainCopies {
    /// The copies of `recording`'s segments for its conversion, under `storage`.
    pub fn for_conversion(storage: &Path, recording: &Id, key: Option<DecryptKey>) -> PlainCopies {
        PlainCopies {
            dir: name::plain_dir(storage, recording),
            key,
        }
    }

    /// The copy of leftover segment `seq` to check before adoption, under `storage`.
    pub(super) fn for_adoption(storage: &Path, seq: u64, key: DecryptKey) -> PlainCopies {
        PlainCopies {
            dir: storage.join(name::adopt_dir(seq)),
            key: Some(key),
        }
    }

    /// The files to read: plaintext segments as they are, encrypted ones decrypted into the
    /// private folder (created only when needed, emptied first if a crash left it).
    pub fn inputs(&self, segments: &[PathBuf]) -> Result<Vec<PathBuf>, SegmentError> {
        self.each_input(segments)?.into_iter().collect()
    }

    /// As [`inputs`](Self::inputs), one result per segment: a segment that does not decrypt
    /// does not stop the others (a conversion goes on past it).
    pub fn each_input(
        &self,
        segments: &[PathBuf],
    ) -> Result<Vec<Result<PathBuf, SegmentError>>, SegmentError> {
        if segments.iter().any(name::is_encrypted) {
            private_dir(&self.dir)?;
        }
        Ok(segments.iter().map(|s| self.input(s)).collect())
    }

    fn input(&self, segment: &Path) -> Result<PathBuf, SegmentError> {
        if !name::is_encrypted(segment) {
            return Ok(segment.to_owned());
        }
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| SegmentError::NoKey(segment.to_owned()))?;
        let not_a_segment = || SegmentError::NotASegment(segment.to_owned());
        let seq = name::seq_of(segment).ok_or_else(not_a_segment)?;
        let file = segment
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(not_a_segment)?;
        let copy = self.dir.join(name::plain_name(file));
        crypt::decrypt_to_file(&key.0, seq, segment, &copy)?;
        Ok(copy)
    }
}

impl Drop for PlainCopies {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                warn!(path = %self.dir.display(), error = %e, "cannot remove decrypted copies")
            }
            _ => {}
        }
    }
}

/// A new folder only its owner may enter. An existing one is emptied first: it can only be a
/// leftover of an interrupted run.
fn private_dir(path: &Path) -> Result<(), SegmentError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(SegmentError::io(path)(e))
        }
        _ => {}
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(SegmentError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn keys() -> (EncryptKey, DecryptKey) {
        let key = SegmentKey::generate().expect("random key");
        (EncryptKey::new(key.clone()), DecryptKey::new(key))
    }

    #[test]
    fn the_config_decides_which_key_does_what() {
        let key = SegmentKey::from_bytes([7; 32]);
        let mut storage = StorageConfig {
            dir: PathBuf::from("/var/lib/roomrec"),
            save_dir: PathBuf::from("/var/lib/roomrec/local"),
            max_bytes: None,
            min_free_bytes: 0,
            retention_hours: 24,
            encrypt_segments: false,
            segment_key: Some(key.clone()),
            segment_key_file: None,
        };
        let read_only = Keys::from_config(&storage);
        assert_eq!(read_only.encrypt(), None);
        assert_eq!(read_only.decrypt(), Some(&DecryptKey::new(key.clone())));
        storage.encrypt_segments = true;
        let both = Keys::from_config(&storage);
        assert_eq!(both.encrypt(), Some(&EncryptKey::new(key)));
        storage.segment_key = None;
        assert_eq!(Keys::from_config(&storage), Keys::default());
    }

    #[test]
    fn a_sealed_segment_is_kept_encrypted_and_reads_back_for_upload_and_conversion() {
        let storage = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(storage.path().join("segments")).expect("segments");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(storage.path().join("segments/00000009.ts"), &data).expect("write");
        let (encrypt, decrypt) = keys();
        let keys = Keys {
            encrypt: Some(encrypt),
            decrypt: Some(decrypt.clone()),
        };
        let kept = keep_sealed(&keys, storage.path(), "segments/00000009.ts");
        assert_eq!(kept, "segments/00000009.ts.enc");
        let enc = storage.path().join(&kept);
        assert!(!storage.path().join("segments/00000009.ts").exists());
        assert_eq!(enc.metadata().expect("meta").mode() & 0o777, 0o600);

        assert_eq!(
            decrypted(Some(&decrypt), 9, &enc).expect("reads"),
            Some(data.clone())
        );
        assert!(
            decrypted(Some(&decrypt), 10, &enc).is_err(),
            "another number"
        );
        assert!(matches!(
            decrypted(None, 9, &enc),
            Err(SegmentError::NoKey(_))
        ));

        let rid = Id::parse("r-1").expect("id");
        let copies = PlainCopies::for_conversion(storage.path(), &rid, Some(decrypt));
        let inputs = copies.inputs(&[enc]).expect("decrypted copies");
        let dir = name::plain_dir(storage.path(), &rid);
        assert_eq!(inputs, [dir.join("00000009.ts")]);
        assert_eq!(std::fs::read(&inputs[0]).expect("copy"), data);
        assert_eq!(dir.metadata().expect("dir").mode() & 0o777, 0o700);
        drop(copies);
        assert!(!dir.exists(), "the copies go with their owner");
    }

    #[test]
    fn without_an_encrypt_key_the_plaintext_is_catalogued_as_it_is() {
        let storage = tempfile::tempdir().expect("tempdir");
        let keys = Keys {
            encrypt: None,
            decrypt: Some(keys().1),
        };
        assert_eq!(
            keep_sealed(&keys, storage.path(), "segments/00000001.ts"),
            "segments/00000001.ts"
        );
        let plain = storage.path().join("00000001.ts");
        assert_eq!(decrypted(None, 1, &plain).expect("plain"), None);
        let copies =
            PlainCopies::for_conversion(storage.path(), &Id::parse("r-2").expect("id"), None);
        assert_eq!(
            copies.inputs(std::slice::from_ref(&plain)).expect("as is"),
            [plain]
        );
    }
}
