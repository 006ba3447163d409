# shellcheck shell=bash
# Host side of the interruption scenarios (reboot, power-cut, stall): lib/interrupt-host.sh.
. "$ROOMREC_IMAGE_TESTS/lib/interrupt-host.sh"
