# shellcheck shell=bash
# Checks of `camera-by-bus`, on the host after the VM: the catalog is intact and every
# catalogued segment present, intact and decodable, H.264 at 320x180 from the chosen camera.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
. "$ROOMREC_QEMU_DIR/lib/catalog.sh"
check_catalog "$R/storage"
