# shellcheck shell=bash
# Host side of `upgrade`: a local recording with >= 5 segments sealed, then the guest upgrades
# the package; the new daemon comes online, the recording is needs_finalize, finalize -> ready.
. "$ROOMREC_IMAGE_TESTS/lib/host.sh"
wait_online 600
wait_for 60 "status: camera ok, microphone ok" health ok ok
ctl watch --for 800 >"$R/watch.log" 2>&1 &
join_demo_meeting
start_local_recording
wait_sealed 5
clear_status
touch "$R/upgrade.go"
ok "$(sealed_count) segments sealed; the guest upgrades the package now"
wait_for 600 "the upgrade" test -e "$R/upgraded"
wait_online 300
ok "roomrecd is online again after the upgrade"
expect_needs_finalize "$RID" upgrade
finalize_until_ready "$RID"
guest_done
