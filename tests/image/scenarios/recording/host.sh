# shellcheck shell=bash
# Host side of `recording`: online through 10.0.2.2, camera and microphone ok; bob records to
# the cloud until 4 segments are sealed and stops, the upload completes (the playlist is in
# s3s-fs); alice records locally past the L4 minimum, the meeting ends, the MP4 is converted.
# Progress is counted in sealed segments, not seconds: under TCG on a loaded machine the
# guest's pipeline falls far behind the wall clock.
. "$ROOMREC_IMAGE_TESTS/lib/host.sh"
wait_online 600
ok "roomrecd in the image is online through 10.0.2.2"
wait_for 60 "status: camera ok, microphone ok" health ok ok
ok "status: camera ok, microphone ok"
ctl watch --for 800 >"$R/watch.log" 2>&1 &
join_demo_meeting

reply=$(ctl --json send start --as bob kind=cloud) || fail "cloud start was refused: $reply"
wait_sealed 4
ok "cloud recording: $(sealed_count) segments sealed"
reply=$(ctl --json send stop --as bob target=cloud) || fail "cloud stop was refused: $reply"
uploaded() { [ -n "$(find "$ROOMREC_S3_DATA" -name index.m3u8 -print -quit)" ]; }
wait_for 300 "the cloud recording's upload to complete (index.m3u8 in s3s-fs)" uploaded
ok "cloud recording stopped and uploaded: $(find "$ROOMREC_S3_DATA" -type f -name '*.ts' | wc -l) segments and index.m3u8 in s3s-fs"

# alice records locally past the L4 minimum (12.5 s and 3 sealed segments; shorter local
# recordings are discarded at meeting end), the meeting ends, the MP4 is converted.
before=$(sealed_count)
start_local_recording
local_ms() { ctl --json status | python3 -c 'import json,sys; print(max([l["recorded_ms"] for l in json.load(sys.stdin)["state"]["local"]] or [0]))'; }
long_enough() { [ "$(local_ms)" -ge 12500 ] && [ "$(sealed_count)" -ge $((before + 4)) ]; }
wait_for 300 "12.5 s and 4 segments of local recording" long_enough
ok "local recording: $(local_ms) ms, $(($(sealed_count) - before)) segments sealed"
ctl meeting set "$ROOMREC_REPO/demo/meeting-ended.json"
converted() { [ "$(recording_state "$RID")" = ready ]; }
wait_for 300 "$RID to be converted (ready)" converted
ok "meeting ended, $RID converted: $(json_get "$(cat "$R/recordings.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$RID'][0]")"
guest_done
