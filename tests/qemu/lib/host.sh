# shellcheck shell=bash
# Sourced by a scenario's host.sh and check.sh (on the host). The environment comes from
# tests/qemu/run: ROOMREC_RESULTS (the results folder, also mounted in the guest at the same
# path), ROOMREC_BOOT, ROOMREC_BIN, ROOMREC_BROKER_URL, ROOMREC_QEMU_PIDFILE.
set -euo pipefail
. "$ROOMREC_QEMU_DIR/lib/media.sh"
R=$ROOMREC_RESULTS
DEVICE=${DEVICE:-room-qemu}

log() { echo "[host $(date +%T.%3N)] $*"; }
fail() { log "FAIL: $*"; exit 1; }
ok() { log "ok: $*"; }

# roomrecctl against the private broker; every call is bounded (CTL_TIMEOUT seconds for the
# device's answer, default 15).
ctl() {
  local sign=()
  # Admin commands are signed with the run's key (tests/qemu/run makes it).
  case " $* " in *" admin:"*) sign=(--key-file "$R/admin.key") ;; esac
  timeout -k 2 60 "$ROOMREC_BIN/roomrecctl" --broker "$ROOMREC_BROKER_URL" --device "$DEVICE" \
    --timeout "${CTL_TIMEOUT:-15}" "${sign[@]}" "$@"
}

# guest_alive: fails at once when the guest script has already ended (its exit code is in
# guest.rc), instead of waiting for something that cannot come any more.
guest_alive() {
  [ ! -e "$R/guest.rc" ] || fail "the guest script ended (exit $(cat "$R/guest.rc")): see guest.log"
}

# wait_online SECONDS: until the device's retained status says online (roomrecd connected
# through the guestfwd). Clear a stale retained status first with clear_status.
wait_online() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    guest_alive
    if grep -q '"online":true' <<<"$(CTL_TIMEOUT=3 ctl --json status 2>/dev/null)"; then return 0; fi
    sleep 1
  done
  fail "roomrecd did not come online within $1 s"
}

# clear_status: removes the retained status, so that wait_online sees only a fresh one.
clear_status() {
  mosquitto_pub -L "${ROOMREC_BROKER_URL%/}/roomrec/v1/$DEVICE/status" -r -n -q 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every half second.
wait_for() {
  local secs=$1 deadline=$((SECONDS + $1)) what=$2
  shift 2
  while [ $SECONDS -lt $deadline ]; do
    if "$@"; then return 0; fi
    guest_alive
    sleep 0.5
  done
  fail "timed out after $secs s waiting for $what"
}

# guest_done: tells the guest script that the host side is finished (it waits for this).
guest_done() { touch "$R/host.done"; }

# vm_hard_reset: kills QEMU at once, as a power cut would end the guest. run treats the VM's
# missing exit code as planned.
vm_hard_reset() {
  local pid
  pid=$(cat "$ROOMREC_QEMU_PIDFILE")
  touch "$R/vm-killed-by-host"
  kill -KILL "$pid"
  log "hard reset: killed QEMU (pid $pid)"
}

# json_get JSON PYTHON_EXPR: evaluates an expression over the document `d`.
json_get() {
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}
