#!/usr/bin/env bash
# A/V sync over a long recording (issue 10): the sync signal (a white frame and a click once a
# second) recorded for SECONDS (default an hour) into segments, converted to an MP4 and listed
# in an HLS playlist, each measured with ffmpeg. Prints, per file, the offset of every
# flash/click pair and a summary: mean, min, max and drift (last minus first). The same
# bounds as the short test apply (±1 frame at 30 fps, no drift beyond it).
#
#   benches/sync.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-3600}"
# Debug build: the work is in GStreamer and ffmpeg, and the release profile (fat LTO) takes
# long to build on a small machine.
ROOMREC_SYNC_SECONDS="$seconds" nice -n 10 cargo test --test library media_sync:: -- \
  --test-threads=1 --nocapture 2>&1 | grep -E -A2 "pairs;|test result|panicked"
