# shellcheck shell=bash
# The run's valid configuration is kept for the fix; the one the guest boots with has a frame
# rate out of range (media.framerate: 1-60).
cp "$R/roomrec.toml" "$R/roomrec-valid.toml"
sed -i 's/^framerate = 15$/framerate = 500/' "$R/roomrec.toml"
! "$ROOMREC_BIN/roomrecd" --check-config --config "$R/roomrec.toml" >/dev/null 2>&1 \
  || { echo "config.sh: the broken configuration is accepted" >&2; exit 2; }
