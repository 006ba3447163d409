//! Cameras and microphones: enumeration, choice, format negotiation, health, capture switch.
//!
//! Owns: asking the kernel what V4L2 capture devices exist and what they can do (`v4l`), what
//! ALSA capture devices exist and whether one opens (`alsa`), choosing the camera and its
//! format within the configured limits, and the ALSA mixer's capture switch (M1). Must not
//! touch: GStreamer pipelines (they get a [`CameraChoice`]), SQLite, MQTT, the rules.
//!
//! Every call here is a few ioctls and may run on the media thread; none of them panics on
//! what a device reports (the `v4l` crate unwraps non-UTF-8 names, so its calls are guarded).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use v4l::capability::Flags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;

use crate::protocol::DeviceHealth;

/// Pixel formats the pipeline takes, best first: raw (no decode), then MJPEG (`jpegdec`).
/// V4L2 fourcc → GStreamer caps (`format` for raw, `None` for MJPEG).
const FORMATS: &[(&str, Option<&str>)] = &[
    ("YUYV", Some("YUY2")),
    ("NV12", Some("NV12")),
    ("YU12", Some("I420")),
    ("UYVY", Some("UYVY")),
    ("MJPG", None),
];
/// Smaller pictures are not worth recording (the configuration's own lower bound).
const MIN_WIDTH: u32 = 160;
const MIN_HEIGHT: u32 = 120;

/// Every capture device found, for `status` and for logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceReport {
    pub cameras: Vec<Camera>,
    pub microphones: Vec<Microphone>,
}

/// A V4L2 video capture node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Camera {
    pub path: PathBuf,
    pub card: String,
    pub driver: String,
    pub bus: String,
    /// The sizes and rates of the formats roomrec can use (see [`FORMATS`]).
    pub formats: Vec<CameraFormat>,
    /// It captures only through the multi-planar API, whose formats roomrec does not list
    /// (the `v4l` crate enumerates single-planar capture formats), so `formats` is empty.
    pub multi_planar_only: bool,
}

/// One size of one pixel format, with the frame rates offered at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraFormat {
    /// The V4L2 fourcc, e.g. `YUYV` or `MJPG`.
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second as `(numerator, denominator)`; empty when the driver does not say.
    pub rates: Vec<(u32, u32)>,
}

/// An ALSA PCM that can capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Microphone {
    /// The name to configure, e.g. `hw:CARD=Loopback,DEV=1`.
    pub name: String,
    pub description: String,
}

/// The configured size and rate: the camera format is chosen within them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
}

/// The format a camera will be opened with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraChoice {
    pub path: PathBuf,
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    /// `None`: the driver gave no rates; v4l2src takes what the device runs at.
    pub rate: Option<(u32, u32)>,
}

impl CameraChoice {
    /// The caps to put right after `v4l2src`.
    pub fn caps(&self) -> gstreamer::Caps {
        let raw = FORMATS
            .iter()
            .find(|(f, _)| *f == self.fourcc)
            .and_then(|(_, g)| *g);
        let mut b = match raw {
            Some(format) => gstreamer::Caps::builder("video/x-raw").field("format", format),
            None => gstreamer::Caps::builder("image/jpeg"),
        };
        b = b
            .field("width", self.width as i32)
            .field("height", self.height as i32);
        if let Some((n, d)) = self.rate {
            b = b.field("framerate", gstreamer::Fraction::new(n as i32, d as i32));
        }
        b.build()
    }

    pub fn is_mjpeg(&self) -> bool {
        self.fourcc == "MJPG"
    }
}

