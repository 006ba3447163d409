//! Cost curves of all-day recordings (issue 10): how the MP4 conversion, boot reconciliation,
//! `list_recordings`, the HLS playlist and manifest, upload planning and housekeeping's
//! eviction query grow with a recording's length. A bench, not a test: it prints figures and the 24 h / 1 h ratio of
//! each, and asserts nothing.
//!
//!   cargo bench --bench cost_curves -- [HOURS ...]        (default: 1 8 24)
//!
//! Recordings are synthesised faster than real time by the device's encoder and segmenter on
//! a non-live source at a small size: x264 (veryfast, zerolatency, a 0.5 s GOP) at 160×90@30
//! on `snow` (noise, so the encoder spends the bit rate) at 450 kbit/s, AAC at 48 kHz, in 2 s
//! MPEG-TS segments by splitmuxsink. x264's scene-cut detection is off: on noise every frame
//! is a scene cut and so a keyframe, which no camera gives; the MP4 has a fragment per
//! keyframe, so the GOP must be the device's. 450 kbit/s makes 24 h about 5 GB, so the MP4
//! needs 64-bit offsets. They are kept in `$ROOMREC_COST_DIR` (default `target/cost-curves`),
//! marked by the encoder settings they were made with, for the next
//! run. Each recording's catalog holds it twice, as a local recording and the cloud
//! recording made alongside (every segment tagged with both, with its upload job).
//!
//! The conversion runs in a child process (this bench again, `--convert-child`), so its peak
//! RSS is its own (`wait4`; about 10 MB of it are the shared libraries GStreamer maps, pages
//! the daemon has mapped anyway), and so is its own memory (`RssAnon`, sampled every 50 ms);
//! the extra disk is the conversion's output folder, sampled as often. The MP4 is read back
//! with ffprobe (its duration) and ffmpeg (its last second decoded).
//! Boot reconciliation is also measured on a catalog of 100 000 segments (hard links to the
//! synthesised segments, so every file exists and has its size).
//! Goals (issue 10): conversion of 720p at 50× real time or faster (here at 160×90: the
//! remux's cost is per packet and per byte; `docs/media.md` relates the two), conversion
//! peak RSS ≤ 60 MB whatever the length, boot reconciliation of 100 000 segments ≤ 0.5 s,
//! every figure growing linearly or better.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gst::prelude::*;
use gstreamer as gst;
use roomrec::catalog::{Catalog, Op, SegmentRecord};
use roomrec::protocol::{
    Account, Id, Meeting, MeetingState, RecordingInfo, RecordingKind, RecordingState, Timestamp,
};
use roomrec::upload::manifest::{hls_playlist, manifest_json, ManifestSegment};
use tokio_util::sync::CancellationToken;

const SEGMENT_S: u64 = 2;
const FPS: u64 = 30;
const T0: i64 = 1_780_000_000_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--convert-child") {
        return convert_child(&args[1..]);
    }
    let mut hours: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if hours.is_empty() {
        hours = vec![1, 8, 24];
    }
    gst::init()?;
    let root = std::env::var_os("ROOMREC_COST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/cost-curves"));
    std::fs::create_dir_all(&root)?;
    let mut rows = Vec::new();
    for h in &hours {
        rows.push(measure(&root, *h)?);
    }
    println!();
    print_table(&rows);
    let hundred_k = reconcile_100k(&root)?;
    println!(
        "boot reconciliation of 100 000 segments: {:.3} s (goal <= 0.5 s)",
        hundred_k.as_secs_f64()
    );
    Ok(())
}

/// The figures of one recording length.
struct Row {
    hours: u64,
    segments: usize,
    segment_bytes: u64,
    converted: Converted,
    reconcile: Duration,
    list: Duration,
    playlist: Duration,
    manifest: Duration,
    plan_upload: Duration,
}

