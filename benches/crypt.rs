//! The cost of `storage.encrypt_segments`: MB/s of encrypting and decrypting a 4 MB segment
//! (in memory, and file to file with the fsyncs and rename the daemon does), SHA-256 for
//! comparison (sealing already hashes every segment), and what that means in CPU seconds per
//! hour of recording at 2.5 Mbit/s. Prints its figures; run with `cargo bench --bench crypt`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use roomrec::crypt::{self, SegmentKey};
use roomrec::segments::{self, EncryptKey};
use sha2::Digest;

const SEGMENT: usize = 4 * 1024 * 1024;
const ROUNDS: u32 = 20;
/// Bytes of media an hour at 2.5 Mbit/s.
const HOUR_BYTES: f64 = 2_500_000.0 / 8.0 * 3600.0;

/// Best of `ROUNDS` runs of `f` (the least disturbed by the other work on the machine).
fn best(mut f: impl FnMut()) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn report(what: &str, bytes: usize, took: Duration) {
    let secs = took.as_secs_f64();
    let mb_s = bytes as f64 / secs / 1e6;
    let cpu_per_hour = HOUR_BYTES / (bytes as f64 / secs);
    println!(
        "{what:<42} {mb_s:>8.1} MB/s  {:>7.2} ms per 4 MB segment  {cpu_per_hour:>6.2} s per recorded hour ({:.3} % of one core)",
        secs * 1e3,
        cpu_per_hour / 3600.0 * 100.0
    );
}

fn main() {
    let key = SegmentKey::generate().expect("key");
    let data: Vec<u8> = (0..SEGMENT).map(|i| (i * 131 % 251) as u8).collect();
    println!(
        "segment {SEGMENT} bytes, best of {ROUNDS}; an hour at 2.5 Mbit/s is {:.0} MB",
        HOUR_BYTES / 1e6
    );

    let path = Path::new("bench");
    let mut sealed = Vec::with_capacity(SEGMENT + 4096);
    let took = best(|| {
        sealed.clear();
        crypt::encrypt_stream(&key, 1, &mut &data[..], &mut sealed, path).expect("encrypt");
        black_box(&sealed);
    });
    report("encrypt (memory)", SEGMENT, took);
    let mut plain = Vec::with_capacity(SEGMENT);
    let took = best(|| {
        plain.clear();
        crypt::decrypt_stream(&key, 1, &mut &sealed[..], &mut plain, path).expect("decrypt");
        black_box(&plain);
    });
    assert_eq!(plain, data);
    report("decrypt (memory)", SEGMENT, took);
    let took = best(|| {
        black_box(sha2::Sha256::digest(&data));
    });
    report("SHA-256, for comparison (sealing does it)", SEGMENT, took);

    // File to file as the daemon does it: read, encrypt to a temp, fsync, rename, fsync the
    // folder, remove the plaintext. Wall time: includes the disk.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let seg = dir.path().join("00000001.ts");
    let at_rest = EncryptKey::new(key.clone());
    let mut total = Duration::ZERO;
    for _ in 0..ROUNDS {
        std::fs::write(&seg, &data).expect("write");
        let t = Instant::now();
        let enc = segments::encrypt_file(&at_rest, &seg).expect("encrypt file");
        total += t.elapsed();
        std::fs::remove_file(enc).expect("remove");
    }
    report(
        "segments::encrypt_file (disk, fsync, rename; mean)",
        SEGMENT,
        total / ROUNDS,
    );
    std::fs::write(&seg, &data).expect("write");
    let enc = segments::encrypt_file(&at_rest, &seg).expect("encrypt file");
    let took = best(|| {
        black_box(crypt::decrypt_to_vec(&key, 1, &enc).expect("decrypt"));
    });
    report("decrypt_to_vec (file, as uploads do)", SEGMENT, took);
    let overhead = std::fs::metadata(&enc).expect("meta").len() - SEGMENT as u64;
    println!(
        "size overhead: {overhead} bytes per 4 MB segment ({:.3} %)",
        overhead as f64 / SEGMENT as f64 * 100.0
    );
}
