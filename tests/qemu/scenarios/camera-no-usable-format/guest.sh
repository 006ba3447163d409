# shellcheck shell=bash
# Guest side of `camera-no-usable-format`: snd-aloop with the tone, vivid multiplanar=2 (one
# webcam node, /dev/video0); roomrecd on v4l2 with camera = /dev/video0. When the host writes
# $R/replace-camera: rmmod vivid (retried: roomrecd's health check opens the node for a moment
# every tick), modprobe vivid single-planar, rate set, then $R/camera-replaced.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
[ ! -e /dev/video0 ] || fail "/dev/video0 exists before vivid is loaded"
start_tone
load_vivid n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0 multiplanar=2
v4l2-ctl -d /dev/video0 --info > "$R/camera-before.txt" 2>&1 || true
grep -q 'Video Capture Multiplanar' "$R/camera-before.txt" || fail "vivid multiplanar=2 is not multi-planar: $(cat "$R/camera-before.txt")"
if grep -Eq '^[[:space:]]+Video Capture$' "$R/camera-before.txt"; then fail "vivid multiplanar=2 also offers single-planar capture"; fi
v4l2-ctl -d /dev/video0 --list-formats > "$R/formats-before.txt" 2>&1 || true
log "/dev/video0 before: multi-planar only; $(grep -c "'" "$R/formats-before.txt") formats listed by v4l2-ctl"
start_roomrecd_on_devices
wait_file "$R/replace-camera" 200
removed=0
for _ in $(seq 20); do
  if rmmod vivid 2>/dev/null; then removed=1; break; fi
  sleep 0.5
done
[ $removed = 1 ] || fail "rmmod vivid refused for 10 s"
load_vivid n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0 multiplanar=1
webcam_setup /dev/video0
touch "$R/camera-replaced"
wait_file "$R/host.done" 220
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
