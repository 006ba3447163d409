# shellcheck shell=bash
# Checks of `pip`, on the host after the VM: the MP4 is H.264 at the configured 320x180 with the
# tone; its decoded frames show the camera (red) full frame, then, while sharing, the content
# (blue) full frame with the camera in the bottom-right quarter, then the camera alone again;
# the catalog is intact.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
. "$ROOMREC_QEMU_DIR/lib/catalog.sh"
st=$R/storage
bad=0
nok() { log "FAIL: $*"; bad=1; }
recs=$(cat "$R/recordings.json")
[ "$(json_get "$recs" 'len(d["recordings"])')" = 1 ] || fail "expected one recording: $recs"
mp4=$(json_get "$recs" 'd["recordings"][0]["location"]')
[ -f "$mp4" ] || fail "the catalogued MP4 $mp4 does not exist"
# The picture and the sound. Under TCG the emulated devices deliver far less than real time
# when the machine is busy (docs/qemu.md): content is checked, not the length.
check_av "$mp4" 320 180 1.5 60 && ok "MP4: H.264 320x180, frames decode, audio not silent, >= 1.5 s" \
  || nok "the MP4 is not right"
grep -q 'content sharing set sharing=true' "$R/roomrecd-1.log" && ok "roomrecd logged sharing on" \
  || nok "roomrecd never logged sharing=true"

# Every frame as RGB; the centre and the camera's corner (bottom-right quarter inset by 1/32:
# x, y in [0.72, 0.97] of the frame) classified by their mean colour.
raw=$R/frames.rgb
timeout -k 2 120 gst-launch-1.0 -q uridecodebin "uri=file://$(realpath "$mp4")" caps=video/x-raw \
  ! videoconvert ! video/x-raw,format=RGB,width=320,height=180 ! filesink location="$raw" \
  || nok "cannot decode the MP4's frames to RGB"
seq=$(python3 - "$raw" <<'PY'
import sys
w, h = 320, 180
data = open(sys.argv[1], "rb").read()
n = len(data) // (w * h * 3)
def colour(f, cx, cy):
    r = g = b = k = 0
    for y in range(int(cy * h) - 4, int(cy * h) + 4):
        for x in range(int(cx * w) - 4, int(cx * w) + 4):
            o = f + (y * w + x) * 3
            r += data[o]; g += data[o + 1]; b += data[o + 2]; k += 1
    r, g, b = r / k, g / k, b / k
    if r > 150 and g < 90 and b < 90: return "R"
    if b > 150 and r < 90 and g < 90: return "B"
    if r < 40 and g < 40 and b < 40: return "K"
    return "?"
out = []
for i in range(n):
    f = i * w * h * 3
    c, k = colour(f, 0.5, 0.5), colour(f, 0.84, 0.84)
    out.append("cam" if (c, k) == ("R", "R") else "pip" if (c, k) == ("B", "R")
               else "content" if (c, k) == ("B", "B") else c + k)
# run-length encoded
rl, prev, cnt = [], None, 0
for o in out:
    if o == prev: cnt += 1
    else:
        if prev: rl.append(f"{prev}x{cnt}")
        prev, cnt = o, 1
if prev: rl.append(f"{prev}x{cnt}")
print(" ".join(rl))
PY
) || nok "frame analysis failed"
log "frames (centre+corner, run-length): $seq"
echo "$seq" > "$R/frames.txt"
# Before sharing: the camera alone; then >= 1 s (15 frames at 15 fps; the host shared for 5 s
# of recording, but under TCG the media timeline runs slower than the wall clock) of
# picture-in-picture;
# after it the camera alone again.
python3 - "$seq" <<'PY' && ok "camera alone, then >= 15 picture-in-picture frames (content full frame, camera in the corner), then camera alone" || nok "the frames do not show camera -> picture-in-picture -> camera (see frames.txt)"
import sys
runs = [(r.rsplit("x", 1)[0], int(r.rsplit("x", 1)[1])) for r in sys.argv[1].split()]
kinds = [k for k, _ in runs]
pip = [i for i, (k, n) in enumerate(runs) if k == "pip" and n >= 15]
ok = bool(pip) and "cam" in kinds[:pip[0]] and "cam" in kinds[pip[0] + 1:]
sys.exit(0 if ok else 1)
PY
rm -f "$raw"
check_catalog "$st"
exit $bad
