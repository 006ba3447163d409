//! The device pipelines of one capture: starting them, noticing a device lost, restarting it.
//!
//! Owns: one small pipeline per device (camera, content, microphone) feeding the encode
//! pipeline's inter channels, their generations, and which of them are lost. Must not touch:
//! the encode pipeline, segments, facts (the actor turns [`InputEvent`]s into facts).
//!
//! A lost device's pipeline is dropped at once (releasing the node, so a replug gets the same
//! path); the actor's tick calls [`DeviceInputs::retry`], and a device counts as back only when
//! a buffer has reached its inter sink, not when its pipeline merely starts.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use gst::prelude::*;
use gstreamer as gst;

use super::actor::Msg;
use super::devices::{self, CameraChoice, DeviceError, Limits};
use super::sources::{self, Channels};
use super::{MediaError, MediaSettings};
use crate::protocol::{DeviceHealth, DeviceRole};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Camera,
    Content,
    Microphone,
}

/// What happened to a device while capturing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InputEvent {
    Lost {
        device: String,
        role: DeviceRole,
        message: String,
    },
    Back {
        device: String,
        role: DeviceRole,
    },
}

impl Kind {
    /// What the input is for, as facts name it.
    fn role(self) -> DeviceRole {
        match self {
            Kind::Camera => DeviceRole::Camera,
            Kind::Content => DeviceRole::Content,
            Kind::Microphone => DeviceRole::Microphone,
        }
    }
}

struct Input {
    kind: Kind,
    /// Path or ALSA name, as reported in facts.
    device: String,
    /// The pipeline feeding the channel; `None` while the device is away.
    pipeline: Option<gst::Pipeline>,
    generation: u64,
    /// Reported lost and not yet back.
    lost: bool,
}

/// The device pipelines of the capture running now.
pub(crate) struct DeviceInputs {
    inputs: Vec<Input>,
    channels: Channels,
    settings: MediaSettings,
    tx: mpsc::Sender<Msg>,
    next_generation: u64,
}

/// The configured size and rate, within which a camera format is chosen.
pub(crate) fn limits(s: &MediaSettings) -> Limits {
    Limits {
        width: s.width,
        height: s.height,
        framerate: s.framerate,
    }
}

/// The ALSA device used: configured, else `default`.
/// The configured card name / bus info the camera must have (without a path).
pub(crate) fn camera_match(s: &MediaSettings) -> devices::CameraMatch<'_> {
    devices::CameraMatch {
        card: s.camera_card.as_deref(),
        bus: s.camera_bus.as_deref(),
    }
}

pub(crate) fn microphone_name(s: &MediaSettings) -> &str {
    s.microphone.as_deref().unwrap_or("default")
}

impl DeviceInputs {
    /// Check and start every device. A missing camera or microphone fails the start (the
    /// recording cannot begin without them); a missing content input starts as lost, since
    /// sharing is optional: it comes in once the device appears.
    pub fn start(
        settings: &MediaSettings,
        channels: &Channels,
        tx: &mpsc::Sender<Msg>,
    ) -> Result<(DeviceInputs, Vec<InputEvent>), DeviceError> {
        let limits = limits(settings);
        let camera = devices::choose_camera(
            settings.camera.as_deref(),
            camera_match(settings),
            settings.content.as_deref(),
            limits,
        )?;
        let mic = microphone_name(settings).to_owned();
        devices::check_microphone(&mic)?;
        let mut me = DeviceInputs {
            inputs: Vec::new(),
            channels: channels.clone(),
            settings: settings.clone(),
            tx: tx.clone(),
            next_generation: 0,
        };
        let mut events = Vec::new();
        me.add(Kind::Camera, path_str(&camera.path));
        me.add(Kind::Microphone, mic);
        if let Some(content) = &settings.content {
            me.add(Kind::Content, path_str(content));
        }
        for i in 0..me.inputs.len() {
            if let Err(message) = me.launch(i) {
                let input = &mut me.inputs[i];
                let error = match input.kind {
                    Kind::Content => None,
                    Kind::Camera => Some(DeviceError::CameraOpen {
                        path: PathBuf::from(&input.device),
                        message: message.clone(),
                    }),
                    Kind::Microphone => Some(DeviceError::Microphone {
                        name: input.device.clone(),
                        message: message.clone(),
                    }),
                };
                if let Some(e) = error {
                    me.stop();
                    return Err(e);
                }
                input.lost = true;
                events.push(InputEvent::Lost {
                    device: input.device.clone(),
                    role: input.kind.role(),
                    message,
                });
            }
        }
        Ok((me, events))
    }

