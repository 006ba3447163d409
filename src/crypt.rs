//! Segments encrypted at rest (`storage.encrypt_segments`): XChaCha20-Poly1305 in the STREAM
//! construction (RustCrypto `chacha20poly1305`, `aead::stream::EncryptorBE32`).
//!
//! Owns: the key file (reading and checking it), the cipher and the file format of an
//! encrypted segment, and streaming encryption and decryption. Must not touch: segment file
//! names and the durable replacement of a plaintext by its encrypted file (`segments`), the
//! catalog, the pipeline, uploads or conversions — callers decide when a file is encrypted or
//! read back. Never logs or formats key material (`SegmentKey`'s `Debug` prints `***`).
//!
//! File format: a 32-byte header, then the STREAM chunks of [`CHUNK`] plaintext bytes (each
//! 16 bytes longer for its Poly1305 tag; the last one, flagged as last by STREAM, may be
//! shorter and even empty):
//!
//! ```text
//! magic "RRSEGENC" (8) | version 1 (1) | chunk size, u32 big-endian (4) | nonce prefix (19)
//! ```
//!
//! Every chunk is authenticated with associated data = the header plus the segment's
//! sequence number, so a file renamed onto another segment's number, a header edited, a chunk
//! reordered or the file cut at a chunk boundary all fail to decrypt. The nonce prefix is
//! random for each file (192-bit XChaCha nonces leave no practical collision risk with one
//! key for the appliance's life).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use zeroize::Zeroizing;

/// Plaintext bytes per STREAM chunk: small enough to keep memory flat, large enough that the
/// 16-byte tag per chunk is 0.02 % overhead.
pub const CHUNK: usize = 64 * 1024;
/// Bytes of a key.
pub const KEY_LEN: usize = 32;

const MAGIC: &[u8; 8] = b"RRSEGENC";
const VERSION: u8 = 1;
/// XChaCha20's 24-byte nonce less STREAM-BE32's 5 bytes of counter and last-chunk flag.
const NONCE_PREFIX: usize = 19;
const HEADER: usize = MAGIC.len() + 1 + 4 + NONCE_PREFIX;
const TAG: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not an encrypted segment (no roomrec header)")]
    NotEncrypted { path: PathBuf },
    #[error("{path} has an unsupported encryption format (version {version}, chunk {chunk})")]
    Format {
        path: PathBuf,
        version: u8,
        chunk: u32,
    },
    /// The tag did not verify: wrong key, a changed byte, a cut file or another segment's file.
    #[error("{path} does not decrypt as segment {seq}: wrong key, tampered, truncated or another segment's file")]
    Authentication { path: PathBuf, seq: u64 },
    #[error("no randomness for a nonce or key: {0}")]
    Random(String),
}

impl CryptError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> CryptError + '_ {
        move |source| CryptError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The 32-byte segment key. Cheap to clone (shared), wiped from memory when the last clone
/// goes, never printed.
#[derive(Clone)]
pub struct SegmentKey(Arc<Zeroizing<[u8; KEY_LEN]>>);

impl SegmentKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SegmentKey {
        SegmentKey(Arc::new(Zeroizing::new(bytes)))
    }

    /// A new random key (for `roomrecctl key segment` and tests).
    pub fn generate() -> Result<SegmentKey, CryptError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|e| CryptError::Random(e.to_string()))?;
        Ok(SegmentKey(Arc::new(bytes)))
    }

    /// The key as 64 lowercase hex digits, the key file's text form. Only for writing the file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// Reads a key file: 32 raw bytes, or 64 hex digits (one trailing newline allowed). The
    /// file must be a regular file no group or other user may read (mode 0400 or 0600).
    /// Errors name the path and the rule broken, never the contents.
    pub fn load(path: &Path) -> Result<SegmentKey, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read '{shown}': {e}"))?;
        if !meta.is_file() {
            return Err(format!("'{shown}' is not a regular file"));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "'{shown}' is readable or writable by group or others (mode {mode:04o}); \
                 the segment key must be private: chmod 0400 '{shown}'"
            ));
        }
        let raw =
            Zeroizing::new(std::fs::read(path).map_err(|e| format!("cannot read '{shown}': {e}"))?);
        let wrong = || {
            format!(
                "'{shown}' must hold a 32-byte key: 32 raw bytes or 64 hex digits \
                 (roomrecctl key segment writes one)"
            )
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if raw.len() == KEY_LEN {
            key.copy_from_slice(&raw);
        } else {
            let text = std::str::from_utf8(&raw).map_err(|_| wrong())?;
            let text = text.strip_suffix('\n').unwrap_or(text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            hex::decode_to_slice(text, key.as_mut()).map_err(|_| wrong())?;
        }
        if key.iter().all(|&b| b == 0) {
            return Err(format!(
                "'{shown}' holds an all-zero key; generate a random one"
            ));
        }
        Ok(SegmentKey(Arc::new(key)))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let bytes: &[u8; KEY_LEN] = &self.0;
        XChaCha20Poly1305::new(bytes.into())
    }
}

