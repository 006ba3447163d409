//! The audio watermark's robustness, inaudibility and cost bench (run by benches/audiomark.sh,
//! which makes the speech with espeak-ng). Prints figures; asserts nothing.
//!
//!   audiomark SPEECH.wav WORKDIR [EXCERPTS=5]
//!
//! For the speech and for the test tone (audiotestsrc's 440 Hz sine, the test source's sound):
//! the programme goes through the device's audio branch (audioconvert → audioresample → the
//! watermark probe → volume → queue → voaacenc at its default 128 kbit/s → aacparse →
//! mpegtsmux), then each condition is made from that segment and read back from random 15 s
//! excerpts: decode success and bit errors before correction (hard decisions against the
//! codeword). The same conditions on the unmarked programme give the null scores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use gst::prelude::*;
use gstreamer as gst;
use roomrec::audiomark::{self, Reading, DETECT_RATE, EXCERPT_SECONDS, SYNC_THRESHOLD};

const PAYLOAD: u64 = 0x5eed_cafe_f00d;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(speech), Some(work)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: audiomark SPEECH.wav WORKDIR [EXCERPTS]");
    };
    let excerpts: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let work = PathBuf::from(work);
    gst::init()?;
    let tone_src = "audiotestsrc wave=sine num-buffers=1400";
    let speech_src = format!("filesrc location={speech} ! decodebin");
    println!("payload {PAYLOAD:#014x}; sync threshold {SYNC_THRESHOLD} sd; {excerpts} random 15 s excerpts per condition");
    // Experiments: other levels than the shipped ones, and one programme only.
    let env = |k: &str, d: f32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let relative = env("AUDIOMARK_RELATIVE_DB", audiomark::MARK_RELATIVE_DB);
    let floor = env("AUDIOMARK_FLOOR_DBFS", audiomark::MARK_FLOOR_DBFS);
    let only = std::env::var("AUDIOMARK_PROGRAMME").unwrap_or_default();
    println!("mark {relative} dB under the programme, floor {floor} dBFS");
    for (name, src) in [("speech", speech_src.as_str()), ("tone", tone_src)] {
        if !only.is_empty() && only != name {
            continue;
        }
        println!("\n== {name}");
        let marked = work.join(format!("{name}-marked.ts"));
        let plain = work.join(format!("{name}-plain.ts"));
        let cpu_marked = encode(src, Some((PAYLOAD, relative, floor)), &marked)?;
        let cpu_plain = encode(src, None, &plain)?;
        let secs =
            audiomark::read_source(path(&plain), 3600)?.len() as f64 / f64::from(DETECT_RATE);
        println!(
            "device encode of {secs:.1} s: {:.3} CPU s marked, {:.3} unmarked: the mark costs {:.1} ms of CPU per second of audio ({:.2} % of one core), {:.2}x the unmarked branch",
            cpu_marked,
            cpu_plain,
            (cpu_marked - cpu_plain) * 1000.0 / secs,
            (cpu_marked - cpu_plain) * 100.0 / secs,
            cpu_marked / cpu_plain
        );
        println!(
            "{:<28} {:>8} {:>8} {:>10} {:>12} {:>14}",
            "condition", "read", "wrong", "sync z", "bit errors", "null sync z"
        );
        for condition in CONDITIONS {
            let m = condition.make(&marked, &work, &format!("{name}-m"))?;
            let p = condition.make(&plain, &work, &format!("{name}-p"))?;
            let row = measure(
                &m,
                &p,
                excerpts,
                name.len() as u64 + condition.name.len() as u64,
            )?;
            println!(
                "{:<28} {:>5}/{:<2} {:>8} {:>10} {:>12} {:>14}",
                condition.name, row.read, excerpts, row.wrong, row.sync, row.bit_errors, row.null
            );
        }
        levels(name, src, &work, relative, floor)?;
    }
    detector_cost()?;
    Ok(())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Encode `src` as the device does, marked with `payload` or not; returns the CPU seconds.
