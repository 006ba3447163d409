# shellcheck shell=bash
# Host side of `camera-no-usable-format`: roomrecd online with a camera it cannot use: status
# camera error (or missing), microphone ok; roomrecd's log says why (no usable format: the
# multi-planar API) and what to do; `start` answered device_unavailable naming the camera; the
# guest replaces the camera with a single-planar one at the same path: status camera ok within
# 20 s without a restart; the same start succeeds and records >= 12.5 s, meeting end, ready.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ok "roomrecd in the guest is online with a multi-planar-only camera"
ctl watch --for 280 >"$R/watch.log" 2>&1 &
wait_for 20 "status: camera error (or missing), microphone ok" eval 'health error ok || health missing ok'
ok "status: $(grep -o '"camera":"[a-z]*"' "$R/status.json" | head -1), microphone ok"
# Why, for a person: status carries only the health, so the reason is in roomrecd's log.
reason() { grep 'capture device unusable' "$R/roomrecd-1.log" | grep '/dev/video0' \
  | grep 'offers no usable format' | grep -q 'multi-planar'; }
wait_for 10 "roomrecd to log why the camera is unusable" reason
ok "roomrecd logs: $(grep -m1 -o 'reason=.*offers no usable format.*' "$R/roomrecd-1.log" | cut -c1-260)"
join_demo_meeting

expect_start_refused camera

touch "$R/replace-camera"
wait_for 40 "the guest to replace the camera" test -e "$R/camera-replaced"
t=$SECONDS
wait_for 20 "status: camera ok (no restart)" health ok ok
ok "status: camera ok, microphone ok $((SECONDS - t)) s after the single-planar camera appeared"
record_local_until_ready
guest_done
