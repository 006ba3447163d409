# shellcheck shell=bash
# Guest side of `no-microphone-at-boot`: vivid (320x180 at 30 fps), roomrecd on v4l2 with
# microphone = hw:Loopback,1,0 while snd-aloop is not loaded; when the host writes
# $R/load-microphone, modprobe snd-aloop and play the tone, then $R/microphone-loaded.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
[ ! -e /proc/asound/Loopback ] || fail "snd-aloop is loaded before the scenario loads it"
load_vivid
webcam_setup /dev/video0
start_roomrecd_on_devices
wait_file "$R/load-microphone" 200
start_tone
touch "$R/microphone-loaded"
wait_file "$R/host.done" 220
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
