//! Media timelines read by an independent reader: `ffprobe` (libavformat), not GStreamer,
//! which wrote the files. `scripts/install-deps` installs ffmpeg.

use std::path::Path;
use std::process::Command;

/// One packet as ffprobe lists it.
#[derive(Clone, Copy, Debug)]
struct Packet {
    stream: usize,
    pts: f64,
    duration: Option<f64>,
}

/// How one stream of a file runs, in seconds.
#[derive(Clone, Debug)]
pub struct StreamRun {
    pub index: usize,
    pub kind: String,
    pub packets: usize,
    /// The median packet duration (a frame, an audio packet).
    pub usual: f64,
    /// The longest step between consecutive packets (by PTS), and the PTS it starts at.
    pub largest_step: f64,
    pub largest_at: f64,
    /// The shortest step: 0 would be two packets at one time.
    pub smallest_step: f64,
}

fn ffprobe(args: &[&str], path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/install-deps installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("ffprobe prints UTF-8")
}

/// The codec type of each stream (`video`, `audio`), by index. (ffprobe lists a stream again
/// under each program of a TS: the first mention counts.)
fn stream_kinds(path: &Path) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    let text = ffprobe(
        &["-show_entries", "stream=index,codec_type", "-of", "csv=p=0"],
        path,
    );
    for line in text.lines() {
        let mut f = line.split(',');
        let (Some(Ok(index)), Some(kind)) = (f.next().map(|i| i.trim().parse::<usize>()), f.next())
        else {
            continue;
        };
        if index == kinds.len() {
            kinds.push(kind.trim().to_string());
        }
    }
    kinds
}

fn packets(path: &Path) -> Vec<Packet> {
    let text = ffprobe(
        &[
            "-show_packets",
            "-show_entries",
            "packet=stream_index,pts_time,duration_time",
            "-of",
            "csv=p=0",
        ],
        path,
    );
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(',');
            let stream = f.next()?.trim().parse().ok()?;
            let pts = f.next()?.trim().parse().ok()?;
            let duration = f.next().and_then(|d| d.trim().parse().ok());
            Some(Packet {
                stream,
                pts,
                duration,
            })
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no values");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Every stream of `path`, with its steps.
pub fn stream_runs(path: &Path) -> Vec<StreamRun> {
    let kinds = stream_kinds(path);
    let all = packets(path);
    kinds
        .iter()
        .enumerate()
        .map(|(index, kind)| {
            let mut pts: Vec<f64> = all
                .iter()
                .filter(|p| p.stream == index)
                .map(|p| p.pts)
                .collect();
            pts.sort_by(f64::total_cmp);
            assert!(
                pts.len() >= 2,
                "{}: stream {index} has no packets",
                path.display()
            );
            let steps: Vec<(f64, f64)> = pts.windows(2).map(|w| (w[1] - w[0], w[0])).collect();
            let durations: Vec<f64> = all
                .iter()
                .filter(|p| p.stream == index)
                .filter_map(|p| p.duration)
                .filter(|d| *d > 0.0)
                .collect();
            // A stream whose packets carry no duration (video in TS): the median step.
            let usual = if durations.is_empty() {
                median(steps.iter().map(|s| s.0).collect())
            } else {
                median(durations)
            };
            let (largest_step, largest_at) = steps
                .iter()
                .copied()
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or_default();
            let smallest_step = steps.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
            StreamRun {
                index,
                kind: kind.clone(),
                packets: pts.len(),
                usual,
                largest_step,
                largest_at,
                smallest_step,
            }
        })
        .collect()
}

/// The container's duration (s).
pub fn duration(path: &Path) -> f64 {
    ffprobe(
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
        path,
    )
    .trim()
    .parse()
    .expect("ffprobe prints a duration")
}

/// What a segment holds of the recording's time: its first video stream from the first frame
/// to the end of the last one (s).
pub fn video_span(segment: &Path) -> f64 {
    let video = stream_runs(segment)
        .into_iter()
        .find(|s| s.kind == "video")
        .expect("the segment has video");
    let pts: Vec<f64> = packets(segment)
        .iter()
        .filter(|p| p.stream == video.index)
        .map(|p| p.pts)
        .collect();
    let first = pts.iter().copied().fold(f64::INFINITY, f64::min);
    let last = pts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    last - first + video.usual
}

/// The recorded time of `segments`: the sum of their video spans (s).
pub fn recorded(segments: &[impl AsRef<Path>]) -> f64 {
    segments.iter().map(|s| video_span(s.as_ref())).sum()
}

/// Gapless: in every stream no step between consecutive packets above 1.5 packet durations
/// (nor two packets at one time), and the file lasts `recorded` within one video frame.
pub fn assert_gapless(path: &Path, recorded: f64) {
    let runs = stream_runs(path);
    let total = duration(path);
    let frame = runs
        .iter()
        .find(|r| r.kind == "video")
        .map(|r| r.usual)
        .expect("the file has video");
    for r in &runs {
        eprintln!(
            "{} stream {} ({}): {} packets of {:.1} ms, largest step {:.1} ms at {:.3} s, \
             smallest {:.1} ms",
            path.display(),
            r.index,
            r.kind,
            r.packets,
            r.usual * 1e3,
            r.largest_step * 1e3,
            r.largest_at,
            r.smallest_step * 1e3
        );
    }
    eprintln!(
        "{}: lasts {total:.3} s for {recorded:.3} s recorded (one frame {:.1} ms)",
        path.display(),
        frame * 1e3
    );
    for r in &runs {
        assert!(
            r.largest_step <= 1.5 * r.usual + 1e-6,
            "{} stream {} ({}): a step of {:.1} ms at {:.3} s, its packets last {:.1} ms",
            path.display(),
            r.index,
            r.kind,
            r.largest_step * 1e3,
            r.largest_at,
            r.usual * 1e3
        );
        assert!(
            r.smallest_step > 0.0,
            "{} stream {}: two packets at one time",
            path.display(),
            r.index
        );
    }
    assert!(
        (total - recorded).abs() <= frame + 1e-6,
        "{} lasts {total:.3} s but {recorded:.3} s were recorded (one frame is {:.1} ms)",
        path.display(),
        frame * 1e3
    );
}

/// One step between consecutive packets of a stream above `factor` packet durations.
#[derive(Clone, Debug)]
pub struct Step {
    pub kind: String,
    /// The PTS of the packet before the step (s).
    pub at: f64,
    pub step: f64,
    /// The stream's usual packet duration (s).
    pub usual: f64,
}

/// Every step above `factor` packet durations in every stream of `path`, in order.
pub fn steps_over(path: &Path, factor: f64) -> Vec<Step> {
    let all = packets(path);
    stream_runs(path)
        .into_iter()
        .flat_map(|run| {
            let mut pts: Vec<f64> = all
                .iter()
                .filter(|p| p.stream == run.index)
                .map(|p| p.pts)
                .collect();
            pts.sort_by(f64::total_cmp);
            pts.windows(2)
                .filter(|w| w[1] - w[0] > factor * run.usual + 1e-6)
                .map(|w| Step {
                    kind: run.kind.clone(),
                    at: w[0],
                    step: w[1] - w[0],
                    usual: run.usual,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