/// Why a camera cannot be used, each saying what to check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "camera {}: not found; check that it is plugged in and that media.camera names it",
        path.display()
    )]
    CameraMissing { path: PathBuf },
    #[error("no V4L2 camera found (/dev/video*); plug one in or set media.camera")]
    NoCamera,
    #[error("no camera with {wanted} found (cameras here: {found}); check that it is plugged in and media.camera_card / media.camera_bus against `v4l2-ctl --info`")]
    NoMatch { wanted: String, found: String },
    #[error("camera {}: cannot be opened ({message}); check permissions (group video) and that no other program holds it", path.display())]
    CameraOpen { path: PathBuf, message: String },
    #[error("camera {}: offers no usable format (wants YUYV, NV12, I420, UYVY or MJPEG of at least {MIN_WIDTH}x{MIN_HEIGHT}); it offers: {offered}", path.display())]
    NoFormat { path: PathBuf, offered: String },
    #[error("microphone {name}: {message}; check that it is plugged in and that media.microphone names it (`arecord -L` lists them)")]
    Microphone { name: String, message: String },
}

impl DeviceError {
    /// How `status` shows it.
    pub fn health(&self) -> DeviceHealth {
        match self {
            DeviceError::CameraMissing { .. }
            | DeviceError::NoCamera
            | DeviceError::NoMatch { .. } => DeviceHealth::Missing,
            DeviceError::Microphone { message, .. } if message.contains("No such") => {
                DeviceHealth::Missing
            }
            _ => DeviceHealth::Error,
        }
    }
}

/// Enumerate every V4L2 capture device and ALSA capture PCM.
pub fn devices() -> DeviceReport {
    let cameras = v4l::context::enum_devices()
        .into_iter()
        .filter_map(|node| camera(node.path()).ok())
        .collect();
    DeviceReport {
        cameras,
        microphones: microphones(),
    }
}

/// One V4L2 node, if it is a video capture device.
fn camera(path: &Path) -> Result<Camera, DeviceError> {
    let open_err = |message: String| DeviceError::CameraOpen {
        path: path.to_path_buf(),
        message,
    };
    if !path.exists() {
        return Err(DeviceError::CameraMissing {
            path: path.to_path_buf(),
        });
    }
    let path_owned = path.to_path_buf();
    // Guarded: v4l unwraps the UTF-8 of names the driver reports.
    let result = std::panic::catch_unwind(move || -> Result<Camera, String> {
        let dev = v4l::Device::with_path(&path_owned).map_err(|e| e.to_string())?;
        let caps = dev.query_caps().map_err(|e| e.to_string())?;
        let capture = caps
            .capabilities
            .intersects(Flags::VIDEO_CAPTURE | Flags::VIDEO_CAPTURE_MPLANE);
        let m2m = caps
            .capabilities
            .intersects(Flags::VIDEO_M2M | Flags::VIDEO_M2M_MPLANE);
        if !capture || m2m {
            return Err("not a video capture device".into());
        }
        let multi_planar_only = !caps.capabilities.contains(Flags::VIDEO_CAPTURE);
        Ok(Camera {
            path: path_owned,
            card: caps.card,
            driver: caps.driver,
            bus: caps.bus,
            formats: formats(&dev),
            multi_planar_only,
        })
    });
    match result {
        Ok(r) => r.map_err(open_err),
        Err(_) => Err(open_err(
            "the driver reported names that are not UTF-8".into(),
        )),
    }
}

/// The usable formats, sizes and rates of an open device.
fn formats(dev: &v4l::Device) -> Vec<CameraFormat> {
    let mut out = Vec::new();
    let Ok(descs) = dev.enum_formats() else {
        return out;
    };
    for desc in descs {
        let Ok(fourcc) = desc.fourcc.str().map(str::to_owned) else {
            continue;
        };
        if !FORMATS.iter().any(|(f, _)| *f == fourcc) {
            continue;
        }
        for (width, height) in sizes(dev, desc.fourcc) {
            let rates = rates(dev, desc.fourcc, width, height);
            out.push(CameraFormat {
                fourcc: fourcc.clone(),
                width,
                height,
                rates,
            });
        }
    }
    out
}