    fn add(&mut self, kind: Kind, device: String) {
        self.inputs.push(Input {
            kind,
            device,
            pipeline: None,
            generation: 0,
            lost: false,
        });
    }

    /// Build and start the pipeline of input `i`; `Err` says why not.
    fn launch(&mut self, i: usize) -> Result<(), String> {
        self.next_generation += 1;
        let generation = self.next_generation;
        let (kind, device) = (self.inputs[i].kind, self.inputs[i].device.clone());
        let pipeline = self.build(kind, &device).map_err(|e| e.to_string())?;
        watch(&pipeline, generation, &self.tx).map_err(|e| e.to_string())?;
        if pipeline.set_state(gst::State::Playing).is_err() {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("{device} refused to start streaming"));
        }
        let input = &mut self.inputs[i];
        input.pipeline = Some(pipeline);
        input.generation = generation;
        tracing::info!(device = %device, ?kind, generation, "device input started");
        Ok(())
    }

    fn build(&self, kind: Kind, device: &str) -> Result<gst::Pipeline, MediaError> {
        let s = &self.settings;
        let ch = &self.channels;
        let camera = |path: &str, channel: &str, name: &str| {
            let choice: CameraChoice = devices::choose_camera(
                Some(Path::new(path)),
                devices::CameraMatch::default(),
                None,
                limits(s),
            )
            .map_err(|e| MediaError::Pipeline(e.to_string()))?;
            tracing::info!(device = path, format = %choice.caps(), "camera format chosen");
            sources::camera_pipeline(&choice, s, channel, name)
        };
        match kind {
            Kind::Camera => camera(device, &ch.camera, "camera"),
            Kind::Content => camera(device, &ch.content, "content"),
            Kind::Microphone => {
                devices::check_microphone(device)
                    .map_err(|e| MediaError::Pipeline(e.to_string()))?;
                sources::microphone_pipeline(device, &ch.microphone, "microphone")
            }
        }
    }

    /// A bus message of a device pipeline: an error or an end means the device is lost.
    pub fn on_message(&mut self, generation: u64, msg: &gst::Message) -> Option<InputEvent> {
        let message = match msg.view() {
            gst::MessageView::Error(e) => {
                format!("{} ({})", e.error(), e.debug().unwrap_or_default())
            }
            gst::MessageView::Eos(_) => "the device stopped sending".to_owned(),
            gst::MessageView::Warning(w) => {
                tracing::warn!(warning = %w.error(), "device input warning");
                return None;
            }
            _ => return None,
        };
        let input = self
            .inputs
            .iter_mut()
            .find(|i| i.generation == generation && i.pipeline.is_some())?;
        if let Some(p) = input.pipeline.take() {
            // Null releases the device node, so the same path can come back.
            release(&p, &input.device);
        }
        if input.lost {
            tracing::debug!(device = %input.device, %message, "device still not usable");
            return None;
        }
        input.lost = true;
        tracing::warn!(device = %input.device, %message, "device lost; capture goes on without it");
        Some(InputEvent::Lost {
            device: input.device.clone(),
            role: input.kind.role(),
            message,
        })
    }

    /// The first buffer of a (re)started device pipeline reached its channel.
    pub fn on_flowing(&mut self, generation: u64) -> Option<InputEvent> {
        let input = self
            .inputs
            .iter_mut()
            .find(|i| i.generation == generation && i.pipeline.is_some())?;
        if !input.lost {
            return None;
        }
        input.lost = false;
        tracing::info!(device = %input.device, "device back");
        Some(InputEvent::Back {
            device: input.device.clone(),
            role: input.kind.role(),
        })
    }

    /// Try again to start every lost device that has no pipeline.
    pub fn retry(&mut self) {
        for i in 0..self.inputs.len() {
            if self.inputs[i].pipeline.is_none() {
                if let Err(message) = self.launch(i) {
                    tracing::debug!(device = %self.inputs[i].device, %message, "device not back yet");
                }
            }
        }
    }

    /// Health of the camera or microphone of this capture (content has no status field).
    pub fn health(&self, kind: Kind) -> Option<DeviceHealth> {
        let input = self.inputs.iter().find(|i| i.kind == kind)?;
        if !input.lost {
            return Some(DeviceHealth::Ok);
        }
        let gone = match kind {
            Kind::Microphone => devices::check_microphone(&input.device)
                .err()
                .is_some_and(|e| e.health() == DeviceHealth::Missing),
            _ => !Path::new(&input.device).exists(),
        };
        Some(if gone {
            DeviceHealth::Missing
        } else {
            DeviceHealth::Error
        })
    }

    /// Stop every device pipeline (the capture is over).
    pub fn stop(&mut self) {
        for input in &mut self.inputs {
            if let Some(p) = input.pipeline.take() {
                release(&p, &input.device);
            }
        }
    }
}

