# shellcheck shell=bash
# Guest side of `invalid-config`.
. "$R/guest-lib.sh"
[ "$(unit_prop ActiveState)" = failed ] || fail "roomrec.service is $(unit_prop ActiveState), not failed"
[ "$(unit_prop ExecMainStatus)" = 78 ] || fail "roomrecd exited with $(unit_prop ExecMainStatus), not 78"
[ "$(unit_prop Result)" = exit-code ] || fail "the unit's result is $(unit_prop Result), not exit-code"
ok "roomrec.service failed: exit status 78, result exit-code"
# Restart=on-failure would restart after RestartSec=3s: wait well past it.
sleep 12
[ "$(unit_prop ActiveState)" = failed ] || fail "roomrec.service left the failed state: $(unit_prop ActiveState)"
[ "$(unit_prop NRestarts)" = 0 ] || fail "systemd restarted roomrecd $(unit_prop NRestarts) times"
ok "12 s later still failed, 0 restarts (RestartPreventExitStatus=78)"
msg=$(journalctl -b -u roomrec.service -o cat --no-pager)
echo "$msg" | sed 's/^/  journal: /'
grep -q 'configuration is invalid' <<<"$msg" || fail "the journal does not say the configuration is invalid"
grep -q 'framerate' <<<"$msg" || fail "the journal does not name the wrong key (media.framerate)"
ok "the journal names the problem: $(grep -m1 framerate <<<"$msg")"
# (systemctl status exits 3 for a failed unit: read its output first.)
status=$(systemctl status --no-pager roomrec.service 2>&1 || true)
grep -q 'status=78' <<<"$status" || fail "systemctl status does not show status=78: $status"
ok "systemctl status shows the exit: $(grep -m1 'Main PID' <<<"$status" | sed 's/^ *//')"
# The operator fixes the file and restarts.
install -m 0640 -o root -g roomrec "$R/roomrec-valid.toml" /etc/roomrec/roomrec.toml
systemctl restart roomrec.service || fail "the restart after the fix failed: $(systemctl status --no-pager roomrec.service | tail -5)"
expect_unit_running
ok "after fixing the configuration, systemctl restart brings roomrec.service up"
