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
# frames, 1 s segments), its broker the host's through the guestfwd.
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
source = "test"
segment_seconds = 1
width = 320
height = 240
framerate = 15
video_bitrate_kbps = 300

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