fn encode(src: &str, mark: Option<(u64, f32, f32)>, out: &Path) -> anyhow::Result<f64> {
    let desc = format!(
        "{src} ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! identity name=mark ! volume ! queue ! voaacenc ! aacparse ! mpegtsmux ! filesink location={}",
        path(out)
    );
    let pipeline = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    if let Some((payload, relative, floor)) = mark {
        let pad = pipeline
            .by_name("mark")
            .and_then(|e| e.static_pad("sink"))
            .ok_or_else(|| anyhow::anyhow!("no mark element"))?;
        audiomark::attach_with_levels(&pad, Some(payload), relative, floor);
    }
    let before = cpu_seconds();
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or_else(|| anyhow::anyhow!("no bus"))?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => anyhow::bail!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(cpu_seconds() - before)
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Condition {
    name: &'static str,
    kind: Kind,
}

enum Kind {
    Segment,
    Mp4,
    Hls,
    Mono16k,
    Aac64k,
    Noise20dB,
}

const CONDITIONS: [Condition; 6] = [
    Condition {
        name: "device AAC (the .ts segment)",
        kind: Kind::Segment,
    },
    Condition {
        name: "MP4 remux",
        kind: Kind::Mp4,
    },
    Condition {
        name: "HLS playlist + segments",
        kind: Kind::Hls,
    },
    Condition {
        name: "resampled to 16 kHz mono",
        kind: Kind::Mono16k,
    },
    Condition {
        name: "re-encoded AAC 64 kbit/s",
        kind: Kind::Aac64k,
    },
    Condition {
        name: "white noise at 20 dB SNR",
        kind: Kind::Noise20dB,
    },
];

fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .status()?;
    anyhow::ensure!(status.success(), "ffmpeg {args:?} failed");
    Ok(())
}

impl Condition {
    /// The condition's PCM (16 kHz mono, as the reader decodes it).
    fn make(&self, ts: &Path, work: &Path, tag: &str) -> anyhow::Result<Vec<f32>> {
        let out = |ext: &str| work.join(format!("{tag}.{ext}"));
        let read = |p: &Path| audiomark::read_source(path(p), 3600);
        Ok(match self.kind {
            Kind::Segment => read(ts)?,
            Kind::Mp4 => {
                ffmpeg(&["-i", path(ts), "-c", "copy", path(&out("mp4"))])?;
                read(&out("mp4"))?
            }
            Kind::Hls => {
                // The segment's bits cut into 4 s HLS segments and listed by a playlist.
                let dir = work.join(format!("{tag}-hls"));
                std::fs::create_dir_all(&dir)?;
                let list = dir.join("index.m3u8");
                ffmpeg(&[
                    "-i",
                    path(ts),
                    "-c",
                    "copy",
                    "-f",
                    "hls",
                    "-hls_time",
                    "4",
                    "-hls_playlist_type",
                    "vod",
                    path(&list),
                ])?;
                read(&list)?
            }
            Kind::Mono16k => {
                ffmpeg(&[
                    "-i",
                    path(ts),
                    "-ar",
                    "16000",
                    "-ac",
                    "1",
                    path(&out("wav")),
                ])?;
                read(&out("wav"))?
            }
            Kind::Aac64k => {
                ffmpeg(&[
                    "-i",
                    path(ts),
                    "-c:a",
                    "aac",
                    "-b:a",
                    "64k",
                    path(&out("m4a")),
                ])?;
                read(&out("m4a"))?
            }
            Kind::Noise20dB => {
                let mut x = read(ts)?;
                let power = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
                // Uniform white noise of variance power/100: 20 dB below the programme.
                let amplitude = (3.0 * power / 100.0).sqrt();
                let mut rng = fastrand::Rng::with_seed(20);
                for v in &mut x {
                    *v += amplitude * (2.0 * rng.f32() - 1.0);
                }
                x
            }
        })
    }
}

struct Row {
    read: usize,
    wrong: usize,
    sync: String,
    bit_errors: String,
    null: String,
}

fn measure(marked: &[f32], plain: &[f32], excerpts: usize, seed: u64) -> anyhow::Result<Row> {
    let len = EXCERPT_SECONDS * DETECT_RATE as usize;
    anyhow::ensure!(marked.len() > len, "shorter than an excerpt");
    let mut rng = fastrand::Rng::with_seed(seed);
    let word = audiomark::codeword(PAYLOAD);
    let (mut read, mut wrong, mut zs, mut errs, mut nulls) = (0, 0, vec![], vec![], vec![]);
    for _ in 0..excerpts {
        let start = rng.usize(0..marked.len() - len);
        let excerpt = &marked[start..start + len];
        if let Some(a) = audiomark::analyse(excerpt) {
            zs.push(a.sync_z);
            errs.push(
                a.hard_bits()
                    .iter()
                    .zip(word)
                    .filter(|(x, y)| **x != *y)
                    .count(),
            );
        }
        match audiomark::detect(excerpt) {
            Reading::Mark { payload, .. } if payload == PAYLOAD => read += 1,
            Reading::Mark { .. } => wrong += 1,
            Reading::NoMark { .. } => {}
        }
    }
    // The null: the same condition on the unmarked programme, two excerpts.
    for _ in 0..2 {
        let start = rng.usize(0..plain.len().saturating_sub(len).max(1));
        let excerpt = &plain[start..(start + len).min(plain.len())];
        let Some(a) = audiomark::analyse(excerpt) else {
            continue;
        };
        nulls.push(a.sync_z);
        if matches!(audiomark::decide(&a), Reading::Mark { .. }) {
            wrong += 1;
        }
    }
    let range = |v: &[f32]| {
        let lo = v.iter().copied().fold(f32::MAX, f32::min);
        let hi = v.iter().copied().fold(f32::MIN, f32::max);
        format!("{lo:.1}–{hi:.1}")
    };
    let max_err = errs.iter().max().copied().unwrap_or(0);
    let total: usize = errs.iter().sum();
    Ok(Row {
        read,
        wrong,
        sync: range(&zs),
        bit_errors: format!("{total} (max {max_err})"),
        null: range(&nulls),
    })
}

