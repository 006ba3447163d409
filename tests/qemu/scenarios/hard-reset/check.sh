# shellcheck shell=bash
# Checks of `hard-reset`, on the host after both VMs: the catalog survived the reset intact,
# every catalogued segment is present, intact and decodes; the recording's segments sealed
# before the reset are all still there and in the finalized MP4.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
. "$ROOMREC_QEMU_DIR/lib/catalog.sh"
st=$R/storage
rid=$(cat "$R/recording-id")
check_catalog "$st"

# Segments of the recording sealed before the reset (the host saw >= 6 files, the last
# possibly still open): at least 5 must be catalogued for it.
nseg=$(sqlite3 "$st/catalog.sqlite3" "SELECT COUNT(*) FROM segment_recordings WHERE recording_id = '$rid'")
seg_ms=$(sqlite3 "$st/catalog.sqlite3" "SELECT COALESCE(SUM(s.duration_ms), 0) FROM segments s
  JOIN segment_recordings sr ON sr.seq = s.seq WHERE sr.recording_id = '$rid'")
[ "$nseg" -ge 5 ] || fail "only $nseg segments are catalogued for $rid; 6 files existed before the reset"
ok "$nseg segments (${seg_ms} ms) catalogued for $rid survived the reset"

# Nothing sealed is lost: every segment the first roomrecd logged as sealed (it logs after the
# catalog commit) is still catalogued; check_catalog above proved those files intact.
sealed=$(grep -o 'segment sealed seq=[0-9]*' "$R/roomrecd-1.log" | grep -o '[0-9]*$' | sort -n | tr '\n' ' ')
[ -n "$sealed" ] || fail "the first roomrecd logged no sealed segment before the reset"
for q in $sealed; do
  [ "$(sqlite3 "$st/catalog.sqlite3" "SELECT COUNT(*) FROM segments WHERE seq = $q")" = 1 ] \
    || fail "segment $q was sealed before the reset but is not in the catalog after it"
done
ok "every segment sealed before the reset ($sealed) is still catalogued"

mp4=$(json_get "$(cat "$R/recordings-final.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")
check_av "$mp4" 320 240 5 60 || fail "the finalized MP4 is not right"
dur=$(media_duration "$mp4")
awk -v d="$dur" -v s="$seg_ms" 'BEGIN {exit !(d >= s / 1000 - 0.5)}' \
  || fail "the finalized MP4 (${dur} s) lacks media of the $nseg catalogued segments (${seg_ms} ms)"
ok "finalized MP4: H.264 320x240, audio, ${dur} s = the catalogued segments"
