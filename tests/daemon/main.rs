//! The end-to-end tests: the built `roomrecd` and `roomrecctl` against a real mosquitto (and
//! s3s-fs, GStreamer), one module per concern. One test binary, so CI links the library once
//! for all of them; select a module with a filter: `cargo test --test daemon cloud::`.

#[path = "../common/mod.rs"]
mod common;

mod alarms;
mod audio_watermark;
mod bad_input;
mod broker_acl;
mod broker_fixture;
mod cloud;
mod completeness;
mod ctl;
mod encryption;
mod faults;
mod flood;
mod levels;
mod lifecycle;
mod powercut;
mod preview;
mod roomrecctl;
mod rules;
mod security;
mod segment_gaps;
mod tls;
mod transcription;
mod watchdog;
mod watermark;
