# shellcheck shell=bash
# Checks of the interruption scenarios (reboot, power-cut, stall) on the host.
. "$ROOMREC_IMAGE_TESTS/lib/checks.sh"
check_recovered_recording "$(cat "$R/recording-id")" 1
check_cloud_segments 4
