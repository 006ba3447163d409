# shellcheck shell=bash
# Catalog checks on the host (sourced after host.sh).

# check_catalog STORAGE: PRAGMA integrity_check is ok, and every catalogued segment that was
# not released on purpose exists, has the catalogued size and SHA-256, and decodes.
check_catalog() {
  local st=$1 db=$1/catalog.sqlite3 ic n=0 seq path bytes sha
  [ -f "$db" ] || fail "no catalog at $db"
  ic=$(sqlite3 "$db" "PRAGMA integrity_check" 2>&1) || fail "sqlite3 cannot open $db: $ic"
  [ "$ic" = ok ] || fail "catalog integrity_check: $ic"
  ok "catalog integrity_check: ok"
  while IFS='|' read -r seq path bytes sha; do
    [ -f "$st/$path" ] || fail "catalogued segment $seq ($path) is missing"
    [ "$(stat -c %s "$st/$path")" = "$bytes" ] || fail "segment $path: $(stat -c %s "$st/$path") bytes, catalog says $bytes"
    [ "$(sha256sum "$st/$path" | cut -d' ' -f1)" = "$sha" ] || fail "segment $path: SHA-256 differs from the catalog"
    [ "$(video_frames "$st/$path")" -gt 0 ] || fail "segment $path does not decode"
    n=$((n + 1))
  done < <(sqlite3 "$db" "SELECT seq, path, bytes, sha256 FROM segments WHERE released_at IS NULL ORDER BY seq")
  ok "$n catalogued segments present, intact (size, SHA-256) and decodable"
}