fn measure(root: &Path, hours: u64) -> anyhow::Result<Row> {
    let dir = root.join(format!("{hours}h"));
    let segments = synthesise(&dir, hours)?;
    let segment_bytes = segments.iter().map(|p| file_len(p)).sum();
    println!(
        "{hours} h: {} segments, {:.2} GB",
        segments.len(),
        segment_bytes as f64 / 1e9
    );
    let converted = convert(&dir, &segments)?;
    println!(
        "  conversion: {:.1} s ({:.0}x real time), peak RSS {:.1} MB (own memory {:.1} MB), peak extra disk {:.2} GB",
        converted.wall.as_secs_f64(),
        (hours * 3600) as f64 / converted.wall.as_secs_f64(),
        converted.rss_kb as f64 / 1024.0,
        converted.anon_kb as f64 / 1024.0,
        converted.extra_disk as f64 / 1e9
    );
    let catalog_path = build_catalog(&dir, &segments)?;
    let (reconcile, list, playlist, manifest, plan_upload) = catalog_figures(&dir, &catalog_path)?;
    Ok(Row {
        hours,
        segments: segments.len(),
        segment_bytes,
        converted,
        reconcile,
        list,
        playlist,
        manifest,
        plan_upload,
    })
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The segments of an `hours`-long recording in `dir/segments`, made once (again when the
/// pipeline that makes them changed: it is kept in the marker file).
fn synthesise(dir: &Path, hours: u64) -> anyhow::Result<Vec<PathBuf>> {
    let seg_dir = dir.join("segments");
    let done = dir.join("synthesised");
    let seconds = hours * 3600;
    let launch = format!(
        "videotestsrc is-live=false num-buffers={frames} pattern=snow \
         ! video/x-raw,format=I420,width=160,height=90,framerate={FPS}/1 \
         ! x264enc speed-preset=veryfast tune=zerolatency key-int-max={gop} bitrate=450 \
         option-string=scenecut=0 \
         ! h264parse ! queue ! m.video \
         audiotestsrc is-live=false wave=sine samplesperbuffer=1024 num-buffers={abufs} \
         ! audio/x-raw,rate=48000,channels=1 ! voaacenc bitrate=48000 ! aacparse ! queue \
         ! m.audio_0 \
         splitmuxsink name=m muxer=mpegtsmux max-size-time={max} location={loc}",
        frames = seconds * FPS,
        gop = FPS / 2,
        abufs = seconds * 48_000 / 1024,
        max = SEGMENT_S * 1_000_000_000,
        loc = seg_dir.join("%08d.ts").display(),
    );
    if std::fs::read_to_string(&done).ok().as_deref() != Some(launch.as_str()) {
        let _ = std::fs::remove_file(&done);
        let _ = std::fs::remove_dir_all(&seg_dir);
        std::fs::create_dir_all(&seg_dir)?;
        let started = Instant::now();
        let pipeline = gst::parse::launch(&launch)?;
        play(&pipeline)?;
        std::fs::write(&done, &launch)?;
        println!(
            "{hours} h synthesised in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    segments_in(&seg_dir)
}

/// The `.ts` files in `dir`, in name (= sequence) order.
fn segments_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .collect();
    segments.sort();
    Ok(segments)
}

fn play(pipeline: &gst::Element) -> anyhow::Result<()> {
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("no bus")?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(anyhow::anyhow!("{}", e.error())),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result
}

/// Converts in a child process and checks the MP4 with ffprobe; returns what it cost.
fn convert(dir: &Path, segments: &[PathBuf]) -> anyhow::Result<Converted> {
    let out_dir = dir.join("mp4");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir)?;
    let list = dir.join("segments.list");
    let names: Vec<String> = segments.iter().map(|p| p.display().to_string()).collect();
    std::fs::write(&list, names.join("\n"))?;
    let out = out_dir.join("recording.mp4");
    let started = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .arg("--convert-child")
        .arg(&list)
        .arg(&out)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut peak_disk = 0;
    let mut peak_anon_kb = 0;
    let (status, rusage) = loop {
        peak_disk = peak_disk.max(folder_bytes(&out_dir));
        peak_anon_kb = peak_anon_kb.max(anonymous_rss_kb(pid));
        let mut status = 0;
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: wait4 on our own child, with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, usage.as_mut_ptr()) };
        if r == pid {
            // SAFETY: filled by wait4 when it returned the pid.
            break (status, unsafe { usage.assume_init() });
        }
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall = started.elapsed();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("the conversion failed (status {status})");
    }
    let mp4_bytes = file_len(&out);
    check_mp4(&out, segments.len() as u64 * SEGMENT_S)?;
    Ok(Converted {
        wall,
        rss_kb: rusage.ru_maxrss,
        anon_kb: peak_anon_kb,
        extra_disk: peak_disk,
        mp4_bytes,
    })
}

/// What one conversion cost.
struct Converted {
    wall: Duration,
    /// Peak resident set (`wait4`), the shared libraries' pages included.
    rss_kb: i64,
    /// Peak of the process's own memory (`RssAnon`, sampled every 50 ms): heap and stacks.
    anon_kb: i64,
    extra_disk: u64,
    mp4_bytes: u64,
}

/// `RssAnon` of process `pid` in kB (0 once it is gone).
fn anonymous_rss_kb(pid: libc::pid_t) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The child: converts the listed segments into the MP4.
fn convert_child(args: &[String]) -> anyhow::Result<()> {
    let [list, out] = args else {
        bail!("--convert-child LIST OUT");
    };
    let segments: Vec<PathBuf> = std::fs::read_to_string(list)?
        .lines()
        .map(PathBuf::from)
        .collect();
    roomrec::media::convert(&segments, Path::new(out), &CancellationToken::new())?;
    Ok(())
}

