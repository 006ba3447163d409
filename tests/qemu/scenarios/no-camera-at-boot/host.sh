# shellcheck shell=bash
# Host side of `no-camera-at-boot`: roomrecd online without a camera: status camera missing (or
# error), microphone ok; `start` answered device_unavailable naming the camera; the guest
# loads vivid: status camera ok within 20 s, the same start succeeds and records >= 12.5 s.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ok "roomrecd in the guest is online without a camera"
ctl watch --for 280 >"$R/watch.log" 2>&1 &
wait_for 20 "status: camera missing (or error), microphone ok" eval 'health missing ok || health error ok'
ok "status: $(grep -o '"camera":"[a-z]*"' "$R/status.json" | head -1), microphone ok"
join_demo_meeting

expect_start_refused camera

touch "$R/load-camera"
wait_for 40 "the guest to load vivid" test -e "$R/camera-loaded"
t=$SECONDS
wait_for 20 "status: camera ok (no restart)" health ok ok
ok "status: camera ok, microphone ok $((SECONDS - t)) s after vivid was loaded"
record_local_until_ready
guest_done
