//! The local disk budget's hands (issue item 7): how much the device may still write, and
//! evicting segment files the catalog says nobody needs any more.
//!
//! Owns: the room figure fed to the engine as `Input::Storage`, and the eviction pass: which
//! evictable segments go, oldest first, until the need is met.
//! Must not touch: deciding what is evictable (the catalog's `evictable_segments` holds that
//! rule: never media not yet uploaded or converted), how a segment file is deleted and
//! released (`segments::release`), recording states (the engine's), files the catalog does
//! not list (reconcile reports those; nothing here guesses).
//!
//! Synchronous like the catalog: the core runs it on the catalog thread (`CatalogHandle`).

use std::path::Path;
use std::time::Duration;

use tracing::info;

use crate::catalog::{Catalog, CatalogError, SegmentRecord};
use crate::config::StorageConfig;
use crate::protocol::Timestamp;
use crate::segments;

/// Segments looked up per catalog query; a pass continues until the need is met.
const BATCH: usize = 64;

/// Bytes the device may still write: what the file system has beyond `min_free_bytes`,
/// capped by what `max_bytes` leaves after `used_bytes`. Saturating: a budget already
/// overrun is zero, never an underflow.
pub fn room_bytes(storage: &StorageConfig, free_bytes: u64, used_bytes: u64) -> u64 {
    let by_free = free_bytes.saturating_sub(storage.min_free_bytes);
    match storage.max_bytes {
        Some(max) => by_free.min(max.saturating_sub(used_bytes)),
        None => by_free,
    }
}

/// What one eviction pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvictReport {
    /// Segment files removed (or found already gone) and marked released.
    pub released: usize,
    pub freed_bytes: u64,
    /// How much of `need_bytes` could not be freed: the rest is media still waiting for its
    /// upload, its conversion or its retention.
    pub short_bytes: u64,
    /// Files that could not be removed or made durable, with why; they stay unreleased and
    /// are tried again on the next pass.
    pub failed: Vec<(u64, String)>,
}

/// Deletes evictable segment files, oldest first, until `need_bytes` are freed or none is
/// left: segments sealed more than `retention` before `now` whose uploads and conversions are
/// done, and those of discarded or deleted recordings at once. Pass `u64::MAX` to remove
/// every eligible file (the periodic pass, so retention is honoured even with room to spare).
///
/// Each batch goes through `segments::release`: deleted, its folders fsynced, and only then
/// marked released.
pub fn evict(
    catalog: &mut Catalog,
    storage_dir: &Path,
    retention: Duration,
    now: Timestamp,
    need_bytes: u64,
) -> Result<EvictReport, CatalogError> {
    let cutoff = Timestamp(now.0.saturating_sub(millis(retention)));
    let mut report = EvictReport::default();
    while report.freed_bytes < need_bytes {
        let mut batch = catalog.evictable_segments(cutoff, BATCH)?;
        let full = batch.len() == BATCH;
        batch.truncate(enough(&batch, need_bytes - report.freed_bytes));
        let released = segments::release(catalog, storage_dir, batch, now)?;
        report.released += released.segments;
        report.freed_bytes = report.freed_bytes.saturating_add(released.bytes);
        report.failed.extend(released.failed);
        // A failure would come back in the next query: stop rather than spin on it.
        if !full || !report.failed.is_empty() {
            break;
        }
    }
    report.short_bytes = need_bytes.saturating_sub(report.freed_bytes);
    if report.released > 0 {
        info!(
            released = report.released,
            freed_bytes = report.freed_bytes,
            "segment files evicted"
        );
    }
    Ok(report)
}

