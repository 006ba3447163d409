# shellcheck shell=bash
# Host side of `v4l2-recording`: the status shows camera and microphone ok, then the same
# local recording round as `daemon-test-source` (licence, meeting, >= 12 s, meeting end).
after_online() {
  devices_ok() { ctl --json status > "$R/status-before.json" \
    && grep -q '"camera":"ok"' "$R/status-before.json" && grep -q '"microphone":"ok"' "$R/status-before.json"; }
  wait_for 30 "status: camera and microphone ok" devices_ok
  ok "status: camera ok, microphone ok"
}
. "$ROOMREC_QEMU_DIR/scenarios/daemon-test-source/host.sh"