/// ffprobe (libavformat, not the GStreamer that wrote it) reads the MP4's duration, and
/// ffmpeg decodes its last second: the index reaches the end of a file over 4 GiB.
fn check_mp4(out: &Path, expected_s: u64) -> anyhow::Result<()> {
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(out)
        .output()?;
    let duration: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse()?;
    let tail = Command::new("ffmpeg")
        .args(["-v", "error", "-sseof", "-1", "-i"])
        .arg(out)
        .args(["-f", "null", "-"])
        .output()?;
    println!(
        "  ffprobe: {duration:.1} s for {expected_s} s of segments; ffmpeg decodes the last second: {}",
        if tail.status.success() && tail.stderr.is_empty() { "yes" } else { "NO" }
    );
    Ok(())
}

fn id(s: &str) -> anyhow::Result<Id> {
    Id::parse(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn meeting() -> anyhow::Result<Meeting> {
    Ok(Meeting {
        meeting_id: id("m-1")?,
        state: MeetingState::Active,
        creator: id("u-1")?,
        host: id("u-1")?,
        cohosts: vec![],
        participants: vec![id("u-1")?],
        sharing: false,
        account: Account {
            tier: Some("business".into()),
            licence_expires_at: None,
            cloud_quota_bytes: Some(None),
            cloud_used_bytes: 0,
        },
        settings: Default::default(),
    })
}

fn recording(rid: &str, kind: RecordingKind, segments: usize) -> anyhow::Result<RecordingInfo> {
    Ok(RecordingInfo {
        recording_id: id(rid)?,
        meeting_id: id("m-1")?,
        kind,
        owner: id("u-1")?,
        started_by: id("u-1")?,
        host: id("u-1")?,
        state: RecordingState::Recording,
        created_at: Timestamp(T0),
        recorded_ms: segments as u64 * SEGMENT_S * 1000,
        bytes: 0,
        shared: false,
        location: None,
        transcription: false,
    })
}

/// A fresh catalog beside the segments: meeting m-1, a local recording r-1 and a cloud r-2,
/// every segment sealed for both (with r-2's upload job), as a day of recording leaves it.
fn build_catalog(dir: &Path, segments: &[PathBuf]) -> anyhow::Result<PathBuf> {
    let path = dir.join("catalog.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut catalog = Catalog::open(&path)?;
    let started = Instant::now();
    catalog.apply(&[
        Op::SaveMeeting {
            version: Some(1),
            meeting: Some(meeting()?),
            at: Timestamp(T0),
        },
        Op::SaveRecording(recording("r-1", RecordingKind::Local, segments.len())?),
        Op::SaveRecording(recording("r-2", RecordingKind::Cloud, segments.len())?),
    ])?;
    let (local, cloud) = (id("r-1")?, id("r-2")?);
    for (i, p) in segments.iter().enumerate() {
        let seg = segment_record(i as u64 + 1, p, dir)?;
        catalog.seal_segment(&seg, &[local.clone(), cloud.clone()], Some(&cloud))?;
    }
    println!(
        "  catalog of {} segments built in {:.1} s (sealing one by one, as recording does)",
        segments.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(path)
}

fn segment_record(seq: u64, file: &Path, root: &Path) -> anyhow::Result<SegmentRecord> {
    let rel = file.strip_prefix(root)?.display().to_string();
    Ok(SegmentRecord {
        seq,
        path: rel,
        bytes: file_len(file),
        duration_ms: SEGMENT_S * 1000,
        sha256: "ab".repeat(32),
        sealed_at: Timestamp(T0 + seq as i64 * 2000),
        silent_ms: 0,
    })
}

/// Boot reconciliation, `list_recordings`, the playlist, the manifest and upload planning,
/// each on a catalog opened afresh as at boot.
fn catalog_figures(
    dir: &Path,
    path: &Path,
) -> anyhow::Result<(Duration, Duration, Duration, Duration, Duration)> {
    let timed = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        f()?;
        Ok(started.elapsed())
    };
    let mut catalog = Catalog::open(path)?;
    let reconcile = timed(&mut || {
        let report = catalog.reconcile(dir)?;
        if !report.segment_problems.is_empty() {
            bail!("{} segment problems", report.segment_problems.len());
        }
        Ok(())
    })?;
    let list = timed(&mut || {
        let all = catalog.recordings(None)?;
        if all.len() != 2 {
            bail!("{} recordings listed", all.len());
        }
        Ok(())
    })?;
    let cloud = id("r-2")?;
    let mut listed = Vec::new();
    let playlist = timed(&mut || {
        listed = manifest_segments(&catalog, &cloud)?;
        let text = hls_playlist(&listed);
        if text.matches("#EXTINF").count() != listed.len() {
            bail!("playlist incomplete");
        }
        Ok(())
    })?;
    let info = catalog.recording(&cloud)?.context("r-2")?;
    let manifest = timed(&mut || {
        let json = manifest_json(&info, &listed, false, false, None);
        if json.is_empty() {
            bail!("empty manifest");
        }
        Ok(())
    })?;
    let plan_upload = timed(&mut || {
        let jobs = catalog.upload_jobs_of(&cloud)?;
        let first = catalog.claim_upload(Timestamp(T0 + 1_000_000_000), 60_000)?;
        if jobs.len() != listed.len() || first.is_none() {
            bail!("{} jobs", jobs.len());
        }
        Ok(())
    })?;
    // Housekeeping's eviction query (a batch of 64, as it asks) over every segment: here none
    // may go (the recordings still need them all), the most the query has to look at.
    let mut evictable = 0;
    let evict_query = timed(&mut || {
        evictable = catalog
            .evictable_segments(Timestamp(T0 + 1_000_000_000), 64)?
            .len();
        Ok(())
    })?;
    println!(
        "  eviction query: {:.2} ms ({evictable} evictable)",
        evict_query.as_secs_f64() * 1000.0
    );
    Ok((reconcile, list, playlist, manifest, plan_upload))
}

fn manifest_segments(catalog: &Catalog, rid: &Id) -> anyhow::Result<Vec<ManifestSegment>> {
    Ok(catalog
        .segments_of(rid)?
        .into_iter()
        .map(|s| ManifestSegment {
            seq: s.seq,
            name: format!("{:08}.ts", s.seq),
            bytes: s.bytes,
            duration_ms: s.duration_ms,
            sha256: s.sha256,
            etag: None,
        })
        .collect())
}

/// Reconciliation of a catalog of 100 000 segments whose files all exist (hard links).
fn reconcile_100k(root: &Path) -> anyhow::Result<Duration> {
    const N: u64 = 100_000;
    let dir = root.join("100k");
    let seg_dir = dir.join("segments");
    // Links to the segments of a synthesised recording, in turn (ext4 allows 65 000 links to
    // one file).
    let source = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("synthesised").exists())
        .context("no synthesised recording to link to")?;
    let templates = segments_in(&source.join("segments"))?;
    if !dir.join("linked").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&seg_dir)?;
        for (seq, template) in (1..=N).zip(templates.iter().cycle()) {
            std::fs::hard_link(template, seg_dir.join(format!("{seq:08}.ts")))?;
        }
        std::fs::write(dir.join("linked"), b"")?;
    }
    let segments: Vec<PathBuf> = (1..=N)
        .map(|seq| seg_dir.join(format!("{seq:08}.ts")))
        .collect();
    let path = build_catalog(&dir, &segments)?;
    let (reconcile, ..) = catalog_figures(&dir, &path)?;
    Ok(reconcile)
}

