# shellcheck shell=bash
# Host side of `hard-reset`. Boot 1: licence, meeting, a local recording; once several
# segments are sealed, kill QEMU. Boot 2: wait for roomrecd to come back, list the recordings
# as admin (the interrupted one must be needs_finalize), then finalize it by command.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
boot=$1
if [ "$boot" = 1 ]; then
  wait_online 120
  ctl watch --for 230 >"$R/watch-1.log" 2>&1 &
  ctl licence set --valid-until 2099-01-01T00:00:00Z
  ctl meeting set "$ROOMREC_REPO/demo/meeting.json"
  meeting_applied() { grep -q '"meeting_id":"m-demo"' <<<"$(ctl --json status)"; }
  wait_for 30 "the meeting to be applied" meeting_applied
  reply=$(ctl --json send start --as alice kind=local) || fail "start was refused: $reply"
  rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
  echo "$rid" > "$R/recording-id"
  ok "local recording $rid started"
  sealed() { [ "$(find "$R/storage/segments" -name '[0-9]*.*' 2>/dev/null | wc -l)" -ge 6 ]; }
  wait_for 120 "6 segment files" sealed
  sleep 1.5   # mid-segment
  ls -l "$R/storage/segments" > "$R/segments-before-reset.txt"
  vm_hard_reset
  exit 0
fi

# Boot 2. The broker published the first daemon's last will; clear the retained status so
# that only the second daemon's counts.
clear_status
wait_online 150
ok "roomrecd is back online after the hard reset"
ctl watch --for 200 >"$R/watch-2.log" 2>&1 &
rid=$(cat "$R/recording-id")
state_of() { ctl --json send list_recordings --as admin:ci > "$R/recordings-after-reset.json" \
  && json_get "$(cat "$R/recordings-after-reset.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]"; }
s=$(state_of) || fail "list_recordings failed: $(cat "$R/recordings-after-reset.json")"
[ "$s" = needs_finalize ] || fail "recording $rid is '$s' after the hard reset, not needs_finalize"
ok "list_recordings (admin:ci): $rid is needs_finalize"

# L5: it can be completed later by command; nothing already recorded is lost.
reply=$(ctl --json send finalize --as alice recording_id="$rid") || fail "finalize was refused: $reply"
ok "finalize accepted"
is_ready() { ctl --json send list_recordings --as admin:ci > "$R/recordings-final.json" \
  && [ "$(json_get "$(cat "$R/recordings-final.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")" = ready ]; }
wait_for 180 "$rid to be finalized (state ready)" is_ready
ok "$rid finalized: $(json_get "$(cat "$R/recordings-final.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")"
guest_done
