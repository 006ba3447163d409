# shellcheck shell=bash
# Guest side of `recording`: the unit as systemd runs it, its sandbox as the kernel sees it,
# then (once the host has recorded) the storage for the host; the agent saves the journal.
. "$R/guest-lib.sh"
expect_unit_running
pid=$(unit_prop MainPID)
[ "$(ps -o user= -p "$pid")" = roomrec ] || fail "roomrecd runs as $(ps -o user= -p "$pid"), not roomrec"
groups=$(ps -o supgrp= -p "$pid")
grep -qw video <<<"$groups" && grep -qw audio <<<"$groups" || fail "roomrecd's groups are '$groups', not video and audio"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" || fail "NoNewPrivs is not set"
grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail "no seccomp filter"
grep -q '^CapEff:[[:space:]]*0000000000000000' "/proc/$pid/status" || fail "roomrecd has capabilities: $(grep CapEff "/proc/$pid/status")"
[ "$(unit_prop NRestarts)" = 0 ] || fail "roomrec.service restarted $(unit_prop NRestarts) times"
ok "roomrecd (pid $pid) runs as roomrec with groups $groups, no capabilities, NoNewPrivs, seccomp"
# The daemon opened the real devices through DevicePolicy=closed + DeviceAllow.
ls -l "/proc/$pid/fd" 2>/dev/null | grep -q '/dev/video0' || log "note: /dev/video0 not open right now"
exposure=$(systemd-analyze security roomrec.service 2>/dev/null | grep -o 'Overall exposure level.*' | grep -oE "[0-9]+\.[0-9]+" | sed -n 1p)
ok "systemd-analyze security roomrec.service: ${exposure:-?}"

wait_file "$R/host.done" 600
[ "$(unit_prop NRestarts)" = 0 ] || fail "roomrec.service restarted $(unit_prop NRestarts) times during the recordings"
expect_unit_running
id -u roomrec > "$R/roomrec.uid"
# The daemon's entries are native journal entries: the level as PRIORITY, the fields as
# journal fields one can match on (src/journald.rs), MESSAGE readable as a line.
j() { journalctl -b -u roomrec.service --no-pager -o cat "$@"; }
sealed=$(j ROOMREC_SEQ=2 SYSLOG_IDENTIFIER=roomrecd | grep '^segment sealed seq=2' || true)
[ -n "$sealed" ] || fail "no journal entry with the field ROOMREC_SEQ=2 for segment 2's seal: $(j | grep -m3 'segment sealed')"
j -p info..info | grep -q '^segment sealed seq=' || fail "'segment sealed' is not at priority 6 (info)"
! j -p warning | grep -q '^segment sealed' || fail "'segment sealed' is listed by journalctl -p warning"
rid_fields=$(journalctl -b -u roomrec.service --no-pager -o verbose ROOMREC_SEQ=2 | grep -c '^ *ROOMREC_' || true)
ok "journal: native entries with fields ($rid_fields ROOMREC_* fields on segment 2's seal: $(j ROOMREC_SEQ=2 | head -1)), priorities by level"
save_storage
