# shellcheck shell=bash
# Host side of `no-microphone-at-boot`: roomrecd online without a microphone: status
# microphone missing (or error), camera ok; roomrecd's log says why and what to check; `start`
# answered device_unavailable naming the microphone; the guest loads snd-aloop and plays the
# tone: status microphone ok within 20 s without a restart, the same start succeeds and records
# >= 12.5 s, meeting end, ready.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ok "roomrecd in the guest is online without a microphone"
ctl watch --for 280 >"$R/watch.log" 2>&1 &
health() { ctl --json status > "$R/status.json" && grep -q "\"camera\":\"$1\"" "$R/status.json" \
  && grep -q "\"microphone\":\"$2\"" "$R/status.json"; }
wait_for 20 "status: camera ok, microphone missing (or error)" eval 'health ok missing || health ok error'
ok "status: camera ok, $(grep -o '"microphone":"[a-z]*"' "$R/status.json" | head -1)"
# Why, for a person: status carries only the health, so the reason is in roomrecd's log.
reason() { grep 'capture device unusable' "$R/roomrecd-1.log" | grep 'microphone hw:Loopback,1,0' \
  | grep -q 'check that it is plugged in'; }
wait_for 10 "roomrecd to log why the microphone is unusable" reason
ok "roomrecd logs: $(grep -m1 -o 'reason=.*microphone hw:Loopback.*' "$R/roomrecd-1.log" | cut -c1-220)"
ctl licence set --valid-until 2099-01-01T00:00:00Z
ctl meeting set "$ROOMREC_REPO/demo/meeting.json"
meeting_applied() { grep -q '"meeting_id":"m-demo"' <<<"$(ctl --json status)"; }
wait_for 30 "the meeting to be applied" meeting_applied

rc=0
reply=$(ctl --json send start --as alice kind=local) || rc=$?
echo "$reply" > "$R/start-refused.json"
[ $rc -ne 0 ] || fail "start succeeded without a microphone: $reply"
grep -q 'device_unavailable' <<<"$reply" || fail "start refused, but not with device_unavailable: $reply"
grep -qi 'microphone' <<<"$reply" || fail "the device_unavailable answer does not name the microphone: $reply"
! grep -qi 'camera' <<<"$reply" || fail "the device_unavailable answer names the camera, which is there: $reply"
ok "start without a microphone: $reply"

touch "$R/load-microphone"
wait_for 40 "the guest to load snd-aloop and play the tone" test -e "$R/microphone-loaded"
t=$SECONDS
wait_for 20 "status: microphone ok (no restart)" health ok ok
ok "status: camera ok, microphone ok $((SECONDS - t)) s after snd-aloop was loaded"
reply=$(ctl --json send start --as alice kind=local) || fail "start was refused with the microphone back: $reply"
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