fn sizes(dev: &v4l::Device, fourcc: v4l::FourCC) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for fs in dev.enum_framesizes(fourcc).unwrap_or_default() {
        match fs.size {
            FrameSizeEnum::Discrete(d) => out.push((d.width, d.height)),
            // Not expanded (a step of 1 would give millions): the extremes and common sizes.
            FrameSizeEnum::Stepwise(s) => {
                for (w, h) in [(640, 480), (1280, 720), (1920, 1080)] {
                    if (s.min_width..=s.max_width).contains(&w)
                        && (s.min_height..=s.max_height).contains(&h)
                    {
                        out.push((w, h));
                    }
                }
                out.push((s.max_width, s.max_height));
                out.push((s.min_width, s.min_height));
            }
        }
    }
    if out.is_empty() {
        // HDMI inputs report no sizes: their size is the current format (the DV timings).
        if let Ok(f) = dev.format() {
            if f.fourcc == fourcc {
                out.push((f.width, f.height));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn rates(dev: &v4l::Device, fourcc: v4l::FourCC, width: u32, height: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for fi in dev
        .enum_frameintervals(fourcc, width, height)
        .unwrap_or_default()
    {
        // An interval n/d seconds is d/n frames per second.
        let mut push = |f: v4l::Fraction| {
            if f.numerator > 0 && f.denominator > 0 {
                out.push((f.denominator, f.numerator));
            }
        };
        match fi.interval {
            FrameIntervalEnum::Discrete(f) => push(f),
            FrameIntervalEnum::Stepwise(s) => {
                push(s.min);
                push(s.max);
            }
        }
    }
    out
}

/// Whether a V4L2 memory-to-memory device (a hardware codec) exists now.
pub fn m2m_encoder_present() -> bool {
    v4l::context::enum_devices().into_iter().any(|node| {
        let path = node.path().to_path_buf();
        std::panic::catch_unwind(move || {
            v4l::Device::with_path(&path)
                .and_then(|d| d.query_caps())
                .is_ok_and(|c| {
                    c.capabilities
                        .intersects(Flags::VIDEO_M2M | Flags::VIDEO_M2M_MPLANE)
                })
        })
        .unwrap_or(false)
    })
}

/// Which camera to take when no path is configured: by V4L2 card name and/or bus info (as
/// `v4l2-ctl --info` shows them), so that the choice survives renumbered nodes and the same
/// model on another port is told apart. Unset fields match any camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CameraMatch<'a> {
    pub card: Option<&'a str>,
    pub bus: Option<&'a str>,
}

impl CameraMatch<'_> {
    pub fn matches(&self, cam: &Camera) -> bool {
        self.card.is_none_or(|c| cam.card == c) && self.bus.is_none_or(|b| cam.bus == b)
    }

    fn is_set(&self) -> bool {
        self.card.is_some() || self.bus.is_some()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.card {
            parts.push(format!("card {c:?}"));
        }
        if let Some(b) = self.bus {
            parts.push(format!("bus {b:?}"));
        }
        parts.join(" and ")
    }
}

/// Choose a camera: `wanted` if configured, else the first capture device with a usable
/// format that `matching` accepts (skipping `exclude`, the content device). Then its best
/// format within `limits`.
pub fn choose_camera(
    wanted: Option<&Path>,
    matching: CameraMatch<'_>,
    exclude: Option<&Path>,
    limits: Limits,
) -> Result<CameraChoice, DeviceError> {
    if let Some(path) = wanted {
        let cam = camera(path)?;
        return choose_format(&cam.formats, limits)
            .map(|f| choice(path, f))
            .ok_or_else(|| no_format(&cam));
    }
    let found: Vec<Result<Camera, DeviceError>> = v4l::context::enum_devices()
        .into_iter()
        .filter(|node| Some(node.path()) != exclude)
        .map(|node| camera(node.path()))
        .collect();
    pick(found, matching, limits)
}

/// The first camera of `found` (in order) that `matching` accepts and that has a usable
/// format. Pure, so it is unit-tested.
fn pick(
    found: Vec<Result<Camera, DeviceError>>,
    matching: CameraMatch<'_>,
    limits: Limits,
) -> Result<CameraChoice, DeviceError> {
    let mut first_error = None;
    let mut others = Vec::new();
    for cam in found {
        match cam {
            Ok(cam) if !matching.matches(&cam) => {
                others.push(format!(
                    "{} card {:?} bus {:?}",
                    cam.path.display(),
                    cam.card,
                    cam.bus
                ));
            }
            Ok(cam) => match choose_format(&cam.formats, limits) {
                Some(f) => return Ok(choice(&cam.path, f)),
                None => {
                    first_error.get_or_insert_with(|| no_format(&cam));
                }
            },
            Err(e @ DeviceError::CameraOpen { .. }) if !e.to_string().contains("not a video") => {
                first_error.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if matching.is_set() {
        let found = if others.is_empty() {
            "none".to_owned()
        } else {
            others.join("; ")
        };
        return Err(DeviceError::NoMatch {
            wanted: matching.describe(),
            found,
        });
    }
    Err(DeviceError::NoCamera)
}

fn choice(path: &Path, f: (CameraFormat, Option<(u32, u32)>)) -> CameraChoice {
    CameraChoice {
        path: path.to_path_buf(),
        fourcc: f.0.fourcc,
        width: f.0.width,
        height: f.0.height,
        rate: f.1,
    }
}

fn no_format(cam: &Camera) -> DeviceError {
    let offered = if cam.formats.is_empty() && cam.multi_planar_only {
        "only the multi-planar V4L2 API, which roomrec does not read; use a camera (or a driver \
         setting) with the single-planar capture API"
            .to_owned()
    } else if cam.formats.is_empty() {
        "nothing roomrec can use".to_owned()
    } else {
        let all: Vec<String> = cam
            .formats
            .iter()
            .map(|f| format!("{} {}x{}", f.fourcc, f.width, f.height))
            .collect();
        all.join(", ")
    };
    DeviceError::NoFormat {
        path: cam.path.clone(),
        offered,
    }
}

/// The best `(format, rate)`: the largest picture within the configured size (else the
/// smallest above it, scaled down), then the highest rate up to the configured one (else the
/// lowest above it), then raw before MJPEG (no decode). Pure, so it is unit-tested.
pub fn choose_format(
    formats: &[CameraFormat],
    limits: Limits,
) -> Option<(CameraFormat, Option<(u32, u32)>)> {
    formats
        .iter()
        .filter(|f| f.width >= MIN_WIDTH && f.height >= MIN_HEIGHT)
        .map(|f| (f, best_rate(&f.rates, limits.framerate)))
        .max_by_key(|(f, rate)| {
            let within = f.width <= limits.width && f.height <= limits.height;
            let area = i64::from(f.width) * i64::from(f.height);
            let size_key = if within { area } else { -area };
            let fps_key = rate.map_or((false, 0), |(n, d)| {
                let milli = i64::from(n) * 1000 / i64::from(d.max(1));
                let cap = i64::from(limits.framerate) * 1000;
                if milli <= cap {
                    (true, milli)
                } else {
                    (false, -milli)
                }
            });
            let rank = FORMATS
                .iter()
                .position(|(c, _)| *c == f.fourcc)
                .unwrap_or(FORMATS.len());
            (within, size_key, fps_key, -(rank as i64))
        })
        .map(|(f, rate)| (f.clone(), rate))
}

fn best_rate(rates: &[(u32, u32)], framerate: u32) -> Option<(u32, u32)> {
    let fps = |r: &(u32, u32)| f64::from(r.0) / f64::from(r.1.max(1));
    let limit = f64::from(framerate);
    let within = rates
        .iter()
        .filter(|r| fps(r) <= limit + 1e-6)
        .max_by(|a, b| fps(a).total_cmp(&fps(b)));
    within
        .or_else(|| rates.iter().min_by(|a, b| fps(a).total_cmp(&fps(b))))
        .copied()
}

/// Why the camera and the microphone were last unusable, so that the reason is logged once
/// each time it changes rather than on every health check (each tick).
static CAMERA_REASON: Mutex<Option<String>> = Mutex::new(None);
static MICROPHONE_REASON: Mutex<Option<String>> = Mutex::new(None);

/// Logs `reason` (what to check) as a warning when it differs from the last one; `None` when
/// the device is usable again.
fn note_reason(slot: &Mutex<Option<String>>, reason: Option<String>) {
    let mut last = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *last != reason {
        if let Some(r) = &reason {
            tracing::warn!(reason = %r, "capture device unusable");
        }
        *last = reason;
    }
}

/// How a configured camera path is doing now (not while we stream from it). Why it is not
/// usable is logged once per change of reason.
pub fn camera_health(
    path: Option<&Path>,
    matching: CameraMatch<'_>,
    exclude: Option<&Path>,
    limits: Limits,
) -> DeviceHealth {
    match choose_camera(path, matching, exclude, limits) {
        Ok(_) => {
            note_reason(&CAMERA_REASON, None);
            DeviceHealth::Ok
        }
        Err(e) => {
            note_reason(&CAMERA_REASON, Some(e.to_string()));
            e.health()
        }
    }
}

/// ALSA PCMs that capture (`arecord -L`).
fn microphones() -> Vec<Microphone> {
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else {
        return Vec::new();
    };
    hints
        .filter(|h| h.direction != Some(alsa::Direction::Playback))
        .filter_map(|h| {
            Some(Microphone {
                name: h.name?,
                description: h.desc.unwrap_or_default().replace('\n', " "),
            })
        })
        .collect()
}

/// Open the microphone for capture and close it again: `Ok` when it would record.
/// Why it does not is logged once per change of reason.
pub fn check_microphone(name: &str) -> Result<(), DeviceError> {
    let result = alsa::PCM::new(name, alsa::Direction::Capture, true)
        .map(drop)
        .map_err(|e| DeviceError::Microphone {
            name: name.to_owned(),
            message: e.to_string(),
        });
    note_reason(
        &MICROPHONE_REASON,
        result.as_ref().err().map(ToString::to_string),
    );
    result
}

/// The mixer (control device) of a PCM name: `hw:1,0` → `hw:1`, `plughw:CARD=X,DEV=1` →
/// `hw:CARD=X`; names without a card (`default`) are their own mixer.
pub fn mixer_of(pcm: &str) -> String {
    let Some((_, args)) = pcm.split_once(':') else {
        return pcm.to_owned();
    };
    let card = args
        .split(',')
        .find(|a| a.starts_with("CARD="))
        .or_else(|| args.split(',').next())
        .unwrap_or(args);
    format!("hw:{card}")
}

/// The first simple mixer element with a capture switch (preferring one named `Capture`).
fn with_switch<T>(
    pcm: &str,
    f: impl FnOnce(&alsa::mixer::Selem) -> alsa::Result<T>,
) -> Option<alsa::Result<T>> {
    let mixer = alsa::mixer::Mixer::new(&mixer_of(pcm), false).ok()?;
    let selems: Vec<alsa::mixer::Selem> = mixer
        .iter()
        .filter_map(alsa::mixer::Selem::new)
        .filter(|s| s.has_capture_switch())
        .collect();
    let named = |s: &alsa::mixer::Selem| s.get_id().get_name().is_ok_and(|n| n == "Capture");
    let selem = selems
        .iter()
        .find(|s| named(s))
        .or_else(|| selems.first())?;
    Some(f(selem))
}

/// The capture switch: `Some(true)` when capture is on, `None` when the device has none.
pub fn capture_switch(pcm: &str) -> Option<bool> {
    let on = with_switch(pcm, |s| {
        s.get_capture_switch(alsa::mixer::SelemChannelId::FrontLeft)
    })?;
    on.ok().map(|v| v != 0)
}

/// Set the capture switch; `Ok(false)` when the device has none (software mute then).
pub fn set_capture_switch(pcm: &str, on: bool) -> Result<bool, DeviceError> {
    match with_switch(pcm, |s| s.set_capture_switch_all(i32::from(on))) {
        None => Ok(false),
        Some(Ok(())) => Ok(true),
        Some(Err(e)) => Err(DeviceError::Microphone {
            name: pcm.to_owned(),
            message: format!("cannot set the capture switch: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fourcc: &str, width: u32, height: u32, rates: &[(u32, u32)]) -> CameraFormat {
        CameraFormat {
            fourcc: fourcc.into(),
            width,
            height,
            rates: rates.to_vec(),
        }
    }

    const HD30: Limits = Limits {
        width: 1280,
        height: 720,
        framerate: 30,
    };

    #[test]
    fn largest_within_limits_then_rate_then_raw() {
        // vivid's webcam: 1280x720 only at 12.5 fps, 640x360 at 40.
        let vivid = [
            f("YUYV", 640, 360, &[(40, 1), (25, 1)]),
            f("YUYV", 1280, 720, &[(25, 2)]),
            f("YUYV", 1920, 1080, &[(5, 1)]),
            f("MJPG", 1280, 720, &[(30, 1)]),
        ];
        let (best, rate) = choose_format(&vivid, HD30).unwrap();
        assert_eq!(
            (best.fourcc.as_str(), best.width, rate),
            ("MJPG", 1280, Some((30, 1)))
        );
        let raw_only = &vivid[..3];
        let (best, rate) = choose_format(raw_only, HD30).unwrap();
        assert_eq!((best.width, best.height, rate), (1280, 720, Some((25, 2))));
        // Same size and rate: raw wins.
        let tie = [
            f("MJPG", 640, 480, &[(30, 1)]),
            f("NV12", 640, 480, &[(30, 1)]),
        ];
        assert_eq!(choose_format(&tie, HD30).unwrap().0.fourcc, "NV12");
    }

    #[test]
    fn above_the_limits_only_when_nothing_fits_and_nothing_tiny() {
        let big = [
            f("YUYV", 3840, 2160, &[(30, 1)]),
            f("YUYV", 1920, 1080, &[(60, 1)]),
        ];
        let (best, rate) = choose_format(&big, HD30).unwrap();
        assert_eq!((best.width, rate), (1920, Some((60, 1))));
        assert_eq!(choose_format(&[f("YUYV", 80, 60, &[(30, 1)])], HD30), None);
        assert_eq!(choose_format(&[], HD30), None);
        // No rates reported: still usable, the device's own rate.
        assert_eq!(
            choose_format(&[f("YUYV", 640, 480, &[])], HD30).unwrap().1,
            None
        );
    }

    #[test]
    fn caps_and_mixer_names() {
        crate::media::init().unwrap();
        let c = CameraChoice {
            path: "/dev/video0".into(),
            fourcc: "YUYV".into(),
            width: 640,
            height: 360,
            rate: Some((25, 2)),
        };
        assert_eq!(
            c.caps().to_string(),
            "video/x-raw, format=(string)YUY2, width=(int)640, height=(int)360, framerate=(fraction)25/2"
        );
        assert_eq!(mixer_of("hw:1,0"), "hw:1");
        assert_eq!(mixer_of("hw:Loopback,1,0"), "hw:Loopback");
        assert_eq!(mixer_of("plughw:CARD=Loopback,DEV=1"), "hw:CARD=Loopback");
        assert_eq!(mixer_of("default"), "default");
    }

    fn cam(path: &str, card: &str, bus: &str) -> Camera {
        Camera {
            path: path.into(),
            card: card.into(),
            driver: "uvcvideo".into(),
            bus: bus.into(),
            formats: vec![f("YUYV", 640, 480, &[(30, 1)])],
            multi_planar_only: false,
        }
    }

    #[test]
    fn chooses_by_card_and_bus() {
        let found = || {
            vec![
                Ok(cam(
                    "/dev/video0",
                    "Integrated Camera",
                    "usb-0000:00:14.0-5",
                )),
                Err(DeviceError::CameraOpen {
                    path: "/dev/video1".into(),
                    message: "not a video capture device".into(),
                }),
                Ok(cam("/dev/video2", "Room Cam", "usb-0000:00:14.0-1")),
                Ok(cam("/dev/video4", "Room Cam", "usb-0000:00:14.0-2")),
            ]
        };
        let path = |m: CameraMatch<'_>| pick(found(), m, HD30).map(|c| c.path);
        assert_eq!(path(CameraMatch::default()), Ok("/dev/video0".into()));
        let card = CameraMatch {
            card: Some("Room Cam"),
            bus: None,
        };
        assert_eq!(path(card), Ok("/dev/video2".into()));
        let bus = CameraMatch {
            card: None,
            bus: Some("usb-0000:00:14.0-2"),
        };
        assert_eq!(path(bus), Ok("/dev/video4".into()));
        let both = CameraMatch {
            card: Some("Room Cam"),
            bus: Some("usb-0000:00:14.0-2"),
        };
        assert_eq!(path(both), Ok("/dev/video4".into()));
        // Exact names only; no match says what is there and is `missing`.
        let none = CameraMatch {
            card: Some("Room"),
            bus: None,
        };
        let e = pick(found(), none, HD30).unwrap_err();
        assert_eq!(e.health(), DeviceHealth::Missing);
        let text = e.to_string();
        assert!(text.contains("card \"Room\""), "{text}");
        assert!(
            text.contains("/dev/video4 card \"Room Cam\" bus \"usb-0000:00:14.0-2\""),
            "{text}"
        );
        assert!(text.contains("media.camera_card"), "{text}");
        // A matching camera without a usable format says so rather than "no match".
        let mut tiny = cam("/dev/video6", "Tiny", "usb-x");
        tiny.formats = vec![f("YUYV", 80, 60, &[(30, 1)])];
        let m = CameraMatch {
            card: Some("Tiny"),
            bus: None,
        };
        let e = pick(vec![Ok(tiny)], m, HD30).unwrap_err();
        assert!(matches!(e, DeviceError::NoFormat { .. }), "{e}");
    }

    #[test]
    fn no_format_says_why() {
        let mut cam = Camera {
            path: "/dev/video0".into(),
            card: "vivid".into(),
            driver: "vivid".into(),
            bus: "platform:vivid-000".into(),
            formats: vec![],
            multi_planar_only: true,
        };
        let e = no_format(&cam);
        assert_eq!(e.health(), DeviceHealth::Error);
        assert!(e.to_string().contains("/dev/video0"), "{e}");
        assert!(e.to_string().contains("multi-planar"), "{e}");
        cam.multi_planar_only = false;
        cam.formats = vec![f("YUYV", 80, 60, &[(30, 1)])];
        let e = no_format(&cam).to_string();
        assert!(
            e.contains("YUYV 80x60") && !e.contains("multi-planar"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_camera_names_its_path() {
        let e = choose_camera(
            Some(Path::new("/dev/video-nope")),
            CameraMatch::default(),
            None,
            HD30,
        )
        .unwrap_err();
        assert_eq!(e.health(), DeviceHealth::Missing);
        assert!(e.to_string().contains("/dev/video-nope"), "{e}");
        // Whatever this machine has, enumeration does not panic.
        let _ = devices();
    }
}
