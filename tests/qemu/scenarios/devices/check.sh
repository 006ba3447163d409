# shellcheck shell=bash
# Host side of `devices`: the guest's capture is H.264 at the size set on vivid, with decodable
# frames, and AAC audio carrying the tone (not the loopback's silence).
. "$ROOMREC_QEMU_DIR/lib/host.sh"
f=$R/devices.mp4
check_av "$f" 320 180 1.5 60 || fail "devices.mp4 is not what the devices should give"
grep -q 'audio/mpeg.*mpegversion=(int)4' <<<"$(gst-discoverer-1.0 -v "$f")" || fail "the audio is not AAC"
frames=$(video_frames "$f")
[ "$frames" -ge 60 ] || fail "only $frames frames decode; 90 were captured"
ok "vivid + snd-aloop capture: H.264 320x180, $frames frames, AAC with the tone"
