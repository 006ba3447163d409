# shellcheck shell=bash
# Host side of the interruption scenarios ($R/interrupt: reboot or power-cut), $1 = boot.
# Boot 1: bob records to the cloud, alice locally; once 6 segments are sealed, the guest
# reboots (systemctl reboot) or the host kills QEMU 1.5 s into a segment (a power cut).
# Boot 2: roomrecd back online; alice's recording is needs_finalize (L5), bob's cloud
# recording restored paused; the cloud one resumes for 3 s more and stops, its uploads drain;
# the local one is finalized by command (ready).
. "$ROOMREC_QEMU_DIR/lib/host.sh"
boot=$1
kind=$(cat "$R/interrupt")
status_json() { ctl --json status; }
cloud_state() { status_json | python3 -c 'import json,sys; c=json.load(sys.stdin)["state"]["cloud"]; print(c["state"], c["recorded_ms"])'; }
if [ "$boot" = 1 ]; then
  wait_online 600
  wait_for 60 "status: camera ok, microphone ok" health ok ok
  ctl watch --for 380 >"$R/watch-1.log" 2>&1 &
  join_demo_meeting
  reply=$(ctl --json send start --as bob kind=cloud) || fail "cloud start was refused: $reply"
  reply=$(ctl --json send start --as alice kind=local) || fail "local start was refused: $reply"
  rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
  echo "$rid" > "$R/recording-id"
  ok "cloud (bob) and local (alice, $rid) recordings started"
  sealed_count() { grep -c 'INFO segment sealed seq=' "$R/roomrecd-1.log" || true; }
  six_sealed() { [ "$(sealed_count)" -ge 6 ]; }
  wait_for 150 "6 segments sealed" six_sealed
  ok "$(sealed_count) segments sealed; cloud: $(cloud_state)"
  if [ "$kind" = power-cut ]; then
    sleep 1.5   # into the next segment
    vm_hard_reset
  else
    touch "$R/interrupt.go"
    ok "the guest reboots now"
  fi
  exit 0
fi

# Boot 2. The retained status of boot 1 (or its last will) must not count.
clear_status
wait_online 600
ok "roomrecd is back online after the $kind"
ctl watch --for 300 >"$R/watch-2.log" 2>&1 &
rid=$(cat "$R/recording-id")
state_of() { ctl --json send list_recordings --as admin:ci > "$R/recordings-after.json" \
  && json_get "$(cat "$R/recordings-after.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]"; }
s=$(state_of) || fail "list_recordings failed: $(cat "$R/recordings-after.json")"
[ "$s" = needs_finalize ] || fail "recording $rid is '$s' after the $kind, not needs_finalize (L5)"
ok "after the $kind, $rid is needs_finalize (L5)"
cloud_paused() { [ "$(cloud_state | cut -d' ' -f1)" = paused ]; }
wait_for 60 "the cloud recording restored paused" cloud_paused
before_ms=$(cloud_state | cut -d' ' -f2)
reply=$(ctl --json send resume --as alice target=cloud) || fail "resume cloud was refused: $reply"
cloud_grew() { [ "$(cloud_state | cut -d' ' -f2)" -ge $((before_ms + 3000)) ]; }
wait_for 90 "3 s more of cloud recording" cloud_grew
reply=$(ctl --json send stop --as alice target=cloud) || fail "cloud stop was refused: $reply"
drained() { ctl --json status > "$R/status-uploads.json" \
  && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["status"]["uploads"]["pending"] != 0)' "$R/status-uploads.json"; }
wait_for 150 "the cloud segments to be uploaded" drained
ok "cloud restored paused ($before_ms ms), resumed, stopped, uploads drained"
reply=$(ctl --json send finalize --as alice recording_id="$rid") || fail "finalize was refused: $reply"
is_ready() { ctl --json send list_recordings --as admin:ci > "$R/recordings-final.json" \
  && [ "$(json_get "$(cat "$R/recordings-final.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")" = ready ]; }
wait_for 180 "$rid to be finalized (ready)" is_ready
ok "$rid finalized"
guest_done
