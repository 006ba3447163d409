# shellcheck shell=bash
# Checks of `microphone-removed`, on the host after the VM: what the host driver deferred (device_back,
# status ok again, the conversion); every segment roomrecd logged as sealed is catalogued,
# present, intact and decodes (also those sealed while the microphone was gone); two segments of
# the gap hold silence and the last one the tone again (capture resumed); the recording is
# ready and its MP4 is H.264 320x180 with the tone, >= 11 s, holding all its segments.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
. "$ROOMREC_QEMU_DIR/lib/catalog.sh"
st=$R/storage
bad=0
nok() { log "FAIL: $*"; bad=1; }
while read -r f; do [ -n "$f" ] && nok "(from the host driver) $f"; done < "$R/deferred-failures.txt"
check_catalog "$st"
sealed=$(grep -o 'INFO segment sealed seq=[0-9]*' "$R/roomrecd-1.log" | grep -o '[0-9]*$' | sort -n | tr '\n' ' ')
for q in $sealed; do
  [ "$(sqlite3 "$st/catalog.sqlite3" "SELECT COUNT(*) FROM segments WHERE seq = $q")" = 1 ] \
    || nok "segment $q was logged sealed but is not in the catalog"
done
ok "every sealed segment ($sealed) is catalogued"
# Silence while the microphone was gone, the tone again once it was back.
seg_file() { sqlite3 "$st/catalog.sqlite3" "SELECT path FROM segments WHERE seq = $1"; }
# Audio PES packets (stream ids 0xC0-0xDF) in the TS file itself: the Discoverer, under a
# loaded host, sometimes gives up on a 1 s segment before it sees the audio stream.
has_audio() {
  python3 - "$1" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
n = 0
for i in range(0, len(d) - 187, 188):
    p = d[i:i + 188]
    if p[0] != 0x47 or not p[1] & 0x40:
        continue
    off = 4 + (1 + p[4] if (p[3] >> 4) & 2 else 0)
    if off + 4 <= 188 and p[off:off + 3] == b"\x00\x00\x01" and 0xC0 <= p[off + 3] <= 0xDF:
        n += 1
sys.exit(0 if n else 1)
PY
}
for q in $(cat "$R/gap-segments"); do
  f=$st/$(seg_file "$q")
  rms=$(audio_max_rms "$f")
  if ! has_audio "$f"; then nok "segment $q (microphone gone) has no audio stream"
  elif awk -v r="$rms" 'BEGIN {exit !(r < -50)}'; then ok "segment $q (microphone gone): audio stream present, silent (loudest ${rms} dB)"
  else nok "segment $q (microphone gone) is not silent (loudest ${rms} dB)"; fi
done
# The last two segments (the very last, cut at meeting end, may be too short to hold audio).
loudest=-999
for q in $(sqlite3 "$st/catalog.sqlite3" "SELECT seq FROM segments ORDER BY seq DESC LIMIT 2"); do
  rms=$(audio_max_rms "$st/$(seg_file "$q")")
  awk -v r="$rms" -v m="$loudest" 'BEGIN {exit !(r > m)}' && loudest=$rms
done
awk -v r="$loudest" 'BEGIN {exit !(r > -50)}' && ok "the last segments (microphone back): the tone again (loudest ${loudest} dB)" \
  || nok "the last two segments (after the microphone came back) are silent (loudest ${loudest} dB): capture did not resume"
recs=$(cat "$R/recordings.json")
rid=$(json_get "$recs" 'd["recordings"][0]["recording_id"]')
state=$(json_get "$recs" 'd["recordings"][0]["state"]')
if [ "$state" != ready ]; then
  nok "recording $rid is $state, so there is no MP4 to check"
else
  mp4=$(json_get "$recs" 'd["recordings"][0]["location"]')
  [ -f "$mp4" ] || fail "the catalogued MP4 $mp4 does not exist"
  check_av "$mp4" 320 180 11 120 && ok "MP4: H.264 320x180, frames decode, audio not silent, >= 11 s" \
    || nok "the MP4 is not right"
  dur=$(media_duration "$mp4")
  seg_ms=$(sqlite3 "$st/catalog.sqlite3" "SELECT COALESCE(SUM(s.duration_ms), 0) FROM segments s
    JOIN segment_recordings sr ON sr.seq = s.seq WHERE sr.recording_id = '$rid'")
  awk -v d="$dur" -v s="$seg_ms" 'BEGIN {exit !(d >= s / 1000 - 0.5)}' \
    && ok "the MP4 (${dur} s) holds all the recording's segments (${seg_ms} ms)" \
    || nok "the MP4 (${dur} s) lacks media of the segments catalogued for $rid (${seg_ms} ms)"
fi
exit $bad