/// Mark and programme levels per third-octave band, from the programme's PCM at 48 kHz and
/// the same PCM marked by the embedder (the mark is their difference).
fn levels(name: &str, src: &str, work: &Path, relative: f32, floor: f32) -> anyhow::Result<()> {
    let wav = work.join(format!("{name}-48k.wav"));
    let desc = format!(
        "{src} ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink location={}",
        path(&wav)
    );
    let pipeline = gst::parse::launch(&desc)?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or_else(|| anyhow::anyhow!("no bus"))?;
    bus.timed_pop_filtered(
        gst::ClockTime::NONE,
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null)?;
    let programme = audiomark::read_pcm(path(&wav), 48_000, 3600)?;
    let mut marked = programme.clone();
    let mut e = audiomark::Embedder::with_levels(PAYLOAD, 48_000, relative, floor)?;
    let t = Instant::now();
    e.process_f32(&mut marked, 1);
    let cost = t.elapsed().as_secs_f64() / (programme.len() as f64 / 48_000.0);
    let mark: Vec<f32> = marked.iter().zip(&programme).map(|(m, p)| m - p).collect();
    let p = welch(&programme);
    let m = welch(&mark);
    println!("mark vs programme per third-octave band ({name}; embedder alone: {:.2} ms per second of mono 48 kHz):", cost * 1000.0);
    println!(
        "{:>8} {:>14} {:>11} {:>13}",
        "band Hz", "programme dBFS", "mark dBFS", "mark - prog dB"
    );
    let mut centre = 250.0f64;
    while centre <= 8000.0 {
        let (lo, hi) = (centre / 2f64.powf(1.0 / 6.0), centre * 2f64.powf(1.0 / 6.0));
        let sum = |s: &[f64]| {
            s.iter()
                .enumerate()
                .filter(|(k, _)| {
                    let f = *k as f64 * 48_000.0 / WELCH as f64;
                    f >= lo && f < hi
                })
                .map(|(_, v)| v)
                .sum::<f64>()
        };
        let (pp, mm) = (sum(&p), sum(&m));
        let db = |v: f64| 10.0 * (v.max(1e-20) / 0.5).log10();
        println!(
            "{centre:>8.0} {:>14.1} {:>11.1} {:>13.1}",
            db(pp),
            db(mm),
            db(mm) - db(pp)
        );
        centre *= 2f64.powf(1.0 / 3.0);
    }
    Ok(())
}

const WELCH: usize = 4096;

/// Mean power spectrum (one-sided, in units where a full-scale sine sums to ½) over Hann
/// windowed blocks with half overlap.
fn welch(x: &[f32]) -> Vec<f64> {
    use rustfft::num_complex::Complex64;
    let fft = rustfft::FftPlanner::<f64>::new().plan_fft_forward(WELCH);
    let win: Vec<f64> = (0..WELCH)
        .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / WELCH as f64).cos())
        .collect();
    let wsum: f64 = win.iter().map(|w| w * w).sum();
    let mut acc = vec![0f64; WELCH / 2];
    let mut blocks = 0;
    for start in (0..x.len().saturating_sub(WELCH)).step_by(WELCH / 2) {
        let mut buf: Vec<Complex64> = (0..WELCH)
            .map(|i| Complex64::new(f64::from(x[start + i]) * win[i], 0.0))
            .collect();
        fft.process(&mut buf);
        for (a, c) in acc.iter_mut().zip(&buf) {
            *a += 2.0 * c.norm_sqr() / (wsum * WELCH as f64);
        }
        blocks += 1;
    }
    acc.iter().map(|v| v / blocks.max(1) as f64).collect()
}

/// The detector's time for one 15 s excerpt.
fn detector_cost() -> anyhow::Result<()> {
    let mut rng = fastrand::Rng::with_seed(1);
    let x: Vec<f32> = (0..EXCERPT_SECONDS * DETECT_RATE as usize)
        .map(|_| rng.f32() - 0.5)
        .collect();
    let t = Instant::now();
    let _ = audiomark::analyse(&x);
    println!(
        "\ndetector: {:.2} s of CPU for one 15 s excerpt",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
