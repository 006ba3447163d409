# shellcheck shell=bash
# Guest side of the interruption scenarios (copied next to guest.sh; $R/interrupt says which).
# Boot 1: the unit runs; when the host says the recordings run, either the agent reboots the
# VM (systemctl reboot: the unit's stop path) or the host cuts the power. Boot 2: the unit is
# back; the previous boot's journal shows how roomrecd ended; the storage goes to the host.
kind=$(cat "$R/interrupt")
expect_unit_running
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
