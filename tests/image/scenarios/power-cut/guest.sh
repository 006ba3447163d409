# shellcheck shell=bash
# Guest side of the interruption scenarios (reboot, power-cut): lib/interrupt-guest.sh.
. "$R/guest-lib.sh"
. "$R/interrupt-guest.sh"
