# shellcheck shell=bash
# Host side of `pip`: licence, meeting, a local recording: >= 4 s of camera alone, a meeting
# snapshot with "sharing": true for >= 5 s of recording, then "sharing": false for >= 5 s,
# meeting end; waits for the MP4.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ok "roomrecd in the guest is online through the guestfwd broker"
ctl watch --for 280 >"$R/watch.log" 2>&1 &
devices_ok() { ctl --json status > "$R/status-before.json" \
  && grep -q '"camera":"ok"' "$R/status-before.json" && grep -q '"microphone":"ok"' "$R/status-before.json"; }
wait_for 30 "status: camera and microphone ok" devices_ok

# meeting_version N SHARING STATE: demo/meeting.json with that version, sharing and state.
meeting_version() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["version"]=int(sys.argv[2]); d["sharing"]=sys.argv[3]=="true"; d["state"]=sys.argv[4]; print(json.dumps(d))' \
    "$ROOMREC_REPO/demo/meeting.json" "$1" "$2" "$3" > "$R/meeting-v$1.json"
  ctl meeting set "$R/meeting-v$1.json" >/dev/null
}
ctl licence set --valid-until 2099-01-01T00:00:00Z
meeting_version 1 false active
meeting_applied() { grep -q '"meeting_id":"m-demo"' <<<"$(ctl --json status)"; }
wait_for 30 "the meeting to be applied" meeting_applied

reply=$(ctl --json send start --as alice kind=local) || fail "start was refused: $reply"
rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
ok "local recording $rid started"
recorded_ms() { ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(max([l["recorded_ms"] for l in d["state"]["local"]] or [0]))'; }
at_least() { [ "$(recorded_ms)" -ge "$1" ]; }
wait_for 60 "4 s of recording" at_least 4000
meeting_version 2 true active
on=$(recorded_ms)
ok "sharing on at $on ms"
sharing_logged() { grep -q 'content sharing set sharing=true' "$R/roomrecd-1.log"; }
wait_for 20 "roomrecd to log sharing=true" sharing_logged
wait_for 60 "5 s of recording while sharing" at_least $((on + 5000))
meeting_version 3 false active
off=$(recorded_ms)
ok "sharing off at $off ms"
wait_for 60 "5 s of recording after sharing" at_least $((off + 5000))
meeting_version 4 false ended
ok "meeting ended at $(recorded_ms) ms"
ready() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" && grep -q '"state":"ready"' "$R/recordings.json"; }
wait_for 200 "the recording to be converted (state ready)" ready
ok "conversion finished: $(json_get "$(cat "$R/recordings.json")" 'd["recordings"][0]["location"]')"
guest_done
