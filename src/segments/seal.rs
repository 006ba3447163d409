//! Sealing a closed segment file: the first step of the durability order, and what media
//! hands over for a segment (its size and SHA-256, true of the bytes on disk).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::SegmentError;

/// What sealing learnt about a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// fsync `path` and its folder (so the directory entry survives power loss too), then hash
/// it. A segment is announced only after this returned `Ok`.
pub fn seal(path: &Path) -> Result<Sealed, SegmentError> {
    let file = File::open(path).map_err(SegmentError::io(path))?;
    file.sync_all().map_err(SegmentError::io(path))?;
    sync_parent(path)?;
    hash_file(file, path)
}

/// fsync the folder holding `path`, making a new, renamed or removed entry durable.
pub fn sync_parent(path: &Path) -> Result<(), SegmentError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

/// fsync the folder `dir`.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SegmentError::io(dir))
}

/// Size and SHA-256 of the bytes read, so both describe exactly the same content.
fn hash_file(mut file: File, path: &Path) -> Result<Sealed, SegmentError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(SegmentError::io(path))?;
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
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000001.ts");
        std::fs::write(&path, b"abc").expect("write");
        let s = seal(&path).expect("seal");
        assert_eq!(s.bytes, 3);
        assert_eq!(
            s.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_file_names_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = seal(&dir.path().join("00000002.ts")).unwrap_err();
        assert!(e.to_string().contains("00000002.ts"), "{e}");
    }
}
