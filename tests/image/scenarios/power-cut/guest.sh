# shellcheck shell=bash
# Guest side of the interruption scenarios (reboot, power-cut, stall): lib/interrupt-guest.sh.
. "$R/guest-lib.sh"
. "$R/interrupt-guest.sh"
