//! Bytes on `<p>/cmd` (one payload a line) -> decode -> the rules engine of a device mid-meeting.
//! The checks live in `roomrec::fuzzing::command`, shared with `tests/library/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roomrec::fuzzing::command(data));
