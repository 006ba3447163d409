# shellcheck shell=bash
# Checks of `hard-reset-campaign`, on the host after the last VM (roomrecd stopped cleanly):
# the catalog is intact and every catalogued segment present, intact and decodable; no
# segment sealed before any reset is gone; every reset has its figures.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
. "$ROOMREC_QEMU_DIR/lib/catalog.sh"
# The disk as the last VM left it (roomrecd stopped, /storage unmounted), copied out.
read -r st fs_state < <(python3 "$(dirname "${BASH_SOURCE[0]}")/campaign.py" export "$R/final") \
  || fail "cannot read the storage off the disk"
ok "the disk after the last VM: $fs_state"
check_catalog "$st"
python3 - "$R/checked.json" "$st/catalog.sqlite3" <<'PY' || fail "a segment sealed before a reset is gone"
import json, sqlite3, sys
checked = json.load(open(sys.argv[1]))
now = dict((str(s), h) for s, h in sqlite3.connect(sys.argv[2]).execute("SELECT seq, sha256 FROM segments"))
gone = [s for s, h in checked.items() if now.get(s) != h]
print(f"  {len(checked)} segments sealed before the resets, {len(gone)} gone or changed {gone}")
sys.exit(1 if gone else 0)
PY
resets=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$R/figures.json")
want=${ROOMREC_RESETS:-3}
[ "$resets" = "$want" ] || fail "figures for $resets resets, $want planned"
ok "every segment sealed before a reset is still catalogued with its SHA-256; figures for $resets resets"
ok "$(head -1 "$R/summary.txt")"
