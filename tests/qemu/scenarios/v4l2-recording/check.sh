# shellcheck shell=bash
# Checks of `v4l2-recording`: those of `daemon-test-source` at vivid's 320x180, plus the
# camera format roomrecd negotiated and that no device was lost. The emulated devices under
# TCG deliver far less than real time when the machine is busy (3-13 s of media for 14-25 s
# of recording, docs/qemu.md), so only content is required of the length.
MP4_WIDTH=320 MP4_HEIGHT=180 MP4_MIN_S=1.5
extra_checks() {
  # The webcam's 320x180 (the largest picture within the configured 320x180), raw YUYV.
  fmt=$(grep -o 'camera format chosen.*' "$R/roomrecd-1.log" | head -1)
  log "roomrecd: $fmt"
  grep -q 'width=(int)320, height=(int)180' <<<"$fmt" && grep -q 'YUY2\|YUYV' <<<"$fmt" \
    && ok "roomrecd negotiated 320x180 YUYV with vivid" || nok "unexpected camera format: ${fmt:-none logged}"
  if grep -q 'device lost' "$R/roomrecd-1.log"; then
    nok "roomrecd lost a device: $(grep -m1 'device lost' "$R/roomrecd-1.log")"
  fi
}
. "$ROOMREC_QEMU_DIR/scenarios/daemon-test-source/check.sh"
