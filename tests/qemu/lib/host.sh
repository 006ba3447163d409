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

# join_demo_meeting [MEETING_JSON]: the licence and demo/meeting.json (or a variant of it
# with the same meeting id), once the device has applied them.
join_demo_meeting() {
  ctl licence set --valid-until 2099-01-01T00:00:00Z
  ctl meeting set "${1:-$ROOMREC_REPO/demo/meeting.json}"
  meeting_applied() { grep -q '"meeting_id":"m-demo"' <<<"$(ctl --json status)"; }
  wait_for 30 "the meeting to be applied" meeting_applied
}

# health CAMERA MICROPHONE: the device's status says exactly these healths (ok, missing or
# error); the status document stays in $R/status.json for the messages.
health() {
  ctl --json status > "$R/status.json" && grep -q "\"camera\":\"$1\"" "$R/status.json" \
    && grep -q "\"microphone\":\"$2\"" "$R/status.json"
}

# expect_start_refused WHAT: alice's local start is refused with device_unavailable naming
# WHAT (camera or microphone) with what status says of it ("missing": "is missing", "error":
# "is present but unusable"), and not naming the other device, which is there.
expect_start_refused() {
  local what=$1 other=camera rc=0 reply health why
  [ "$what" = camera ] && other=microphone
  health=$(ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"][sys.argv[1]])' "$what") \
    || fail "no $what health in the status"
  case $health in
    missing) why="is missing" ;;
    error) why="is present but unusable" ;;
    *) fail "status says the $what is $health, but a start should be refused" ;;
  esac
  reply=$(ctl --json send start --as alice kind=local) || rc=$?
  echo "$reply" > "$R/start-refused.json"
  [ $rc -ne 0 ] || fail "start succeeded without a $what: $reply"
  grep -q 'device_unavailable' <<<"$reply" || fail "start refused, but not with device_unavailable: $reply"
  grep -qi "$what $why" <<<"$reply" || fail "the device_unavailable answer does not say the $what $why: $reply"
  ! grep -qi "$other" <<<"$reply" || fail "the device_unavailable answer names the $other, which is there: $reply"
  ok "start without a usable $what: $reply"
}

# record_local_until_ready: alice records locally past the L4 minimum (shorter local
# recordings are discarded at meeting end: 12.5 s, and 3 segments sealed), the meeting
# ends, and the recording must be converted (ready).
record_local_until_ready() {
  local reply rid
  reply=$(ctl --json send start --as alice kind=local) || fail "start was refused: $reply"
  rid=$(json_get "$reply" 'd["state"]["local"][0]["recording_id"]')
  ok "local recording $rid started"
  recorded_ms() { ctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(max([l["recorded_ms"] for l in d["state"]["local"]] or [0]))'; }
  sealed_count() { grep -c 'INFO segment sealed seq=' "$R/roomrecd-1.log" || true; }
  long_enough() { [ "$(recorded_ms)" -ge 12500 ] && [ "$(sealed_count)" -ge 3 ]; }
  wait_for 90 "12.5 s of recording and 3 segments sealed" long_enough
  ok "recorded $(recorded_ms) ms, $(sealed_count) segments sealed"
  ctl meeting set "$ROOMREC_REPO/demo/meeting-ended.json"
  ready() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" && grep -q '"state":"ready"' "$R/recordings.json"; }
  settled() { ctl --json send list_recordings --as admin:ci > "$R/recordings.json" \
    && grep -Eq '"state":"(ready|needs_finalize|discarded)"' "$R/recordings.json"; }
  wait_for 200 "the recording to be converted" settled
  ready || fail "the recording did not become ready: $(cat "$R/recordings.json")"
  ok "conversion finished: $(json_get "$(cat "$R/recordings.json")" 'd["recordings"][0]["location"]')"
}

# WATERMARK: the text the scenarios that check the video watermark ask for (capitals and a
# short word: what tesseract reads reliably at the sizes the device draws).
WATERMARK="ACME ROOM"

# watermarked_demo_meeting: writes $R/meeting-watermarked.json, demo/meeting.json asking for
# a single-row video watermark of $WATERMARK (W1: every tier), and prints its path.
watermarked_demo_meeting() {
  python3 - "$ROOMREC_REPO/demo/meeting.json" "$WATERMARK" > "$R/meeting-watermarked.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["settings"] = {"watermark": {"video": "single", "text": sys.argv[2]}}
print(json.dumps(m))
PY
  echo "$R/meeting-watermarked.json"
}

# reads_watermark MP4 AT_S: tesseract finds $WATERMARK in the frame ffmpeg takes at AT_S s of
# MP4 (three times the size, grey, negated: dark text on light, as the daemon tests read it).
reads_watermark() {
  local png=$R/ocr-$2.png text
  ffmpeg -v error -y -ss "$2" -i "$1" -frames:v 1 \
    -vf "scale=iw*3:ih*3:flags=lanczos,format=gray,negate" "$png" || return 1
  text=$(tesseract "$png" stdout --psm 11 -l eng -c thresholding_method=1 2>/dev/null \
    | tr -cd '[:alnum:]' | tr '[:lower:]' '[:upper:]')
  log "OCR at $2 s: $text"
  [[ $text == *"${WATERMARK// /}"* ]]
}
