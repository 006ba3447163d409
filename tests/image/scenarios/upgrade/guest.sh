# shellcheck shell=bash
# Guest side of `upgrade`: once the host says the recording runs, dpkg -i of the newer
# package; then the unit must be running the new package, restarted once (not failed).
. "$R/guest-lib.sh"
expect_unit_running
old_pid=$(unit_prop MainPID)
old_version=$(dpkg-query -W -f='${Version}' roomrec)
wait_file "$R/upgrade.go" 900
deb=$(ls "$R"/roomrec_*.deb)
log "dpkg -i $(basename "$deb") (installed: $old_version, roomrecd pid $old_pid)"
t=$SECONDS
dpkg -i "$deb" > "$R/dpkg-upgrade.log" 2>&1 || fail "dpkg -i failed: $(tail -5 "$R/dpkg-upgrade.log")"
new_version=$(dpkg-query -W -f='${Version}' roomrec)
[ "$new_version" != "$old_version" ] || fail "the version is still $old_version after dpkg -i"
ok "dpkg -i took $((SECONDS - t)) s: roomrec $old_version -> $new_version"
new_pid=$(unit_prop MainPID)
[ "$new_pid" != "$old_pid" ] || fail "roomrecd was not restarted (pid $old_pid)"
expect_unit_running
# The old daemon stopped through its stop path (SIGTERM), not killed.
journalctl -b -u roomrec.service -o cat --no-pager _PID="$old_pid" > "$R/journal-old-daemon.txt"
grep -q 'stop requested' "$R/journal-old-daemon.txt" || fail "the old roomrecd did not log its stop"
! journalctl -b -u roomrec.service --no-pager | grep -q 'Killing process\|SIGKILL\|Failed with result' \
  || fail "systemd killed or failed the unit during the upgrade: $(journalctl -b -u roomrec.service --no-pager | grep -m1 'Killing\|SIGKILL\|Failed with')"
ok "the old roomrecd (pid $old_pid) stopped by SIGTERM, the new one (pid $new_pid) is up"
touch "$R/upgraded"
wait_file "$R/host.done" 900
save_storage
