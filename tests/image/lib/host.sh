# shellcheck shell=bash
# Sourced by the room-image scenarios' host.sh: tests/qemu's host helpers (ctl, wait_online,
# wait_for, health, join_demo_meeting, vm_hard_reset, ...) plus what several scenarios here do.
. "$ROOMREC_QEMU_DIR/lib/host.sh"

# start_local_recording: alice starts a local recording; its id goes to $R/recording-id and
# to RID.
start_local_recording() {
  local reply
  reply=$(ctl --json send start --as alice kind=local) || fail "local start was refused: $reply"
  RID=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
  echo "$RID" > "$R/recording-id"
  ok "local recording $RID started"
}

# sealed_count: segments the daemon of this boot logged as sealed (after the catalog commit;
# the journal's MESSAGE, without the level, which is its PRIORITY).
sealed_count() { grep -c '^segment sealed seq=' "$R/roomrecd-$ROOMREC_BOOT.log" || true; }

# wait_sealed N: until the daemon of this boot has sealed N segments.
wait_sealed() {
  enough_sealed() { [ "$(sealed_count)" -ge "$1" ]; }
  wait_for 400 "$1 segments sealed" enough_sealed "$1"
}

# recording_state RID: RID's state in list_recordings (as admin:ci; the answer in
# $R/recordings.json).
recording_state() {
  ctl --json send list_recordings --as admin:ci > "$R/recordings.json" \
    && json_get "$(cat "$R/recordings.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$1'][0]"
}

# expect_needs_finalize RID AFTER: rule L5 after AFTER (an upgrade, a reboot, a power cut).
expect_needs_finalize() {
  local s
  s=$(recording_state "$1") || fail "list_recordings failed: $(cat "$R/recordings.json")"
  [ "$s" = needs_finalize ] || fail "recording $1 is '$s' after the $2, not needs_finalize (L5)"
  ok "after the $2, $1 is needs_finalize (L5)"
}

# finalize_until_ready RID: alice finalizes RID by command; waits until it is ready and keeps
# the listing in $R/recordings-final.json.
finalize_until_ready() {
  local reply
  reply=$(ctl --json send finalize --as alice recording_id="$1") || fail "finalize was refused: $reply"
  is_ready() { [ "$(recording_state "$1")" = ready ]; }
  wait_for 240 "$1 to be finalized (ready)" is_ready "$1"
  cp "$R/recordings.json" "$R/recordings-final.json"
  ok "$1 finalized: $(json_get "$(cat "$R/recordings-final.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$1'][0]")"
}
