#!/usr/bin/env bash
# Audio watermark bench (issue 11, docs/watermark.md): robustness, inaudibility and cost of the
# mark, printed by examples/audiomark.rs. The programmes: about a minute of speech synthesised
# by espeak-ng from a fixed text, and the test source's 440 Hz sine. Each goes through the
# device's audio branch (voaacenc at its default 128 kbit/s into MPEG-TS), then through each
# condition (the segment itself, the MP4 remux, an HLS playlist of the same bits, 16 kHz mono,
# AAC re-encoded at 64 kbit/s by ffmpeg, white noise 20 dB below the programme), and is read
# back from EXCERPTS (default 5) random 15 s excerpts. Prints figures; asserts nothing.
#
#   benches/audiomark.sh [EXCERPTS]
set -euo pipefail
cd "$(dirname "$0")/.."
excerpts="${1:-5}"
command -v espeak-ng >/dev/null || { echo "espeak-ng is missing: run scripts/install-deps" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg is missing: run scripts/install-deps" >&2; exit 1; }
work="$(mktemp -d /tmp/roomrec-audiomark-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# A meeting's kind of talk, long enough for several disjoint 15 s excerpts.
cat > "$work/text.txt" <<'TEXT'
Good morning everyone, and thank you for joining this meeting on such short notice.
Before we start, let me check that the people in the room can hear the remote participants.
The first item on the agenda is the budget for the next quarter. We spent less than planned
on travel, but the new recording appliances for the meeting rooms cost more than expected.
Maria, could you walk us through the numbers for the second floor?
Thank you. So the summary is that we are about four percent over, mostly because of the
cameras. The second item is the release schedule. The team would like to move the date by two
weeks, to finish the tests on the older hardware. Does anyone object to that?
Good. Then the last point is the training for the new staff, which starts on Monday at nine.
Please send me your questions before Friday, and I will collect them into one document.
If there is nothing else, we can finish early today. Thank you all, and have a good week.
TEXT
espeak-ng -s 150 -w "$work/speech.wav" -f "$work/text.txt"

# Debug build with the FFT crate optimised (Cargo.toml): the release profile's fat LTO takes
# long on a small machine, and the work is in GStreamer, ffmpeg and rustfft.
nice -n 10 cargo run --quiet --example audiomark -- "$work/speech.wav" "$work" "$excerpts"
