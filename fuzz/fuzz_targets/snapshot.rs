//! Bytes on `<p>/meeting` -> snapshot decoder -> applied to a device mid-meeting, saved to the catalog.
//! The checks live in `roomrec::fuzzing::snapshot`, shared with `tests/library/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| roomrec::fuzzing::snapshot(data));
