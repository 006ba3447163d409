//! The number of video samples (frames) in an MP4, read from its boxes.
//!
//! Owns: walking `moov/trak/mdia` to each track's handler and sample table. Must not touch: the
//! pipelines, SQLite, MQTT.
//!
//! Why: the conversion check must show that the MP4 holds every frame of the segments. A
//! duration alone cannot: the remux leaves small joins between segments, so the MP4 may be a
//! little longer than its content and still miss frames. The sample counts are exact.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::MediaError;

/// `moov` is a few kB per minute; anything this large is not an MP4 roomrec wrote.
const MAX_MOOV_BYTES: u64 = 256 << 20;

/// The sample count of every video track (`hdlr` `vide`), summed. `None`: no `moov` box.
pub(crate) fn video_samples(path: &Path) -> Result<Option<u64>, MediaError> {
    let io = |e| MediaError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut at = 0;
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8]).map_err(io)?;
        let (size, header) = match be32(&head[..4]) {
            1 => {
                file.read_exact(&mut head[8..]).map_err(io)?;
                (be64(&head[8..]), 16)
            }
            0 => (len - at, 8),
            n => (u64::from(n), 8),
        };
        if size < header {
            return Ok(None); // corrupt: no way to the next box
        }
        if &head[4..8] == b"moov" && size <= MAX_MOOV_BYTES {
            let mut moov = vec![0u8; (size - header) as usize];
            file.read_exact(&mut moov).map_err(io)?;
            return Ok(Some(video_samples_in_moov(&moov)));
        }
        at += size;
    }
    Ok(None)
}

fn video_samples_in_moov(moov: &[u8]) -> u64 {
    children(moov)
        .filter(|(kind, _)| kind == b"trak")
        .filter_map(|(_, trak)| {
            let mdia = child(trak, b"mdia")?;
            let hdlr = child(mdia, b"hdlr")?;
            // Full box: version and flags (4), pre_defined (4), then the handler type.
            if hdlr.get(8..12)? != b"vide" {
                return None;
            }
            let stsz = child(child(child(mdia, b"minf")?, b"stbl")?, b"stsz")?;
            // Full box (4), sample_size (4), sample_count (4).
            Some(u64::from(be32(stsz.get(8..12)?)))
        })
        .sum()
}

/// The first child box of that type.
fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(parent).find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// The child boxes of a container's payload, as (type, payload); stops at a corrupt size.
fn children(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = usize::try_from(be32(data.get(..4)?)).ok()?;
        let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        if size < 8 || size > data.len() {
            return None;
        }
        let payload = &data[8..size];
        data = &data[size..];
        Some((kind, payload))
    })
}

fn be32(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |acc, x| acc << 8 | u32::from(*x))
}

fn be64(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0, |acc, x| acc << 8 | u64::from(*x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    fn trak(handler: &[u8; 4], samples: u32) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 12]);
        let mut stsz = vec![0u8; 8];
        stsz.extend_from_slice(&samples.to_be_bytes());
        let stbl = boxed(b"stbl", &boxed(b"stsz", &stsz));
        let minf = boxed(b"minf", &stbl);
        let mdia = boxed(b"mdia", &[boxed(b"hdlr", &hdlr), minf].concat());
        boxed(b"trak", &mdia)
    }

    #[test]
    fn counts_video_tracks_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        let moov = boxed(
            b"moov",
            &[trak(b"vide", 617), trak(b"soun", 1904), trak(b"vide", 3)].concat(),
        );
        let file = [boxed(b"ftyp", b"isom"), moov, boxed(b"mdat", &[0; 32])].concat();
        std::fs::write(&path, file).unwrap();
        assert_eq!(video_samples(&path).unwrap(), Some(620));
        std::fs::write(&path, boxed(b"mdat", &[0; 32])).unwrap();
        assert_eq!(video_samples(&path).unwrap(), None);
    }
}
