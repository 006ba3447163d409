# shellcheck shell=bash
# Sourced by a scenario's guest.sh in the room image (copied next to it as guest-lib.sh):
# run as root by the agent (tests/image/guest/agent) once roomrec.service is up or failed.
# R is the results folder shared with the host (/run/roomrec-test).
set -euo pipefail
R=${ROOMREC_RESULTS:-/run/roomrec-test}
. "$R/job.env"
BOOT=$ROOMREC_BOOT
T0=$(date +%s.%N)
log() { echo "[guest $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%6.1f", b - a}')s] $*"; }
fail() { log "FAIL: $*"; exit 1; }
ok() { log "ok: $*"; }

# wait_file PATH SECONDS: until PATH exists (the host side writes it through the share).
wait_file() {
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    [ -e "$1" ] && return 0
    sleep 0.5
  done
  fail "timed out after $2 s waiting for $1"
}

# unit_prop NAME: a property of roomrec.service (systemctl show).
unit_prop() { systemctl show -P "$1" roomrec.service; }

# expect_unit_running: the unit is active (running), it sent READY=1 (Type=notify: "active"
# is only reached through READY=1), and `systemctl status` shows its STATUS= line.
expect_unit_running() {
  local st status
  # systemctl status exits non-zero unless the unit is active: read its output first.
  status=$(systemctl status --no-pager roomrec.service 2>&1 || true)
  [ "$(unit_prop ActiveState)/$(unit_prop SubState)" = active/running ] \
    || fail "roomrec.service is $(unit_prop ActiveState)/$(unit_prop SubState): $(head -20 <<<"$status")"
  [ "$(unit_prop Type)" = notify ] || fail "roomrec.service is Type=$(unit_prop Type), not notify"
  st=$(unit_prop StatusText)
  [ -n "$st" ] || fail "roomrec.service has no STATUS= text"
  # (STATUS= may change between the two reads: any non-empty Status line counts.)
  grep -q 'Status: "[^"]' <<<"$status" \
    || fail "systemctl status does not show STATUS=: $(head -8 <<<"$status")"
  ok "roomrec.service active/running after READY=1, pid $(unit_prop MainPID), status \"$st\""
}

# save_storage: stops roomrec.service (its stop path seals the open segment) and copies
# /var/lib/roomrec to $R/storage for the host's checks.
save_storage() {
  systemctl stop roomrec.service
  [ "$(unit_prop Result)" = success ] || fail "roomrec.service stopped with result $(unit_prop Result)"
  rm -rf "$R/storage"
  cp -a /var/lib/roomrec "$R/storage"
  sync
  ok "roomrec.service stopped cleanly; /var/lib/roomrec copied to the host ($(du -sh /var/lib/roomrec | cut -f1))"
}
