# shellcheck shell=bash
# Guest side of `no-camera-at-boot`: snd-aloop with a tone, roomrecd on v4l2 with camera =
# /dev/video0 while vivid is not loaded; when the host writes $R/load-camera, modprobe vivid
# (rate set) and $R/camera-loaded.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
[ ! -e /dev/video0 ] || fail "/dev/video0 exists before vivid is loaded"
start_tone
start_roomrecd_on_devices
wait_file "$R/load-camera" 200
load_vivid
v4l2-ctl -d /dev/video0 --set-parm=30 >/dev/null 2>&1 || log "v4l2-ctl --set-parm refused (roomrecd already has the node)"
touch "$R/camera-loaded"
wait_file "$R/host.done" 220
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