/// How many of the oldest segments in `batch` free at least `need` bytes (all if they can't).
fn enough(batch: &[SegmentRecord], need: u64) -> usize {
    let mut planned = 0u64;
    for (i, seg) in batch.iter().enumerate() {
        if planned >= need {
            return i;
        }
        planned = planned.saturating_add(seg.bytes);
    }
    batch.len()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::catalog::Op;
    use crate::protocol::{
        Account, Id, Meeting, MeetingState, RecordingInfo, RecordingKind, RecordingState,
    };
    use tempfile::TempDir;

    const T0: i64 = 1_800_000_000_000;
    const HOUR_MS: i64 = 3_600_000;
    const MIB: u64 = 1 << 20;

    fn storage(max_bytes: Option<u64>, min_free_bytes: u64) -> StorageConfig {
        StorageConfig {
            dir: PathBuf::from("/var/lib/roomrec"),
            save_dir: PathBuf::from("/var/lib/roomrec/local"),
            max_bytes,
            min_free_bytes,
            retention_hours: 24,
            encrypt_segments: false,
            segment_key: None,
            segment_key_file: None,
        }
    }

    #[test]
    fn room_is_the_tighter_of_free_space_and_the_byte_cap() {
        let cases = [
            // (max_bytes, min_free, free, used, room)
            (None, 100, 1_000, 0, 900),
            (None, 100, 50, 0, 0),
            (Some(500), 100, 1_000, 200, 300),
            (Some(500), 100, 300, 200, 200),
            (Some(500), 100, 1_000, 800, 0),
            (Some(u64::MAX), 0, u64::MAX, 0, u64::MAX),
        ];
        for (max, min_free, free, used, want) in cases {
            let got = room_bytes(&storage(max, min_free), free, used);
            assert_eq!(
                got, want,
                "max {max:?} min_free {min_free} free {free} used {used}"
            );
        }
    }

    fn id(s: &str) -> Id {
        Id::parse(s).expect("test id")
    }

    fn rec(r: &str, kind: RecordingKind, state: RecordingState) -> RecordingInfo {
        RecordingInfo {
            recording_id: id(r),
            meeting_id: id("m-1"),
            kind,
            owner: id("u-1"),
            started_by: id("u-1"),
            host: id("u-1"),
            state,
            created_at: Timestamp(T0),
            recorded_ms: 60_000,
            bytes: 0,
            shared: false,
            location: None,
            transcription: false,
        }
    }

    /// A storage folder with a catalog holding c-1 (cloud), l-1 (local, converting) and
    /// d-1 (local, discarded).
    pub(super) struct Site {
        pub dir: TempDir,
        pub cat: Catalog,
    }

    impl Site {
        pub fn new(dir: TempDir) -> Site {
            std::fs::create_dir_all(dir.path().join("segments")).expect("segments folder");
            let mut cat = Catalog::open(&dir.path().join("catalog.db")).expect("catalog");
            let meeting = Meeting {
                meeting_id: id("m-1"),
                state: MeetingState::Ended,
                creator: id("u-1"),
                host: id("u-1"),
                cohosts: vec![],
                participants: vec![],
                sharing: false,
                account: Account {
                    tier: None,
                    licence_expires_at: None,
                    cloud_quota_bytes: Some(None),
                    cloud_used_bytes: 0,
                },
                settings: Default::default(),
            };
            let ops = [
                Op::SaveMeeting {
                    version: Some(1),
                    meeting: Some(meeting),
                    at: Timestamp(T0),
                },
                Op::SaveRecording(rec("c-1", RecordingKind::Cloud, RecordingState::Stopped)),
                Op::SaveRecording(rec("l-1", RecordingKind::Local, RecordingState::Converting)),
                Op::SaveRecording(rec("d-1", RecordingKind::Local, RecordingState::Discarded)),
            ];
            cat.apply(&ops).expect("seed");
            Site { dir, cat }
        }

        /// Writes a `bytes`-long file for `seq`, sealed at `sealed_at`, tagged `tag`; cloud
        /// segments are marked uploaded when `uploaded`.
        pub fn segment(&mut self, seq: u64, bytes: u64, sealed_at: i64, tag: &str, uploaded: bool) {
            let path = format!("segments/{seq:08}.ts");
            let len = usize::try_from(bytes).expect("test size");
            std::fs::write(self.dir.path().join(&path), vec![7u8; len]).expect("segment file");
            let seg = SegmentRecord {
                seq,
                path,
                bytes,
                duration_ms: 4_000,
                sha256: "ab".repeat(32),
                sealed_at: Timestamp(sealed_at),
                silent_ms: 0,
            };
            let tag = id(tag);
            let cloud = tag.as_str().starts_with('c').then_some(&tag);
            self.cat
                .seal_segment(&seg, std::slice::from_ref(&tag), cloud)
                .expect("seal");
            if uploaded {
                self.cat
                    .mark_uploaded(seq, &tag, "k", "e")
                    .expect("mark uploaded");
            }
        }

        pub fn exists(&self, seq: u64) -> bool {
            self.dir
                .path()
                .join(format!("segments/{seq:08}.ts"))
                .exists()
        }

        pub fn evict(&mut self, now: i64, need: u64) -> EvictReport {
            let dir = self.dir.path().to_path_buf();
            evict(
                &mut self.cat,
                &dir,
                Duration::from_secs(24 * 3600),
                Timestamp(now),
                need,
            )
            .expect("evict")
        }
    }

    #[test]
    fn evicts_only_what_is_uploaded_converted_and_past_the_retention() {
        let mut site = Site::new(TempDir::new().expect("temp dir"));
        let now = T0 + 48 * HOUR_MS;
        site.segment(1, 100, T0, "c-1", true); // old, uploaded: goes
        site.segment(2, 200, T0, "c-1", false); // old, not uploaded: stays
        site.segment(3, 300, T0, "l-1", false); // old, not converted: stays
        site.segment(4, 400, now - HOUR_MS, "c-1", true); // uploaded, within retention
        site.segment(5, 500, now - HOUR_MS, "d-1", false); // discarded: goes at once
        let before = site.cat.used_bytes().expect("used");
        let report = site.evict(now, u64::MAX);
        assert_eq!((report.released, report.freed_bytes), (2, 600));
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(site.cat.used_bytes().expect("used"), before - 600);
        let present: Vec<bool> = (1..=5).map(|s| site.exists(s)).collect();
        assert_eq!(present, [false, true, true, true, false]);
        let again = site.evict(now, u64::MAX);
        assert_eq!(again.released, 0, "released rows are not evicted twice");
    }

    #[test]
    fn stops_once_the_need_is_met_oldest_first() {
        let mut site = Site::new(TempDir::new().expect("temp dir"));
        for seq in 1..=BATCH as u64 + 6 {
            site.segment(seq, 10, T0 + seq as i64, "c-1", true);
        }
        let now = T0 + 48 * HOUR_MS;
        let report = site.evict(now, 25);
        assert_eq!((report.released, report.short_bytes), (3, 0));
        assert!(!site.exists(3) && site.exists(4), "oldest first");
        let rest = site.evict(now, u64::MAX);
        assert_eq!(rest.released, BATCH + 3, "more than one batch");
        let short = site.evict(now, 1_000);
        assert_eq!((short.released, short.short_bytes), (0, 1_000));
    }

    #[test]
    fn a_file_already_gone_is_released_so_reconcile_does_not_miss_it() {
        let mut site = Site::new(TempDir::new().expect("temp dir"));
        site.segment(1, 100, T0, "c-1", true);
        std::fs::remove_file(site.dir.path().join("segments/00000001.ts")).expect("rm");
        let report = site.evict(T0 + 48 * HOUR_MS, u64::MAX);
        assert_eq!(report.released, 1);
        assert_eq!(site.cat.used_bytes().expect("used"), 0);
    }

    /// A real file system that fills up: an 8 MiB tmpfs. It needs root and mount rights, which
    /// CI has; without them the test fails rather than pass vacuously.
    #[test]
    fn a_full_tmpfs_is_tracked_and_freed() {
        let mount = Tmpfs::mount(8)
            .expect("cannot mount a tmpfs: run the tests as root (CI does) to check a full disk");
        let mut site = Site::new(TempDir::new_in(&mount.dir).expect("temp dir in tmpfs"));
        let config = storage(None, MIB);
        let room = |site: &Site| {
            let free = crate::segments::free_bytes(site.dir.path()).expect("statvfs");
            room_bytes(&config, free, site.cat.used_bytes().expect("used"))
        };
        let empty = room(&site);
        assert!(
            empty > 5 * MIB && empty < 7 * MIB,
            "8 MiB less 1 MiB: {empty}"
        );
        // Fill until there is no room left, as recording would.
        let mut seq = 0;
        while room(&site) > 0 {
            seq += 1;
            site.segment(seq, 512 * 1024, T0 + seq as i64, "c-1", true);
        }
        assert!(seq >= 10, "{seq} segments of 512 KiB fit");
        assert_eq!(room(&site), 0, "room saturates at zero, never underflows");
        let report = site.evict(T0 + 48 * HOUR_MS, 4 * MIB);
        assert_eq!(report.released, 8, "{report:?}");
        let freed = room(&site);
        assert!(freed >= 3 * MIB, "eviction gave the room back: {freed}");
    }

    /// A tmpfs mounted on a fresh folder, unmounted on drop.
    struct Tmpfs {
        dir: TempDir,
    }

    impl Tmpfs {
        fn mount(mib: u64) -> Option<Tmpfs> {
            let dir = TempDir::new().ok()?;
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .ok()?;
            status.success().then_some(Tmpfs { dir })
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.dir.path())
                .status();
        }
    }
}
