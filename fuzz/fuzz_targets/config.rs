//! TOML text -> the config loader's validation (`Config::from_toml_str`).
//! The checks live in `roomrec::fuzzing::config`, shared with `tests/library/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roomrec::fuzzing::config(data));
