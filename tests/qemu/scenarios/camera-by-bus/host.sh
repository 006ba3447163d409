# shellcheck shell=bash
# Host side of `camera-by-bus`: status camera ok; a local recording; roomrecd opened
# /dev/video1 (the camera on the configured bus), never /dev/video0; 3 segments sealed that
# decode; meeting end.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ctl watch --for 200 >"$R/watch.log" 2>&1 &
wait_for 20 "status: camera and microphone ok" health ok ok
ok "status: camera ok (chosen by bus $(cat "$R/camera-bus")), microphone ok"
join_demo_meeting
reply=$(ctl --json send start --as alice kind=local) || fail "start was refused: $reply"
ok "local recording started"
sealed_count() { grep -c 'INFO segment sealed seq=' "$R/roomrecd-1.log" || true; }
three() { [ "$(sealed_count)" -ge 3 ]; }
wait_for 90 "3 segments sealed" three
chosen=$(grep -m1 'camera format chosen' "$R/roomrecd-1.log" | grep -o 'device="[^"]*"\|device=[^ ]*' | head -1)
[ -n "$chosen" ] || fail "roomrecd logged no camera choice"
grep 'camera format chosen' "$R/roomrecd-1.log" | grep -q 'device="\?/dev/video0[" ]' \
  && fail "roomrecd opened /dev/video0, not the camera on bus $(cat "$R/camera-bus")"
grep -Eq 'device="?/dev/video1"?' <<<"$chosen" || fail "roomrecd chose $chosen, not /dev/video1"
ok "roomrecd chose the camera by bus: $chosen"
ctl meeting set "$ROOMREC_REPO/demo/meeting-ended.json"
guest_done