fn print_table(rows: &[Row]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| figure | {} | 24 h / 1 h |", {
        let heads: Vec<String> = rows.iter().map(|r| format!("{} h", r.hours)).collect();
        heads.join(" | ")
    });
    println!("|---|{}---|", "---|".repeat(rows.len()));
    let line = |name: &str, f: &dyn Fn(&Row) -> f64, unit: &str| {
        let cells: Vec<String> = rows.iter().map(|r| format!("{:.2} {unit}", f(r))).collect();
        let first = rows.first().map(f).unwrap_or(0.0);
        let last = rows.last().map(f).unwrap_or(0.0);
        let ratio = if first > 0.0 { last / first } else { 0.0 };
        println!("| {name} | {} | {ratio:.1} |", cells.join(" | "));
    };
    line("segments", &|r| r.segments as f64, "");
    line("segment data", &|r| r.segment_bytes as f64 / 1e9, "GB");
    line("MP4", &|r| r.converted.mp4_bytes as f64 / 1e9, "GB");
    line(
        "conversion wall time",
        &|r| r.converted.wall.as_secs_f64(),
        "s",
    );
    line(
        "conversion speed",
        &|r| (r.hours * 3600) as f64 / r.converted.wall.as_secs_f64(),
        "x real time",
    );
    line(
        "conversion peak RSS",
        &|r| r.converted.rss_kb as f64 / 1024.0,
        "MB",
    );
    line(
        "conversion peak own memory (RssAnon)",
        &|r| r.converted.anon_kb as f64 / 1024.0,
        "MB",
    );
    line(
        "conversion peak extra disk",
        &|r| r.converted.extra_disk as f64 / 1e9,
        "GB",
    );
    line("boot reconciliation", &|r| ms(r.reconcile), "ms");
    line("list_recordings", &|r| ms(r.list), "ms");
    line("HLS playlist", &|r| ms(r.playlist), "ms");
    line("manifest", &|r| ms(r.manifest), "ms");
    line("upload planning", &|r| ms(r.plan_upload), "ms");
}
