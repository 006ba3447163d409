# shellcheck shell=bash
# Host side of `upgrade`: a local recording with >= 5 segments sealed, then the guest upgrades
# the package; the new daemon comes online, the recording is needs_finalize, finalize -> ready.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 600
wait_for 60 "status: camera ok, microphone ok" health ok ok
ctl watch --for 380 >"$R/watch.log" 2>&1 &
join_demo_meeting
reply=$(ctl --json send start --as alice kind=local) || fail "start was refused: $reply"
rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
echo "$rid" > "$R/recording-id"
ok "local recording $rid started"
sealed_count() { grep -c 'INFO segment sealed seq=' "$R/roomrecd-1.log" || true; }
five_sealed() { [ "$(sealed_count)" -ge 5 ]; }
wait_for 120 "5 segments sealed" five_sealed
clear_status
touch "$R/upgrade.go"
ok "$(sealed_count) segments sealed; the guest upgrades the package now"
wait_for 200 "the upgrade" test -e "$R/upgraded"
wait_online 300
ok "roomrecd is online again after the upgrade"
state_of() { ctl --json send list_recordings --as admin:ci > "$R/recordings-after-upgrade.json" \
  && json_get "$(cat "$R/recordings-after-upgrade.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]"; }
s=$(state_of) || fail "list_recordings failed: $(cat "$R/recordings-after-upgrade.json")"
[ "$s" = needs_finalize ] || fail "recording $rid is '$s' after the upgrade, not needs_finalize (L5)"
ok "after the upgrade, $rid is needs_finalize (L5)"
reply=$(ctl --json send finalize --as alice recording_id="$rid") || fail "finalize was refused: $reply"
is_ready() { ctl --json send list_recordings --as admin:ci > "$R/recordings-final.json" \
  && [ "$(json_get "$(cat "$R/recordings-final.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")" = ready ]; }
wait_for 180 "$rid to be finalized (ready)" is_ready
ok "$rid finalized: $(json_get "$(cat "$R/recordings-final.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")"
guest_done
