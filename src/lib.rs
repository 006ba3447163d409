//! roomrec: the recording service of a meeting-room appliance.
//!
//! A functional core (`rules`) wrapped by adapters that each own one resource:
//! `control` (MQTT), `media` (GStreamer), `catalog` (SQLite), `segments` (the segment files); `transcribe` (speech to WebVTT);
//! `daemon` wires them together.
//! `protocol` is the wire contract shared by all of them; `config` the validated settings;
//! `auth` the signature scheme of admin commands, checked by `daemon` at the edge.

pub mod audiomark;
pub mod auth;
pub mod catalog;
pub mod completeness;
pub mod config;
pub mod control;
pub mod crypt;
pub mod ctl;
pub mod daemon;
/// Entry points for the fuzz targets in `fuzz/` and the corpus tests; not an API, and not in
/// the shipped binaries (the `fuzzing` feature).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod journald;
pub mod media;
pub mod protocol;
pub mod retry;
pub mod rules;
pub mod segments;
pub mod transcribe;
pub mod upload;
