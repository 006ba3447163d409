# shellcheck shell=bash
# Host side of `daemon-test-source`: licence, meeting, a local recording of at least 12 s,
# meeting end; waits for the MP4 the daemon converts in the guest.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ok "roomrecd in the guest is online through the guestfwd broker"
# A scenario that sources this body may check more once the device is online.
if declare -F after_online >/dev/null; then after_online; fi
ctl watch --for 280 >"$R/watch.log" 2>&1 &

join_demo_meeting

t_start=$EPOCHREALTIME
reply=$(ctl --json send start --as alice kind=local) || fail "start was refused: $reply"
echo "$reply" > "$R/start-reply.json"
rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
ok "local recording $rid started"
started=$SECONDS

recorded_ms() { ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(max([l["recorded_ms"] for l in d["state"]["local"]] or [0]))'; }
long_enough() { [ $((SECONDS - started)) -ge 13 ] && [ "$(recorded_ms)" -ge 12500 ]; }
wait_for 120 "12.5 s of recording" long_enough
ok "recorded $(recorded_ms) ms in $((SECONDS - started)) s of wall time"

ctl meeting set "$ROOMREC_REPO/demo/meeting-ended.json"
# The recording's window as seen from outside: from sending start to publishing the end.
awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f\n", b - a}' > "$R/window.txt"
ok "meeting ended after a recording window of $(cat "$R/window.txt") s"
ready() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" && grep -q '"state":"ready"' "$R/recordings.json"; }
wait_for 200 "the recording to be converted (state ready)" ready
ok "conversion finished: $(json_get "$(cat "$R/recordings.json")" 'd["recordings"][0]["location"]')"
guest_done
