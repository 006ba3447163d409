//! Sealing a closed segment file: the first step of the durability order.
//!
//! Owns: fsync of the file and of its folder, its size and SHA-256. Must not touch: the
//! pipeline, SQLite, MQTT. A segment is announced only after [`seal_file`] returned `Ok`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::MediaError;

/// What sealing learnt about a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub bytes: u64,
    pub sha256: String,
}

/// fsync `path` and its folder (so the directory entry survives power loss too), then hash it.
pub(crate) fn seal_file(path: &Path) -> Result<Sealed, MediaError> {
    let file = File::open(path).map_err(|e| MediaError::io(path, e))?;
    file.sync_all().map_err(|e| MediaError::io(path, e))?;
    sync_parent(path)?;
    hash_file(file, path)
}

/// fsync the folder holding `path`, making a new or renamed entry durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), MediaError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let handle = File::open(dir).map_err(|e| MediaError::io(dir, e))?;
    handle.sync_all().map_err(|e| MediaError::io(dir, e))
}

/// Size and SHA-256 of the bytes read, so both describe exactly the same content.
fn hash_file(mut file: File, path: &Path) -> Result<Sealed, MediaError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| MediaError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Sealed {
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"abc").unwrap();
        let s = seal_file(&path).unwrap();
        assert_eq!(s.bytes, 3);
        assert_eq!(
            s.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = seal_file(&dir.path().join("nope.mkv")).unwrap_err();
        assert!(e.to_string().contains("nope.mkv"), "{e}");
    }
}
