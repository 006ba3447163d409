# shellcheck shell=bash
# TODO stub: not run (scenario file says STATUS=todo); see the scenario file for what this
# scenario must assert once roomrecd's source = "v4l2" exists. Fails if run by hand.
echo "TODO: scenario no-camera-at-boot is not implemented yet" >&2
exit 1