impl std::fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentKey(***)")
    }
}

/// Two handles are equal when they hold the same key (config comparisons in tests).
impl PartialEq for SegmentKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref() == other.0.as_ref()
    }
}
impl Eq for SegmentKey {}

/// The size of the encrypted file of `plain` plaintext bytes: what reconciliation compares an
/// encrypted file against, since the catalog keeps the media's own size.
pub fn encrypted_len(plain: u64) -> u64 {
    // A full last chunk is sent as the last one (no empty chunk after it); empty input is
    // one empty last chunk.
    let chunks = plain.div_ceil(CHUNK as u64).max(1);
    HEADER as u64 + plain + chunks * TAG as u64
}

fn header(nonce: &[u8; NONCE_PREFIX]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8] = VERSION;
    h[9..13].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    h[13..].copy_from_slice(nonce);
    h
}

fn associated_data(header: &[u8; HEADER], seq: u64) -> [u8; HEADER + 8] {
    let mut ad = [0u8; HEADER + 8];
    ad[..HEADER].copy_from_slice(header);
    ad[HEADER..].copy_from_slice(&seq.to_be_bytes());
    ad
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encrypts all of `plain` as segment `seq` into `out`. `path` only names errors.
pub fn encrypt_stream(
    key: &SegmentKey,
    seq: u64,
    plain: &mut impl Read,
    out: &mut impl Write,
    path: &Path,
) -> Result<(), CryptError> {
    let mut nonce = [0u8; NONCE_PREFIX];
    getrandom::fill(&mut nonce).map_err(|e| CryptError::Random(e.to_string()))?;
    let head = header(&nonce);
    let ad = associated_data(&head, seq);
    out.write_all(&head).map_err(CryptError::io(path))?;
    let mut enc = EncryptorBE32::from_aead(key.cipher(), nonce.as_ref().into());
    let mut cur = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut n = fill(plain, &mut cur).map_err(CryptError::io(path))?;
    let sealed = |_| CryptError::Authentication {
        path: path.to_owned(),
        seq,
    };
    loop {
        // A full chunk is the last one only if nothing follows it: look one chunk ahead.
        let m = if n == CHUNK {
            fill(plain, &mut next).map_err(CryptError::io(path))?
        } else {
            0
        };
        let payload = Payload {
            msg: &cur[..n],
            aad: &ad,
        };
        if m == 0 {
            let ct = enc.encrypt_last(payload).map_err(sealed)?;
            out.write_all(&ct).map_err(CryptError::io(path))?;
            return Ok(());
        }
        let ct = enc.encrypt_next(payload).map_err(sealed)?;
        out.write_all(&ct).map_err(CryptError::io(path))?;
        std::mem::swap(&mut cur, &mut next);
        n = m;
    }
}

/// Decrypts an encrypted segment `seq` read from `input` into `out`; nothing written to `out`
/// is trustworthy unless this returns `Ok` (callers write to a temp place or to memory).
pub fn decrypt_stream(
    key: &SegmentKey,
    seq: u64,
    input: &mut impl Read,
    out: &mut impl Write,
    path: &Path,
) -> Result<u64, CryptError> {
    let mut head = [0u8; HEADER];
    let got = fill(input, &mut head).map_err(CryptError::io(path))?;
    if got < HEADER || &head[..8] != MAGIC {
        return Err(CryptError::NotEncrypted {
            path: path.to_owned(),
        });
    }
    let chunk = u32::from_be_bytes([head[9], head[10], head[11], head[12]]);
    if head[8] != VERSION || chunk as usize != CHUNK {
        return Err(CryptError::Format {
            path: path.to_owned(),
            version: head[8],
            chunk,
        });
    }
    let ad = associated_data(&head, seq);
    let mut dec = DecryptorBE32::from_aead(key.cipher(), head[13..].into());
    let failed = |_| CryptError::Authentication {
        path: path.to_owned(),
        seq,
    };
    let mut cur = vec![0u8; CHUNK + TAG];
    let mut next = vec![0u8; CHUNK + TAG];
    let mut n = fill(input, &mut cur).map_err(CryptError::io(path))?;
    let mut total = 0u64;
    loop {
        let m = if n == CHUNK + TAG {
            fill(input, &mut next).map_err(CryptError::io(path))?
        } else {
            0
        };
        let payload = Payload {
            msg: &cur[..n],
            aad: &ad,
        };
        if m == 0 {
            let pt = dec.decrypt_last(payload).map_err(failed)?;
            out.write_all(&pt).map_err(CryptError::io(path))?;
            return Ok(total + pt.len() as u64);
        }
        let pt = dec.decrypt_next(payload).map_err(failed)?;
        out.write_all(&pt).map_err(CryptError::io(path))?;
        total += pt.len() as u64;
        std::mem::swap(&mut cur, &mut next);
        n = m;
    }
}

/// Encrypts plaintext file `plain` as segment `seq` into `enc` durably, then removes the
/// plaintext. Order: `tmp` written and fsynced → renamed to `enc` → folder fsynced →
/// plaintext removed → folder fsynced. A crash at any point leaves the plaintext, or a
/// complete `enc`, or both (never neither). Blocking.
pub fn encrypt_file(
    key: &SegmentKey,
    seq: u64,
    plain: &Path,
    enc: &Path,
    tmp: &Path,
) -> Result<(), CryptError> {
    let result = (|| {
        let mut input = File::open(plain).map_err(CryptError::io(plain))?;
        let file = private_create(tmp)?;
        let mut out = io::BufWriter::with_capacity(CHUNK + TAG, file);
        encrypt_stream(key, seq, &mut input, &mut out, tmp)?;
        let file = out
            .into_inner()
            .map_err(|e| CryptError::io(tmp)(e.into_error()))?;
        file.sync_all().map_err(CryptError::io(tmp))?;
        std::fs::rename(tmp, enc).map_err(CryptError::io(enc))?;
        sync_parent(enc)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
        return result;
    }
    std::fs::remove_file(plain).map_err(CryptError::io(plain))?;
    sync_parent(plain)
}

/// The whole plaintext of encrypted segment `seq` (segments are a few MB).
pub fn decrypt_to_vec(key: &SegmentKey, seq: u64, path: &Path) -> Result<Vec<u8>, CryptError> {
    let file = File::open(path).map_err(CryptError::io(path))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0) as usize;
    let mut input = io::BufReader::with_capacity(CHUNK + TAG, file);
    let mut out = Vec::with_capacity(len);
    decrypt_stream(key, seq, &mut input, &mut out, path)?;
    Ok(out)
}

/// Decrypts segment `seq` into a new file `out` (mode 0600); `out` is removed on failure.
pub fn decrypt_to_file(
    key: &SegmentKey,
    seq: u64,
    path: &Path,
    out: &Path,
) -> Result<u64, CryptError> {
    let result = (|| {
        let input = File::open(path).map_err(CryptError::io(path))?;
        let mut input = io::BufReader::with_capacity(CHUNK + TAG, input);
        let mut writer = io::BufWriter::new(private_create(out)?);
        let n = decrypt_stream(key, seq, &mut input, &mut writer, path)?;
        writer.flush().map_err(CryptError::io(out))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

/// Creates (or truncates) `path` readable by its owner only.
fn private_create(path: &Path) -> Result<File, CryptError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(CryptError::io(path))
}

fn sync_parent(path: &Path) -> Result<(), CryptError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(CryptError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SegmentKey {
        SegmentKey::generate().expect("random key")
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn seal(key: &SegmentKey, seq: u64, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encrypt_stream(key, seq, &mut &data[..], &mut out, Path::new("t")).expect("encrypt");
        out
    }

    fn open(key: &SegmentKey, seq: u64, data: &[u8]) -> Result<Vec<u8>, CryptError> {
        let mut out = Vec::new();
        decrypt_stream(key, seq, &mut &data[..], &mut out, Path::new("t")).map(|_| out)
    }

    #[test]
    fn round_trips_every_chunk_boundary_and_has_the_predicted_size() {
        let k = key();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7] {
            let data = sample(len);
            let ct = seal(&k, 7, &data);
            assert_eq!(ct.len() as u64, encrypted_len(len as u64), "len {len}");
            if len > 0 {
                assert_ne!(&ct[HEADER..HEADER + len.min(64)], &data[..len.min(64)]);
            }
            assert_eq!(open(&k, 7, &ct).expect("decrypts"), data, "len {len}");
        }
    }

    #[test]
    fn the_wrong_key_is_refused() {
        let ct = seal(&key(), 1, &sample(1000));
        assert!(matches!(
            open(&key(), 1, &ct),
            Err(CryptError::Authentication { .. })
        ));
    }

    #[test]
    fn another_segments_number_is_refused() {
        let k = key();
        let ct = seal(&k, 1, &sample(1000));
        assert!(matches!(
            open(&k, 2, &ct),
            Err(CryptError::Authentication { seq: 2, .. })
        ));
    }

    #[test]
    fn truncation_anywhere_and_a_flipped_bit_are_refused() {
        let k = key();
        let ct = seal(&k, 3, &sample(2 * CHUNK + 100));
        // At a chunk boundary (a whole chunk dropped), inside a chunk, inside the header.
        for cut in [
            HEADER + CHUNK + TAG,
            HEADER + 2 * (CHUNK + TAG),
            ct.len() - 1,
            10,
        ] {
            assert!(open(&k, 3, &ct[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = ct.clone();
        bad[HEADER + 5] ^= 1;
        assert!(open(&k, 3, &bad).is_err());
        let mut bad_header = ct;
        bad_header[20] ^= 1;
        assert!(open(&k, 3, &bad_header).is_err());
    }

    #[test]
    fn a_plaintext_file_is_not_taken_for_an_encrypted_one() {
        let ts = [0x47u8; 188 * 4];
        assert!(matches!(
            open(&key(), 1, &ts),
            Err(CryptError::NotEncrypted { .. })
        ));
    }

    #[test]
    fn encrypt_file_replaces_the_plaintext_and_decrypts_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("00000009.ts");
        let (enc, tmp) = (dir.path().join("9.enc"), dir.path().join("9.tmp"));
        let data = sample(200_000);
        std::fs::write(&plain, &data).expect("write");
        let k = key();
        encrypt_file(&k, 9, &plain, &enc, &tmp).expect("encrypt");
        assert!(!plain.exists());
        assert!(!tmp.exists());
        assert_eq!(decrypt_to_vec(&k, 9, &enc).expect("decrypt"), data);
        let out = dir.path().join("copy.ts");
        assert_eq!(decrypt_to_file(&k, 9, &enc, &out).expect("file"), 200_000);
        assert_eq!(std::fs::read(&out).expect("read"), data);
        let mode = std::fs::metadata(&enc).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A failed decryption leaves no partial output behind.
        let bad = dir.path().join("bad.ts");
        assert!(decrypt_to_file(&k, 10, &enc, &bad).is_err());
        assert!(!bad.exists());
    }

    #[test]
    fn key_files_are_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, data: &[u8], mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            p
        };
        let k = key();
        let hex_file = write(
            "hex",
            format!("{}\n", k.to_hex().as_str()).as_bytes(),
            0o400,
        );
        assert_eq!(SegmentKey::load(&hex_file).expect("hex key"), k);
        let raw = write("raw", &[9u8; 32], 0o600);
        assert_eq!(
            SegmentKey::load(&raw).expect("raw key"),
            SegmentKey::from_bytes([9; 32])
        );
        let open_to_group = write("g", &[9u8; 32], 0o640);
        assert!(SegmentKey::load(&open_to_group)
            .unwrap_err()
            .contains("group or others"));
        let short = write("short", &[9u8; 31], 0o600);
        assert!(SegmentKey::load(&short).unwrap_err().contains("32-byte"));
        let zero = write("zero", &[0u8; 32], 0o600);
        assert!(SegmentKey::load(&zero).unwrap_err().contains("all-zero"));
        assert!(SegmentKey::load(&dir.path().join("none"))
            .unwrap_err()
            .contains("cannot read"));
        let secret = format!("{:?}", k);
        assert!(!secret.contains(&k.to_hex()[..8]), "{secret}");
    }
}
