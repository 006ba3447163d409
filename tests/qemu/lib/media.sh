# shellcheck shell=bash
# Media checks on the host, sourced by host.sh / check.sh. Each function prints what it found
# and returns non-zero when the file does not match; nothing here is lenient about a file
# that does not decode.

# media_duration FILE: the duration in seconds (decimal), from gst-discoverer-1.0.
media_duration() {
  gst-discoverer-1.0 "$(realpath "$1")" 2>/dev/null \
    | awk -F'[: ]+' '/^ *Duration:/ && !done {printf "%.3f\n", $3 * 3600 + $4 * 60 + $5; done = 1}'
}

# video_frames FILE: how many video frames decode from FILE (0 when none or on error).
# gst-launch-1.0 with uridecodebin very rarely hangs after the last frame instead of ending
# (seen once in ~100 segments here; the same file then decodes at once): each try is bounded,
# the frames counted before a hang still count, and a try with none is repeated, up to three.
video_frames() {
  local n=0 _try
  for _try in 1 2 3; do
    n=$(timeout -k 2 20 gst-launch-1.0 -v uridecodebin "uri=file://$(realpath "$1")" caps=video/x-raw \
      ! fakesink silent=false sync=false 2>&1 | grep -c 'fakesink0.*chain' || true)
    [ "${n:-0}" -gt 0 ] && break
  done
  echo "${n:-0}"
}

# audio_max_rms FILE: the loudest RMS level (dB, over 0.25 s windows and all channels) of the
# decoded audio; prints -999 when there is no audio or it does not decode (tried three times,
# as video_frames).
audio_max_rms() {
  local m=-999 _try
  for _try in 1 2 3; do
    m=$(timeout -k 2 60 gst-launch-1.0 -m uridecodebin "uri=file://$(realpath "$1")" caps=audio/x-raw \
      ! audioconvert ! level interval=250000000 ! fakesink sync=false 2>&1 \
      | grep -o 'rms=(GValueArray)< [^>]* >' \
      | tr -d '<>=(GValueArray),' | tr ' ' '\n' | grep -E '^-?[0-9.]+$|^-?inf$' \
      | awk 'BEGIN {m = -999} $1 != "-inf" && $1 + 0 > m {m = $1 + 0} END {printf "%.1f\n", m}')
    [ "$m" != "-999.0" ] && break
  done
  echo "$m"
}

# check_av FILE WIDTH HEIGHT MIN_SECONDS [MAX_SECONDS]: H.264 video of WIDTH x HEIGHT whose
# frames decode, an audio stream that is not silent (RMS above -50 dB somewhere), and a
# duration within bounds.
check_av() {
  local f=$1 w=$2 h=$3 min=$4 max=${5:-100000} info dur frames rms ok=0
  [ -s "$f" ] || { echo "FAIL $f: missing or empty"; return 1; }
  info=$(gst-discoverer-1.0 -v "$(realpath "$f")" 2>&1)
  dur=$(media_duration "$f")
  frames=$(video_frames "$f")
  rms=$(audio_max_rms "$f")
  echo "  $f: duration ${dur:-?} s, $frames video frames decoded, loudest audio ${rms} dB"
  grep -q 'video codec: H.264' <<<"$info" || { echo "FAIL $f: no H.264 video stream"; ok=1; }
  grep -Eq "video/x-h264.*width=\(int\)$w, height=\(int\)$h" <<<"$info" \
    || { echo "FAIL $f: video is not ${w}x${h}: $(echo "$info" | grep -o 'width=(int)[0-9]*, height=(int)[0-9]*' | head -1)"; ok=1; }
  grep -Eq 'audio #[0-9]+:' <<<"$info" || { echo "FAIL $f: no audio stream"; ok=1; }
  [ "${frames:-0}" -gt 0 ] || { echo "FAIL $f: no video frame decodes"; ok=1; }
  awk -v r="$rms" 'BEGIN {exit !(r > -50)}' || { echo "FAIL $f: audio is silent (loudest ${rms} dB)"; ok=1; }
  awk -v d="${dur:-0}" -v a="$min" -v b="$max" 'BEGIN {exit !(d >= a && d <= b)}' \
    || { echo "FAIL $f: duration ${dur:-?} s not within [$min, $max] s"; ok=1; }
  return $ok
}
