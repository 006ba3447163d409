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
health() { ctl --json status > "$R/status.json" && grep -q "\"camera\":\"$1\"" "$R/status.json" \
  && grep -q "\"microphone\":\"$2\"" "$R/status.json"; }
wait_for 20 "status: camera error (or missing), microphone ok" eval 'health error ok || health missing ok'
ok "status: $(grep -o '"camera":"[a-z]*"' "$R/status.json" | head -1), microphone ok"
# Why, for a person: status carries only the health, so the reason is in roomrecd's log.
reason() { grep 'capture device unusable' "$R/roomrecd-1.log" | grep '/dev/video0' \
  | grep 'offers no usable format' | grep -q 'multi-planar'; }
wait_for 10 "roomrecd to log why the camera is unusable" reason
ok "roomrecd logs: $(grep -m1 -o 'reason=.*offers no usable format.*' "$R/roomrecd-1.log" | cut -c1-260)"
ctl licence set --valid-until 2099-01-01T00:00:00Z
ctl meeting set "$ROOMREC_REPO/demo/meeting.json"
meeting_applied() { grep -q '"meeting_id":"m-demo"' <<<"$(ctl --json status)"; }
wait_for 30 "the meeting to be applied" meeting_applied

rc=0
reply=$(ctl --json send start --as alice kind=local) || rc=$?
echo "$reply" > "$R/start-refused.json"
[ $rc -ne 0 ] || fail "start succeeded with an unusable camera: $reply"
grep -q 'device_unavailable' <<<"$reply" || fail "start refused, but not with device_unavailable: $reply"
grep -qi 'camera' <<<"$reply" || fail "the device_unavailable answer does not name the camera: $reply"
ok "start with an unusable camera: $reply"

touch "$R/replace-camera"
wait_for 40 "the guest to replace the camera" test -e "$R/camera-replaced"
t=$SECONDS
wait_for 20 "status: camera ok (no restart)" health ok ok
ok "status: camera ok, microphone ok $((SECONDS - t)) s after the single-planar camera appeared"
reply=$(ctl --json send start --as alice kind=local) || fail "start was refused with a usable camera: $reply"
rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
ok "local recording $rid started"
recorded_ms() { ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(max([l["recorded_ms"] for l in d["state"]["local"]] or [0]))'; }
sealed_count() { grep -c 'INFO segment sealed seq=' "$R/roomrecd-1.log" || true; }
long_enough() { [ "$(recorded_ms)" -ge 12500 ] && [ "$(sealed_count)" -ge 3 ]; }
wait_for 90 "12.5 s of recording and 3 segments sealed" long_enough
ok "recorded $(recorded_ms) ms, $(sealed_count) segments sealed"
ctl meeting set "$ROOMREC_REPO/demo/meeting-ended.json"
ready() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" && grep -q '"state":"ready"' "$R/recordings.json"; }
settled() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" \
  && grep -Eq '"state":"(ready|needs_finalize|discarded)"' "$R/recordings.json"; }
wait_for 200 "the recording to be converted" settled
ready || fail "the recording did not become ready: $(cat "$R/recordings.json")"
ok "conversion finished: $(json_get "$(cat "$R/recordings.json")" 'd["recordings"][0]["location"]')"
guest_done