impl Drop for DeviceInputs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stop a device pipeline and make sure the process let go of an unplugged device's node.
///
/// Why the second part: on an unplug every ioctl fails with ENODEV, and GStreamer 1.22's
/// v4l2 buffer pool then survives the pipeline's NULL state together with its own dup of the
/// device fd (seen in QEMU: after NULL, `/dev/video0 (deleted)` still open, no buffer mapped).
/// A node held open keeps the driver busy (`rmmod` refused) and makes the replugged camera
/// appear under another name, so it never comes back. The fd of a deleted node is useless;
/// it is pointed at /dev/null with `dup2`, which closes the device file while the number stays
/// valid for whoever still owns it (a later close or ioctl by GStreamer then hits /dev/null).
fn release(pipeline: &gst::Pipeline, device: &str) {
    if let Err(e) = pipeline.set_state(gst::State::Null) {
        tracing::warn!(device, error = %e, "device pipeline did not stop cleanly");
    }
    let deleted = fds_on(&format!("{device} (deleted)"));
    if deleted.is_empty() {
        tracing::debug!(device, "device node released");
        return;
    }
    let released = deleted.iter().filter(|fd| detach(**fd)).count();
    tracing::warn!(
        device,
        held = deleted.len(),
        released,
        "the unplugged device's node was still open after its pipeline stopped; detached"
    );
}

/// This process's file descriptors whose target reads exactly `target`.
pub(crate) fn fds_on(target: &str) -> Vec<i32> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == target))
        .filter_map(|fd| fd.file_name().to_str()?.parse().ok())
        .collect()
}

/// Point `fd` at /dev/null (closing what it referred to); `true` on success.
fn detach(fd: i32) -> bool {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return false;
    };
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 on two open descriptors; `fd` stays open (now /dev/null) for its owner.
    unsafe { libc::dup2(null.as_raw_fd(), fd) >= 0 }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Forward the pipeline's bus messages and its first buffer to the actor, tagged.
fn watch(
    pipeline: &gst::Pipeline,
    generation: u64,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), MediaError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Pipeline("device pipeline has no bus".into()))?;
    let bus_tx = tx.clone();
    bus.set_sync_handler(move |_, m| {
        let _ = bus_tx.send(Msg::Input(generation, m.clone()));
        gst::BusSyncReply::Drop
    });
    let pad = sources::sink_pad_of(pipeline)
        .ok_or_else(|| MediaError::Pipeline("device pipeline has no sink".into()))?;
    let flow_tx = tx.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let _ = flow_tx.send(Msg::Flowing(generation));
        gst::PadProbeReturn::Remove
    });
    Ok(())
}
