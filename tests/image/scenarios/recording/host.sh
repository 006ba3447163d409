# shellcheck shell=bash
# Host side of `recording`: online through 10.0.2.2, camera and microphone ok; bob records to
# the cloud for 8 s and stops, the uploads drain into s3s-fs; alice records locally past the
# L4 minimum, the meeting ends, the MP4 is converted (ready).
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 600
ok "roomrecd in the image is online through 10.0.2.2"
wait_for 60 "status: camera ok, microphone ok" health ok ok
ok "status: camera ok, microphone ok"
ctl watch --for 330 >"$R/watch.log" 2>&1 &
join_demo_meeting

reply=$(ctl --json send start --as bob kind=cloud) || fail "cloud start was refused: $reply"
cloud_ms() { ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["cloud"]["recorded_ms"])'; }
cloud_long_enough() { [ "$(cloud_ms)" -ge 8000 ]; }
wait_for 90 "8 s of cloud recording" cloud_long_enough
ok "cloud recording: $(cloud_ms) ms"
reply=$(ctl --json send stop --as bob target=cloud) || fail "cloud stop was refused: $reply"
drained() { ctl --json status > "$R/status-uploads.json" \
  && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["status"]["uploads"]["pending"] != 0)' "$R/status-uploads.json"; }
wait_for 120 "the cloud segments to be uploaded" drained
ok "cloud recording stopped, uploads drained: $(find "$ROOMREC_S3_DATA" -type f -name '*.ts' | wc -l) segments in s3s-fs"

# alice records locally past the L4 minimum (12.5 s and 3 sealed segments; shorter local
# recordings are discarded at meeting end), the meeting ends, the MP4 is converted.
reply=$(ctl --json send start --as alice kind=local) || fail "local start was refused: $reply"
rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
echo "$rid" > "$R/recording-id"
ok "local recording $rid started"
local_ms() { ctl --json status | python3 -c 'import json,sys; print(max([l["recorded_ms"] for l in json.load(sys.stdin)["state"]["local"]] or [0]))'; }
sealed_count() { grep -c 'INFO segment sealed seq=' "$R/roomrecd-1.log" || true; }
long_enough() { [ "$(local_ms)" -ge 12500 ] && [ "$(sealed_count)" -ge 3 ]; }
wait_for 120 "12.5 s of local recording" long_enough
ok "local recording: $(local_ms) ms"
ctl meeting set "$ROOMREC_REPO/demo/meeting-ended.json"
state_of() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" \
  && json_get "$(cat "$R/recordings.json")" "[r['state'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]"; }
converted() { [ "$(state_of)" = ready ]; }
wait_for 240 "$rid to be converted (ready)" converted
ok "meeting ended, $rid converted: $(json_get "$(cat "$R/recordings.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")"
guest_done
