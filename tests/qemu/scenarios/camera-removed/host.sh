# shellcheck shell=bash
# Host side of `camera-removed`: a local recording with a video watermark; after >= 6 s the
# guest removes the camera:
# a device_lost event naming it, status camera not ok and microphone ok, the recording still
# `recording` and more segments sealed; then the camera comes back: a device_back event
# (bounded: 30 s), status camera ok; meeting end; the MP4.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ok "roomrecd in the guest is online through the guestfwd broker"
ctl watch --for 280 >"$R/watch.log" 2>&1 &
wait_for 30 "status: camera and microphone ok" health ok ok
join_demo_meeting "$(watermarked_demo_meeting)"
reply=$(ctl --json send start --as alice kind=local) || fail "start was refused: $reply"
rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
ok "local recording $rid started"

recorded_ms() { ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(max([l["recorded_ms"] for l in d["state"]["local"]] or [0]))'; }
rec_state() { ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); print([l["state"] for l in d["state"]["local"]])'; }
at_least() { [ "$(recorded_ms)" -ge "$1" ]; }
sealed_count() { grep -c 'INFO segment sealed seq=' "$R/roomrecd-1.log" || true; }
wait_for 60 "6 s of recording" at_least 6000

touch "$R/remove-camera"
wait_for 40 "the guest to remove the camera" test -e "$R/camera-removed"
ok "guest: $(cat "$R/camera-removed")"
n_removed=$(sealed_count)
lost() { grep -q 'device_lost' "$R/watch.log"; }
wait_for 30 "a device_lost event" lost
ok "event: $(grep -m1 'device_lost' "$R/watch.log")"
grep -m1 'device_lost' "$R/watch.log" | grep -q 'video0' || fail "the device_lost event does not name /dev/video0"
wait_for 15 "status: camera missing (or error), microphone ok" \
  eval 'health missing ok || health error ok'
ok "status: $(grep -o '"camera":"[a-z]*"' "$R/status.json" | head -1), microphone ok"
[ "$(rec_state)" = "['recording']" ] || fail "the recording is $(rec_state) after the camera was lost, not recording"
more() { [ "$(sealed_count)" -ge $((n_removed + 3)) ]; }
wait_for 30 "3 more segments sealed without the camera" more
ms_lost=$(recorded_ms)
ok "recording goes on without the camera: state $(rec_state), $(sealed_count) segments sealed ($n_removed at the removal), recorded_ms $ms_lost"

touch "$R/restore-camera"
wait_for 40 "the guest to load the camera again" test -e "$R/camera-restored"
back() { grep -q 'device_back' "$R/watch.log"; }
# A device_back that does not come is a failure, but the scenario goes on (meeting end, the
# MP4) so that the rest is checked too: it is written to deferred-failures.txt, which check.sh
# turns into a failure.
: > "$R/deferred-failures.txt"
defer() { log "FAIL (deferred to check.sh): $*"; echo "$*" >> "$R/deferred-failures.txt"; }
if (wait_for 30 "a device_back event (camera detected again)" back); then
  ok "event: $(grep -m1 'device_back' "$R/watch.log")"
  if (wait_for 15 "status: camera ok again" health ok ok); then ok "status: camera ok, microphone ok"
  else defer "status did not show the camera ok within 15 s of device_back"; fi
else
  defer "no device_back within 30 s of the camera's return; guest nodes now: $(cat "$R/nodes-after-restore.txt" 2>/dev/null); $(tr '\n' ' ' < "$R/holders-after-unbind.txt" 2>/dev/null | cut -c1-200); roomrecd: $(grep -E 'device|camera' "$R/roomrecd-1.log" | grep -v DEBUG | tail -3 | cut -c1-300 | tr '\n' ' ')"
fi
[ "$(rec_state)" = "['recording']" ] || fail "the recording is $(rec_state) after the camera came back, not recording"
ms_back=$(recorded_ms)
wait_for 30 "3 more s of recording" at_least $((ms_back + 3000))

ctl meeting set "$ROOMREC_REPO/demo/meeting-ended.json"
done_converting() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" \
  && grep -Eq '"state":"(ready|needs_finalize)"' "$R/recordings.json"; }
wait_for 200 "the conversion to end (state ready or needs_finalize)" done_converting
if grep -q '"state":"ready"' "$R/recordings.json"; then
  ok "conversion finished: $(json_get "$(cat "$R/recordings.json")" 'd["recordings"][0]["location"]')"
else
  defer "the conversion failed (needs_finalize): $(grep -o 'conversion did not complete.*' "$R/roomrecd-1.log" | head -1)"
fi
guest_done
