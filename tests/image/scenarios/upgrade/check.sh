# shellcheck shell=bash
# Checks of `upgrade` on the host: every segment the old daemon sealed is catalogued, intact
# and in the finalized MP4, which plays.
. "$ROOMREC_IMAGE_TESTS/lib/checks.sh"
check_recovered_recording "$(cat "$R/recording-id")" 1
