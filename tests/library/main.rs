//! The library's modules against real parts, without the daemon: the catalog on real SQLite
//! files, the configuration files, media on real GStreamer pipelines, the upload actor against
//! s3s-fs, the fuzz corpus, and the documents kept in step with the code (AsyncAPI, rule ids).
//! One test binary, so CI links the library once for all of them; select a module with a
//! filter: `cargo test --test library catalog::`.

#[path = "../common/mod.rs"]
mod common;

mod asyncapi;
mod audiomark;
mod catalog;
mod catalog_retention;
mod config;
mod docs;
mod fuzz_corpus;
mod media;
mod media_sources;
mod media_sync;
mod media_watermark;
mod transcribe;
mod upload;
