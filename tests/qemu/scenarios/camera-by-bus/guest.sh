# shellcheck shell=bash
# Guest side of `camera-by-bus`: two vivid instances with one webcam node each (/dev/video0,
# /dev/video1, both 320x180 at 30 fps), snd-aloop with the tone; roomrecd on v4l2 with
# camera_bus = the bus info `v4l2-ctl --info` gives for /dev/video1 (and no camera path).
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
load_vivid n_devs=2 node_types=0x1,0x1 num_inputs=1,1 input_types=0x0,0x0
[ -e /dev/video1 ] || fail "vivid made no /dev/video1"
webcam_setup /dev/video0
webcam_setup /dev/video1
bus() { v4l2-ctl -d "$1" --info | sed -n 's/^[[:space:]]*Bus info[[:space:]]*: //p' | head -1; }
card() { v4l2-ctl -d "$1" --info | sed -n 's/^[[:space:]]*Card type[[:space:]]*: //p' | head -1; }
bus0=$(bus /dev/video0) bus1=$(bus /dev/video1)
log "/dev/video0: card '$(card /dev/video0)' bus '$bus0'; /dev/video1: card '$(card /dev/video1)' bus '$bus1'"
[ -n "$bus1" ] && [ "$bus0" != "$bus1" ] || fail "the two webcams' bus infos do not tell them apart: '$bus0' '$bus1'"
echo "$bus1" > "$R/camera-bus"
start_tone
MEDIA_SOURCE=v4l2 MEDIA_WIDTH=320 MEDIA_HEIGHT=180 MEDIA_TOML="camera_bus = \"$bus1\"
microphone = \"hw:Loopback,1,0\"" roomrecd_config "$R/roomrec.toml" "$R/storage"
grep -q '^camera = ' "$R/roomrec.toml" && fail "the config names a camera path"
start_roomrecd "$R/roomrec.toml"
wait_file "$R/host.done" 200
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
