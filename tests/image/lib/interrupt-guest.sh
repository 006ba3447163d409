# shellcheck shell=bash
# Guest side of the interruption scenarios (copied next to guest.sh; $R/interrupt says which).
# Boot 1: the unit runs; when the host says the recordings run, either the agent reboots the
# VM (systemctl reboot: the unit's stop path), the host cuts the power, or (stall) this script
# freezes the capture pipeline through the test build's fault trigger and waits for the
# watchdog to kill roomrecd and systemd to start it again. Boot 2 (or the restart): the unit is
# back; the journal shows how the previous roomrecd ended; the storage goes to the host.
kind=$(cat "$R/interrupt")
expect_unit_running
if [ "$kind" = stall ]; then
  wait_file "$R/interrupt.go" 600
  old_pid=$(unit_prop MainPID)
  # The media actor removes the trigger and blocks the segment writer's pads (src/media/fault.rs).
  touch /var/lib/roomrec/fault-stall-media
  t=$SECONDS
  ok "capture frozen by fault injection (roomrecd pid $old_pid)"
  restarted() {
    local pid
    pid=$(unit_prop MainPID)
    [ "$pid" != 0 ] && [ "$pid" != "$old_pid" ] && [ "$(unit_prop ActiveState)" = active ]
  }
  until restarted; do
    [ $((SECONDS - t)) -lt 300 ] || fail "roomrecd (pid $old_pid) was not restarted within 300 s of the stall"
    sleep 1
  done
  journalctl -b -u roomrec.service -o cat --no-pager > "$R/journal-stall.txt"
  grep -q 'capture stalled' "$R/journal-stall.txt" \
    || fail "roomrecd did not log the stall (capture stalled ... watchdog pings withheld)"
  journalctl -b -u roomrec.service --no-pager | grep -q "Failed with result 'watchdog'" \
    || fail "systemd did not end roomrecd for its watchdog: $(grep -m3 -i 'watchdog\|Failed' "$R/journal-stall.txt")"
  [ "$(unit_prop NRestarts)" -ge 1 ] || fail "NRestarts is $(unit_prop NRestarts) after the watchdog kill"
  ok "$((SECONDS - t)) s after the stall: watchdog timeout, roomrecd killed, restarted (pid $(unit_prop MainPID), NRestarts $(unit_prop NRestarts))"
  expect_unit_running
  touch "$R/restarted"
  wait_file "$R/host.done" 600
  save_storage
  exit 0
fi
if [ "$BOOT" = 1 ]; then
  wait_file "$R/interrupt.go" 600
  if [ "$kind" = reboot ]; then
    echo reboot > "$R/then-$BOOT"
    ok "the recordings run: systemctl reboot (by the agent, after this script)"
    exit 0
  fi
  wait_file "$R/host.done" 600
  fail "the host side finished without cutting the power"
fi
journalctl -b -1 -u roomrec.service -o cat --no-pager > "$R/journal-previous-boot.txt" 2>&1 || true
if [ "$kind" = reboot ]; then
  grep -q 'stop requested' "$R/journal-previous-boot.txt" \
    || fail "the journal of the boot before the reboot has no 'stop requested' from roomrecd"
  journalctl -b -1 -u roomrec.service --no-pager | grep -q 'Deactivated successfully\|Stopped roomrec' \
    || fail "systemd did not stop roomrec.service cleanly before the reboot"
  ok "before the reboot roomrecd got SIGTERM and stopped cleanly: $(grep -c 'segment sealed' "$R/journal-previous-boot.txt") segments sealed in that boot"
else
  ! grep -q 'stop requested' "$R/journal-previous-boot.txt" \
    || fail "roomrecd logged a stop before the power cut: the cut was not a cut"
  ok "ext4 after the power cut: $(dmesg | grep -E 'EXT4-fs \(vda\)' | sed 's/^\[[^]]*\] //' | tr '\n' ' ')"
fi
wait_file "$R/host.done" 600
save_storage
