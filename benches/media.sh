#!/usr/bin/env bash
# Media benchmark: record SECONDS (default 60) of 1280x720@30 from the test source, 2500 kbit/s
# H.264 (x264 veryfast, zerolatency) + AAC in 2 s MPEG-TS segments, three ways, one after the
# other on the same machine:
#   1. roomrec's media path (media::spawn, built as the `media_record` bench target),
#   2. a bare gst-launch-1.0 of the same pipeline (stopped with EOS: -e and SIGINT),
#   3. Debian's ffmpeg: lavfi pal75bars + scroll and sine, libx264 at the same
#      preset/tune/bitrate/GOP, its own AAC encoder, the segment muxer with MPEG-TS.
# All three draw the same picture: 75 % colour bars scrolling 4 pixels a frame (videotestsrc
# smpte75 + horizontal-speed, the test camera's `Bars` picture; ffmpeg's pal75bars has an 8th,
# black bar). The daemon's default ball costs videotestsrc ~0.15 CPU s per second at 720p
# against ~0.05 for testsrc2, so comparing those measured the picture generators, not the
# recorders (a real camera draws nothing).
# CPU seconds (user + system) and peak RSS come from /usr/bin/time -v; ratios are printed.
# Goals: roomrec <= 1.05x gst-launch and <= 0.9x ffmpeg in CPU, peak RSS <= 60 MB.
# Prints figures; asserts nothing. Installs ffmpeg with apt when it is missing.
#
#   benches/media.sh [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
w=1280 h=720 fps=30 kbps=2500 gop=$((fps / 2))  # as roomrecd: a 0.5 s GOP (the RPO)
work="$(mktemp -d /tmp/roomrec-media-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT

command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

echo "building the media_record bench (release profile)..." >&2
cargo build --release --bench media_record --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "media_record" and m.get("executable"):
        print(m["executable"])' > "$work/exe"
exe="$(cat "$work/exe")"
[ -x "$exe" ] || { echo "could not build benches/media_record.rs" >&2; exit 1; }

# run NAME CMD...: time CMD, keep "cpu_s rss_kb" in $work/NAME.
run() {
  local name=$1; shift
  mkdir -p "$work/$name"
  echo "running $name for ${seconds} s..." >&2
  /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 || true
  awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} /Maximum resident/ {r = $2}
    END {printf "%.2f %d\n", u + s, r}' "$work/$name.time" > "$work/$name.fig"
  local n bytes
  n=$(find "$work/$name" -name '*.ts' | wc -l)
  bytes=$(find "$work/$name" -name '*.ts' -printf '%s\n' | awk '{t += $1} END {print t + 0}')
  # Similar sizes say the encoders did similar work on the same picture.
  echo "  $name: $(cat "$work/$name.fig") (cpu_s rss_kB), $n segments, $bytes bytes" >&2
}

run roomrec timeout -k 10 $((seconds + 60)) "$exe" "$work/roomrec" "$seconds" $w $h $fps $kbps bars

run gst timeout -k 10 -s INT "$seconds" gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=smpte75 horizontal-speed=4 \
  ! "video/x-raw,format=I420,width=$w,height=$h,framerate=$fps/1" ! queue \
  ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=$gop bitrate=$kbps \
  ! h264parse ! s.video \
  audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! volume ! queue \
  ! voaacenc ! aacparse ! s.audio_0 \
  splitmuxsink name=s muxer=mpegtsmux "location=$work/gst/%08d.ts" \
  max-size-time=2000000000 send-keyframe-requests=true

run ffmpeg timeout -k 10 $((seconds + 60)) ffmpeg -nostdin -hide_banner -loglevel error -re \
  -f lavfi -i "pal75bars=size=${w}x${h}:rate=$fps,scroll=horizontal=$(python3 -c "print(4 / $w)")" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$seconds" \
  -c:v libx264 -preset veryfast -tune zerolatency -b:v ${kbps}k -g $gop -pix_fmt yuv420p \
  -c:a aac -b:a 128k -f segment -segment_time 2 -segment_format mpegts \
  "$work/ffmpeg/%08d.ts"

read -r rc_cpu rc_rss < "$work/roomrec.fig"
read -r gs_cpu gs_rss < "$work/gst.fig"
read -r ff_cpu ff_rss < "$work/ffmpeg.fig"
python3 - "$seconds" "$rc_cpu" "$rc_rss" "$gs_cpu" "$gs_rss" "$ff_cpu" "$ff_rss" <<'PY'
import sys
s, rc, rr, gc, gr, fc, fr = sys.argv[1:]
rc, gc, fc = float(rc), float(gc), float(fc)
rr, gr, fr = int(rr) / 1024, int(gr) / 1024, int(fr) / 1024
print(f"media benchmark: {s} s of 1280x720@30 scrolling bars, x264 veryfast 2500 kbit/s + AAC, 2 s TS segments")
print(f"{'':12}{'CPU s':>8}{'peak RSS MB':>14}")
for name, c, r in (("roomrec", rc, rr), ("gst-launch", gc, gr), ("ffmpeg", fc, fr)):
    print(f"{name:12}{c:8.2f}{r:14.1f}")
print(f"CPU roomrec/gst-launch = {rc / gc:.3f}  (goal <= 1.05)")
print(f"CPU roomrec/ffmpeg     = {rc / fc:.3f}  (goal <= 0.90)")
print(f"RSS roomrec            = {rr:.1f} MB (goal <= 60)")
PY
