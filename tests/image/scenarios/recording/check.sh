# shellcheck shell=bash
# Checks of `recording` on the host: the cloud segments in s3s-fs play (H.264 320x180 frames,
# audio not silent), the local MP4 copied out of the image plays, the catalog is intact, the
# journal holds roomrecd's events.
. "$ROOMREC_IMAGE_TESTS/lib/checks.sh"
st=$R/storage
check_cloud_segments 4
rid=$(cat "$R/recording-id")
mp4=$(json_get "$(cat "$R/recordings.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")
case "$mp4" in /var/lib/roomrec/local/*) ;; *) fail "the MP4 is not under the unit's state directory: $mp4" ;; esac
host_mp4=$st/${mp4#/var/lib/roomrec/}
check_av "$host_mp4" 320 180 3 60 || fail "the local MP4 is not right"
ok "local MP4 $mp4: H.264 320x180 frames decode, audio not silent"
ffprobe -v error -show_entries stream=codec_name,width,height,nb_frames -of compact "$host_mp4" | sed 's/^/  ffprobe: /'
check_catalog "$st"

# The journal (journalctl -o json, saved by the agent): roomrecd's events are there under its
# unit and its own uid, with their fields.
python3 - "$R/journal-1.json" "$(cat "$R/roomrec.uid")" <<'PY' || fail "the journal lacks roomrecd's events"
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
mine = [e for e in entries if e.get("_SYSTEMD_UNIT") == "roomrec.service" and e.get("_UID") == sys.argv[2]]
msgs = [e["MESSAGE"] for e in mine if isinstance(e.get("MESSAGE"), str)]
need = ["segment sealed", "capture started"]
missing = [n for n in need if not any(n in m for m in msgs)]
print(f"  journal: {len(entries)} entries of roomrec.service, {len(mine)} from uid {sys.argv[2]}; missing: {missing}")
for m in msgs:
    if "segment sealed" in m:
        print(f"  journal: e.g. MESSAGE={m!r}")
        break
sys.exit(1 if missing or not mine else 0)
PY
ok "journal: roomrecd's events under _SYSTEMD_UNIT=roomrec.service and the roomrec uid"
