# shellcheck shell=bash
# Guest side of `devices`: load vivid and snd-aloop, play a tone into the loopback's
# playback side, and capture camera + microphone with gst-launch-1.0 into an MP4.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"

log "kernel $(uname -r)"
modprobe vivid || fail "modprobe vivid"
modprobe snd-aloop || fail "modprobe snd-aloop"
for _ in $(seq 20); do [ -e /dev/video0 ] && [ -e /proc/asound/Loopback ] && break; sleep 0.5; done
[ -e /dev/video0 ] || fail "vivid made no /dev/video0"
[ -e /proc/asound/Loopback ] || fail "snd-aloop made no Loopback card"
ls /dev/video* /dev/snd/ | tr '\n' ' '; echo
v4l2-ctl -d /dev/video0 --info --list-inputs | grep -E 'Driver name|Card type|Input' || true

# vivid's webcam input defaults to 5 fps: set the size and the rate first.
v4l2-ctl -d /dev/video0 --set-fmt-video=width=320,height=180,pixelformat=YUYV --set-parm=30 \
  || fail "v4l2-ctl could not set 320x180 YUYV at 30 fps"
v4l2-ctl -d /dev/video0 --get-fmt-video --get-parm | grep -E 'Width/Height|Pixel Format|Frames per second'

# snd-aloop is silent unless something plays into its other side (same format both sides).
caps='audio/x-raw,format=S16LE,rate=48000,channels=2'
timeout 120 gst-launch-1.0 -q audiotestsrc wave=sine freq=440 volume=0.5 is-live=true \
  ! "$caps" ! alsasink device=hw:Loopback,0,0 >"$R/tone.log" 2>&1 &
tone=$!
sleep 1
kill -0 $tone 2>/dev/null || fail "the tone player died: $(cat "$R/tone.log")"

# Every live branch has its own end (num-buffers): 90 frames at 30 fps, 300 x 10 ms of audio.
# Unbounded queues right after the sources keep the capture threads from blocking on the slow
# (emulated) encoders, so that alsasrc does not drop samples; audiorate keeps the audio
# timestamps continuous for the muxer.
log "capturing"
q='queue max-size-buffers=0 max-size-bytes=0 max-size-time=0'
timeout 120 gst-launch-1.0 -e \
  v4l2src device=/dev/video0 num-buffers=90 ! video/x-raw,width=320,height=180,framerate=30/1 \
    ! $q ! videoconvert ! x264enc speed-preset=ultrafast tune=zerolatency bitrate=300 key-int-max=30 \
    ! h264parse ! queue ! mp4mux name=mux ! filesink location="$R/devices.mp4" \
  alsasrc device=hw:Loopback,1,0 num-buffers=300 buffer-time=500000 latency-time=10000 ! "$caps" \
    ! $q ! audiorate ! audioconvert ! avenc_aac ! aacparse ! queue ! mux. \
  >"$R/capture.log" 2>&1 || { tail -20 "$R/capture.log"; fail "gst-launch-1.0 capture failed"; }
kill $tone 2>/dev/null || true
wait $tone 2>/dev/null || true
[ -s "$R/devices.mp4" ] || fail "no devices.mp4"
log "captured $(stat -c %s "$R/devices.mp4") bytes"
