# shellcheck shell=bash
# Guest side of `hard-reset-campaign`. Every boot: the scenario's disk mounted at /storage (ext4
# on virtio-blk, its journal replayed after a reset), roomrecd on the same storage folder in it
# (config made at boot 1: test source, 4 s segments as in tests/powercut.rs, cloud to the
# host's s3s-fs), and a
# clock sampler that appends the guest's wall clock to $R/clock-BOOT.txt every 0.2 s (a bash
# builtin write, no fork between reading the clock and the write): the host maps the guest's
# clock onto its own from the last line and the file's host-side mtime. The host kills the VM
# at a random moment; only the last boot reaches host.done, then stops roomrecd cleanly.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
storage=/storage/roomrec
mount_disk /storage
if [ "$ROOMREC_BOOT" = 1 ]; then
  roomrecd_config "$R/roomrec.toml" "$storage" "[upload]
endpoint = \"$ROOMREC_S3_URL\"
bucket = \"$ROOMREC_S3_BUCKET\"
region = \"us-east-1\"
path_style = true
access_key_id = \"$ROOMREC_S3_ACCESS_KEY\"
secret_access_key = \"$ROOMREC_S3_SECRET_KEY\""
  sed -i 's/^segment_seconds = 1$/segment_seconds = 4/' "$R/roomrec.toml"
  grep -q '^segment_seconds = 4$' "$R/roomrec.toml" || fail "could not set segment_seconds = 4"
  "$ROOMREC_BIN/roomrecd" --check-config --config "$R/roomrec.toml" || fail "roomrecd rejects $R/roomrec.toml"
else
  [ -f "$storage/catalog.sqlite3" ] || fail "the storage of the previous boot is gone"
fi
clock=$R/clock-$ROOMREC_BOOT.txt
( while :; do echo "$EPOCHREALTIME" >> "$clock"; sleep 0.2; done ) &
CLOCK_PID=$!
start_roomrecd "$R/roomrec.toml"
wait_file "$R/host.done" 220
kill "$CLOCK_PID" 2>/dev/null || true
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died after the last reset"
stop_roomrecd
umount /storage || fail "cannot unmount /storage after roomrecd stopped"
