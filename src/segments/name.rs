//! Segment file names: the one place that knows how a segment file, its encrypted form and
//! the folders of decrypted copies are named, and reads a segment's number back.

use std::path::{Path, PathBuf};

use crate::protocol::Id;

/// Folder under the storage folder where media writes segment files.
pub const SEGMENTS_DIR: &str = "segments";
/// splitmuxsink's `location` pattern inside the segments folder: `00000042.ts`. MPEG-TS,
/// eight digits so that names sort in sequence order.
pub const LOCATION_PATTERN: &str = "%08d.ts";
/// Appended to a sealed segment's name once encrypted at rest: `00000042.ts.enc`.
const ENC_SUFFIX: &str = ".enc";
/// Appended to a sealed segment's name while its encryption is written: `00000042.ts.enc.tmp`.
const TMP_SUFFIX: &str = ".enc.tmp";
/// Private folder (under the storage folder) of one recording's decrypted copies for its
/// conversion: `.plain-<recording>`.
const PLAIN_DIR_PREFIX: &str = ".plain-";
/// Private folder (under the storage folder) where a leftover encrypted segment is decrypted
/// to be checked before adoption: `.adopt-<seq>`.
const ADOPT_DIR_PREFIX: &str = ".adopt-";

/// The number of `00000042.ts` or of its encrypted `00000042.ts.enc` (`None` for an
/// encryption's temp file or a name that is not a number).
pub fn seq_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    if is_temp(name) {
        return None;
    }
    let name = name.strip_suffix(ENC_SUFFIX).unwrap_or(name);
    let stem = name.split_once('.').map_or(name, |(stem, _)| stem);
    stem.parse().ok()
}

/// Whether a (catalogued or found) segment path names a file encrypted at rest.
pub fn is_encrypted(path: impl AsRef<Path>) -> bool {
    path.as_ref()
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(ENC_SUFFIX))
}

/// The media file a segment path stands for: `segments/00000042.ts` for itself and for
/// `segments/00000042.ts.enc` (what an upload sends and names its object after).
pub fn plain_name(path: &str) -> &str {
    path.strip_suffix(ENC_SUFFIX).unwrap_or(path)
}

/// The bytes the file at catalogued `path` should hold for `media_bytes` of media: an
/// encrypted file is longer by the cipher's known overhead.
pub fn on_disk_len(path: &str, media_bytes: u64) -> u64 {
    match is_encrypted(path) {
        true => crate::crypt::encrypted_len(media_bytes),
        false => media_bytes,
    }
}

/// `segments_dir`'s own name joined with the file's, e.g. `segments/00000042.ts`: the path
/// the catalog keeps, relative to the storage folder.
pub fn relative_path(segments_dir: &Path, file: &Path) -> String {
    let dir = segments_dir
        .file_name()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{dir}/{name}")
}

/// `path` with the encrypted suffix appended.
pub(super) fn encrypted_path(plain: &Path) -> PathBuf {
    with_suffix(plain, ENC_SUFFIX)
}

/// The temp file an encryption of `plain` writes before its rename.
pub(super) fn temp_path(plain: &Path) -> PathBuf {
    with_suffix(plain, TMP_SUFFIX)
}

/// `relative` (a catalogued path) with the encrypted suffix appended.
pub(super) fn encrypted_relative(relative: &str) -> String {
    format!("{relative}{ENC_SUFFIX}")
}

pub(super) fn is_temp(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX)
}

/// The private folder of `recording`'s decrypted copies for its conversion.
pub(super) fn plain_dir(storage: &Path, recording: &Id) -> PathBuf {
    storage.join(format!("{PLAIN_DIR_PREFIX}{}", recording.as_str()))
}

/// The private folder, relative to the storage folder, where leftover segment `seq` is
/// decrypted to be checked.
pub(super) fn adopt_dir(seq: u64) -> PathBuf {
    PathBuf::from(format!("{ADOPT_DIR_PREFIX}{seq}"))
}

/// Whether a name under the storage folder is a folder of decrypted copies.
pub(super) fn is_decrypted_copies(name: &str) -> bool {
    name.starts_with(PLAIN_DIR_PREFIX) || name.starts_with(ADOPT_DIR_PREFIX)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_plain_and_encrypted_names_only() {
        assert_eq!(seq_of(Path::new("segments/00000042.ts")), Some(42));
        assert_eq!(seq_of(Path::new("/x/segments/00000042.ts")), Some(42));
        assert_eq!(seq_of(Path::new("segments/00000042.ts.enc")), Some(42));
        assert_eq!(seq_of(Path::new("segments/00000042.ts.enc.tmp")), None);
        assert_eq!(seq_of(Path::new("segments/notes.ts")), None);
        assert_eq!(seq_of(Path::new("segments/notes.txt")), None);
    }

    #[test]
    fn encrypted_names_and_their_media_names() {
        let plain = Path::new("segments/00000042.ts");
        assert!(!is_encrypted(plain));
        assert!(is_encrypted(encrypted_path(plain)));
        assert_eq!(encrypted_path(plain), Path::new("segments/00000042.ts.enc"));
        assert_eq!(
            encrypted_relative("segments/00000042.ts"),
            "segments/00000042.ts.enc"
        );
        assert_eq!(
            plain_name("segments/00000042.ts.enc"),
            "segments/00000042.ts"
        );
        assert_eq!(plain_name("segments/00000042.ts"), "segments/00000042.ts");
        assert!(is_temp(&temp_path(plain).to_string_lossy()));
        assert_eq!(on_disk_len("segments/00000042.ts", 1000), 1000);
        assert!(on_disk_len("segments/00000042.ts.enc", 1000) > 1000);
    }

    #[test]
    fn the_location_pattern_and_the_relative_path_agree_with_seq_of() {
        let file = Path::new("/data/segments").join(LOCATION_PATTERN.replace("%08d", "00000007"));
        assert_eq!(seq_of(&file), Some(7));
        let relative = relative_path(Path::new("/data/segments"), &file);
        assert_eq!(relative, "segments/00000007.ts");
        assert!(relative.starts_with(SEGMENTS_DIR));
    }

    #[test]
    fn folders_of_decrypted_copies_are_recognised() {
        let storage = Path::new("/data");
        let plain = plain_dir(storage, &Id::parse("r-1").expect("id"));
        let plain = plain.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(is_decrypted_copies(plain));
        assert!(is_decrypted_copies(&adopt_dir(9).to_string_lossy()));
        assert!(!is_decrypted_copies(SEGMENTS_DIR));
        assert!(!is_decrypted_copies("catalog.sqlite3"));
    }
}
