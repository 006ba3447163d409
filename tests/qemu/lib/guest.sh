# shellcheck shell=bash
# Sourced by a scenario's guest.sh (in the guest). The environment comes from job.env:
# ROOMREC_RESULTS (writable, same path as on the host), ROOMREC_BOOT, ROOMREC_BIN,
# ROOMREC_BROKER_URL (the host's loopback broker through the guestfwd), GST_REGISTRY.
set -euo pipefail
R=$ROOMREC_RESULTS
DEVICE=${DEVICE:-room-qemu}
T0=$(date +%s.%N)

log() { echo "[guest $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%6.1f", b - a}')s] $*"; }
fail() { log "FAIL: $*"; exit 1; }

# wait_file PATH SECONDS: until PATH exists (written by the host side through the share).
wait_file() {
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    [ -e "$1" ] && return 0
    sleep 0.5
  done
  fail "timed out after $2 s waiting for $1"
}

# roomrecd_config FILE STORAGE [EXTRA_TOML]: the daemon's config for the test source (small
# frames, 1 s segments), its broker the host's through the guestfwd. For real devices:
# MEDIA_SOURCE=v4l2, MEDIA_WIDTH/MEDIA_HEIGHT/MEDIA_FPS (default 320x240@15) and MEDIA_TOML
# (lines inside [media], e.g. camera = "/dev/video0"); EXTRA_TOML goes after [log].
roomrecd_config() {
  cat > "$1" <<TOML
device_id = "$DEVICE"

[mqtt]
url = "$ROOMREC_BROKER_URL"
keep_alive_s = 10
reconnect_max_s = 2

[storage]
dir = "$2"

[media]
source = "${MEDIA_SOURCE:-test}"
segment_seconds = 1
width = ${MEDIA_WIDTH:-320}
height = ${MEDIA_HEIGHT:-240}
framerate = ${MEDIA_FPS:-15}
video_bitrate_kbps = 300
${MEDIA_TOML:-}

[auth.admin_keys]
ci = "$(cat "$R/admin.pub")"

[log]
level = "info,roomrec=debug"

${3:-}
TOML
  "$ROOMREC_BIN/roomrecd" --check-config --config "$1" || fail "roomrecd rejects its config $1"
}

# start_roomrecd CONFIG: starts the daemon in the background (ROOMRECD_PID), logging to
# $R/roomrecd-<boot>.log.
start_roomrecd() {
  GST_DEBUG=${GST_DEBUG:-1} "$ROOMREC_BIN/roomrecd" --config "$1" \
    </dev/null >>"$R/roomrecd-$ROOMREC_BOOT.log" 2>&1 &
  ROOMRECD_PID=$!
  log "roomrecd started (pid $ROOMRECD_PID)"
}

# stop_roomrecd: SIGTERM and wait up to 60 s; fails when it does not stop or exits non-zero.
stop_roomrecd() {
  kill -TERM "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd was no longer running"
  for _ in $(seq 120); do
    kill -0 "$ROOMRECD_PID" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$ROOMRECD_PID" 2>/dev/null; then
    kill -KILL "$ROOMRECD_PID"
    fail "roomrecd did not stop within 60 s of SIGTERM"
  fi
  local rc=0
  wait "$ROOMRECD_PID" || rc=$?
  [ $rc -eq 0 ] || fail "roomrecd exited with $rc after SIGTERM"
  log "roomrecd stopped cleanly"
}

# mount_disk DIR: the scenario's disk (DISK_MB, /dev/vda: ext4) mounted at DIR as a device's
# storage would be: default options, so ext4 replays its journal after a hard reset.
mount_disk() {
  modprobe virtio_blk 2>/dev/null || true
  modprobe ext4 2>/dev/null || true
  for _ in $(seq 20); do [ -b /dev/vda ] && break; sleep 0.5; done
  [ -b /dev/vda ] || fail "no /dev/vda: does the scenario set DISK_MB?"
  mkdir -p "$1"
  mount -t ext4 /dev/vda "$1" || fail "cannot mount /dev/vda (ext4) at $1: $(dmesg | tail -3)"
  log "disk /dev/vda mounted at $1: $(dmesg | grep -E 'EXT4-fs \(vda\)' | tail -2 | sed 's/^\[[^]]*\] //' | tr '\n' ' ')"
}

# --- real devices (vivid, snd-aloop) -------------------------------------------------------

# start_roomrecd_on_devices: roomrecd on source = "v4l2" with vivid's /dev/video0 and
# snd-aloop's hw:Loopback,1,0 (whether they are there yet is the scenario's business), output
# 320x180, storage $R/storage, config $R/roomrec.toml.
start_roomrecd_on_devices() {
  MEDIA_SOURCE=v4l2 MEDIA_WIDTH=320 MEDIA_HEIGHT=180 MEDIA_TOML='camera = "/dev/video0"
microphone = "hw:Loopback,1,0"' roomrecd_config "$R/roomrec.toml" "$R/storage"
  start_roomrecd "$R/roomrec.toml"
}

# load_vivid [MODPROBE_ARGS...]: modprobe vivid and wait (bounded) for /dev/video0.
load_vivid() {
  modprobe vivid "$@" || fail "modprobe vivid $*"
  for _ in $(seq 20); do [ -e /dev/video0 ] && break; sleep 0.5; done
  [ -e /dev/video0 ] || fail "vivid made no /dev/video0"
  log "vivid loaded ($*): $(cd /dev && echo video*)"
}

# webcam_setup DEV: vivid's webcam input at 320x180 YUYV, 30 fps (its default is 5 fps).
webcam_setup() {
  v4l2-ctl -d "$1" --set-fmt-video=width=320,height=180,pixelformat=YUYV --set-parm=30 >/dev/null \
    || fail "v4l2-ctl could not set 320x180 YUYV at 30 fps on $1"
  log "$1: $(v4l2-ctl -d "$1" --get-fmt-video --get-parm | grep -E 'Width/Height|Frames per second' | tr -s ' \t\n' ' ')"
}

# start_tone: snd-aloop loaded and a 440 Hz tone played into hw:Loopback,0,0 (TONE_PID) for up
# to 280 s, so that roomrecd's microphone hw:Loopback,1,0 hears it (the loopback is silent
# otherwise).
start_tone() {
  modprobe snd-aloop || fail "modprobe snd-aloop"
  for _ in $(seq 20); do [ -e /proc/asound/Loopback ] && break; sleep 0.5; done
  [ -e /proc/asound/Loopback ] || fail "snd-aloop made no Loopback card"
  timeout 280 gst-launch-1.0 -q audiotestsrc wave=sine freq=440 volume=0.5 is-live=true \
    ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! alsasink device=hw:Loopback,0,0 \
    >"$R/tone.log" 2>&1 &
  TONE_PID=$!
  sleep 1
  kill -0 "$TONE_PID" 2>/dev/null || fail "the tone player died: $(cat "$R/tone.log")"
  log "tone playing into hw:Loopback,0,0 (pid $TONE_PID)"
}

# stop_tone: ends the tone player.
stop_tone() {
  kill "$TONE_PID" 2>/dev/null || true
  wait "$TONE_PID" 2>/dev/null || true
}
