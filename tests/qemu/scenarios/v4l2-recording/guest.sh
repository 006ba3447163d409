# shellcheck shell=bash
# Guest side of `v4l2-recording`: vivid (webcam at 320x180, 30 fps) and snd-aloop with a tone,
# roomrecd on source = "v4l2" until the host side is done; then a clean SIGTERM stop.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
load_vivid
webcam_setup /dev/video0
start_tone
start_roomrecd_on_devices
wait_file "$R/host.done" 270
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
