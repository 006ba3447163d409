#!/usr/bin/env bash
# Transcription (T1) bench: word error rate of roomrec's transcriber on known sentences spoken
# by espeak-ng, at three noise floors, and its CPU seconds per second of audio against a bare
# gst-launch-1.0 of the same pipeline. Prints figures; asserts nothing. See
# benches/transcribe.rs and docs/transcription.md.
#
#   benches/transcribe.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps >/dev/null
# The work is pocketsphinx's and GStreamer's C code: the dev profile measures the same thing
# without a release build (fat LTO) of the whole crate graph.
exec nice -n 10 cargo bench --profile dev --bench transcribe
