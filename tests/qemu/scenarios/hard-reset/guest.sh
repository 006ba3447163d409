# shellcheck shell=bash
# Guest side of `hard-reset`. Boot 1: roomrecd records until the host kills the VM (reaching
# the end of this script is a failure: the reset did not happen). Boot 2: roomrecd on the same
# storage until the host side is done, then a clean stop.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
if [ "$ROOMREC_BOOT" = 1 ]; then
  roomrecd_config "$R/roomrec.toml" "$R/storage"
  start_roomrecd "$R/roomrec.toml"
  wait_file "$R/host.done" 220
  fail "the host side finished without hard-resetting this VM"
fi
[ -f "$R/storage/catalog.sqlite3" ] || fail "the storage of the first boot is gone"
start_roomrecd "$R/roomrec.toml"
wait_file "$R/host.done" 220
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died after the reset"
stop_roomrecd
