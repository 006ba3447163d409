# shellcheck shell=bash
# Host checks shared by the room-image scenarios (sourced by check.sh; tests/qemu's host and
# catalog helpers underneath). $R/storage is /var/lib/roomrec as the guest's save_storage
# copied it after a clean stop.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
. "$ROOMREC_QEMU_DIR/lib/catalog.sh"

# check_recovered_recording RID BOOT: after an interruption (upgrade, reboot, power cut) in
# boot BOOT, the catalog is intact and every catalogued segment decodes; every segment the
# daemon of boot BOOT logged as sealed (it logs after the catalog commit) is still catalogued;
# the finalized MP4 of RID ($R/recordings-final.json) is H.264 320x180 with sound and holds
# all the segments catalogued for RID.
check_recovered_recording() {
  local rid=$1 boot=$2 st=$R/storage sealed q nseg seg_ms mp4 dur
  check_catalog "$st"
  sealed=$(grep -o 'segment sealed seq=[0-9]*' "$R/roomrecd-$boot.log" | grep -o '[0-9]*$' | sort -un | tr '\n' ' ')
  [ -n "$sealed" ] || fail "the daemon of boot $boot logged no sealed segment"
  for q in $sealed; do
    [ "$(sqlite3 "$st/catalog.sqlite3" "SELECT COUNT(*) FROM segments WHERE seq = $q")" = 1 ] \
      || fail "segment $q was sealed in boot $boot but is not in the catalog"
  done
  ok "every segment sealed in boot $boot ($sealed) is still catalogued"
  nseg=$(sqlite3 "$st/catalog.sqlite3" "SELECT COUNT(*) FROM segment_recordings WHERE recording_id = '$rid'")
  seg_ms=$(sqlite3 "$st/catalog.sqlite3" "SELECT COALESCE(SUM(s.duration_ms), 0) FROM segments s
    JOIN segment_recordings sr ON sr.seq = s.seq WHERE sr.recording_id = '$rid'")
  mp4=$(json_get "$(cat "$R/recordings-final.json")" "[r['location'] for r in d['recordings'] if r['recording_id'] == '$rid'][0]")
  case "$mp4" in /var/lib/roomrec/*) ;; *) fail "the MP4 is outside the unit's state directory: $mp4" ;; esac
  mp4=$st/${mp4#/var/lib/roomrec/}
  check_av "$mp4" 320 180 2 120 || fail "the finalized MP4 is not right"
  dur=$(media_duration "$mp4")
  awk -v d="$dur" -v s="$seg_ms" 'BEGIN {exit !(d >= s / 1000 - 0.5)}' \
    || fail "the finalized MP4 (${dur} s) lacks media of the $nseg segments (${seg_ms} ms) catalogued for $rid"
  ok "finalized MP4 of $rid: H.264 320x180, sound, ${dur} s = its $nseg catalogued segments (${seg_ms} ms)"
}

# check_cloud_segments MIN: at least MIN segments in s3s-fs, which together play (H.264
# 320x180 frames, sound).
check_cloud_segments() {
  local segs
  mapfile -t segs < <(find "$ROOMREC_S3_DATA" -type f -name '*.ts' | sort -V)
  [ ${#segs[@]} -ge "$1" ] || fail "only ${#segs[@]} cloud segments in s3s-fs (want >= $1)"
  cat "${segs[@]}" > "$R/cloud.ts"
  check_av "$R/cloud.ts" 320 180 2 120 || fail "the cloud recording's segments are not right"
  ok "cloud: ${#segs[@]} segments in s3s-fs; H.264 320x180 frames decode, sound"
  # As a player meets it: the HLS playlist the daemon uploaded, read by ffprobe.
  local m3u8 frames
  m3u8=$(find "$ROOMREC_S3_DATA" -type f -name index.m3u8 -print -quit)
  [ -n "$m3u8" ] || fail "no index.m3u8 in s3s-fs"
  frames=$(ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames \
    -of csv=p=0 "$m3u8" || true)
  frames=$(grep -oE '[0-9]+' <<<"$frames" | head -n 1 || true)
  [ "${frames:-0}" -gt 0 ] 2>/dev/null || fail "ffprobe reads no video frame through $m3u8"
  ok "ffprobe through the uploaded playlist $(basename "$(dirname "$m3u8")")/index.m3u8: $frames video frames"
}
