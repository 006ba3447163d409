# shellcheck shell=bash
# Checks of `camera-removed`, on the host after the VM: what the host driver deferred (device_back,
# status ok again, the conversion); every segment roomrecd logged as sealed is catalogued,
# present, intact and decodes (also those sealed while the camera was gone); the recording is
# ready and its MP4 is H.264 320x180 with the tone, >= 11 s, holding all its segments, and
# gapless as ffprobe reads it (lib/gapless.py): the camera's absence is black frames on the
# capture's clock, so no step above 1.5 packet durations in either track and the MP4 lasts
# what the segments recorded, within a frame; and the video watermark is on the picture that
# stands in for the lost camera (tesseract reads it in the middle of the camera's absence).
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
  segs=$(sqlite3 "$st/catalog.sqlite3" "SELECT s.path FROM segments s JOIN segment_recordings sr
    ON sr.seq = s.seq WHERE sr.recording_id = '$rid' ORDER BY s.seq" | sed "s|^|$st/|")
  # shellcheck disable=SC2086  # one argument per segment path (no spaces in them)
  # The camera's absence on the recording's timeline: the segments sealed before roomrecd
  # logged the loss and before it logged the camera back (the state's recorded_ms runs on
  # the wall clock, ahead of the media under TCG, so it cannot place a frame).
  read -r lost_seq back_seq < <(awk '/INFO segment sealed seq=/ {n++}
    /WARN capture device lost/ && l == "" {l = n} /INFO capture device back/ && b == "" {b = n}
    END {print l + 0, b + 0}' "$R/roomrecd-1.log")
  media_ms() { sqlite3 "$st/catalog.sqlite3" "SELECT COALESCE(SUM(duration_ms), 0) FROM segments WHERE seq <= $1"; }
  mid=$(awk -v a="$(media_ms "$lost_seq")" -v b="$(media_ms "$back_seq")" 'BEGIN {printf "%.1f", (a + b) / 2000}')
  if [ "$back_seq" -gt $((lost_seq + 2)) ] && reads_watermark "$mp4" "$mid"; then
    ok "OCR: the watermark \"$WATERMARK\" is on the frame at $mid s, while the camera was gone (segments $lost_seq-$back_seq)"
  else
    nok "OCR: no watermark \"$WATERMARK\" at $mid s, while the camera was gone (segments $lost_seq-$back_seq)"
  fi
  if python3 "$ROOMREC_QEMU_DIR/lib/gapless.py" "$mp4" $segs > "$R/gapless.txt" 2>&1; then
    ok "ffprobe: the MP4 is gapless across the camera's loss: $(tail -1 "$R/gapless.txt")"
  else
    nok "ffprobe: the MP4 is not gapless across the camera's loss: $(tr '\n' ' ' < "$R/gapless.txt")"
  fi
fi
exit $bad
