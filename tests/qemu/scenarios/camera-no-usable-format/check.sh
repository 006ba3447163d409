# shellcheck shell=bash
# Checks of `camera-no-usable-format`, on the host after the VM: the recording started once the
# camera appeared plays (H.264 320x180 frames decode, the tone); the catalog is intact.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
. "$ROOMREC_QEMU_DIR/lib/catalog.sh"
mp4=$(json_get "$(cat "$R/recordings.json")" 'd["recordings"][0]["location"]')
check_av "$mp4" 320 180 1.5 120 || fail "the MP4 is not right"
ok "MP4: H.264 320x180, frames decode, audio not silent"
check_catalog "$R/storage"
