# shellcheck shell=bash
# Guest side of `daemon-test-source`: roomrecd with its storage on the results share, until
# the host side says it is done; then a clean SIGTERM stop.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
roomrecd_config "$R/roomrec.toml" "$R/storage"
start_roomrecd "$R/roomrec.toml"
wait_file "$R/host.done" 270
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
