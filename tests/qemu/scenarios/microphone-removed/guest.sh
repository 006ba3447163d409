# shellcheck shell=bash
# Guest side of `microphone-removed`: vivid + snd-aloop with a tone, roomrecd on v4l2. When the
# host writes $R/remove-microphone: `rmmod snd-aloop` (refused while roomrecd has the PCM open),
# then the platform device is unbound from snd_aloop through sysfs (the card goes away under
# the open files, as a USB unplug does) and rmmod retried. How it went: $R/microphone-removed.
# When the host writes $R/restore-microphone: bind again (or modprobe), tone again,
# $R/microphone-restored.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
load_vivid
webcam_setup /dev/video0
start_tone
start_roomrecd_on_devices

wait_file "$R/remove-microphone" 200
dev=""
if out=$(rmmod snd-aloop 2>&1); then
  how="rmmod snd-aloop succeeded at once"
else
  log "rmmod snd-aloop refused: $out"
  dev=$(basename "$(readlink -f /sys/class/sound/card*/device 2>/dev/null | grep -m1 snd_aloop)")
  [ -n "$dev" ] || dev=snd_aloop.0
  echo "$dev" > /sys/bus/platform/drivers/snd_aloop/unbind || fail "cannot unbind $dev from snd_aloop"
  log "unbound $dev from snd_aloop (cards now: $(tr '\n' ' ' < /proc/asound/cards))"
  sleep 3
  { echo "roomrecd's open sound files 3 s after the unbind:"
    for f in /proc/"$ROOMRECD_PID"/fd/*; do
      l=$(readlink "$f" 2>/dev/null || true)
      case $l in /dev/snd/*) echo "fd ${f##*/} -> $l" ;; esac
    done
  } > "$R/holders-after-unbind.txt" 2>&1
  for _ in $(seq 10); do rmmod snd-aloop 2>/dev/null && break; sleep 0.5; done
  if lsmod | grep -q '^snd_aloop '; then
    how="rmmod refused ($out); unbound $dev through sysfs; the module was still in use 8 s later"
  else
    how="rmmod refused ($out); unbound $dev through sysfs, then rmmod succeeded"
  fi
fi
stop_tone
[ ! -e /proc/asound/Loopback ] || fail "the Loopback card still exists after the removal"
log "microphone removed: $how"
echo "$how" > "$R/microphone-removed"

wait_file "$R/restore-microphone" 200
if lsmod | grep -q '^snd_aloop '; then
  echo "$dev" > /sys/bus/platform/drivers/snd_aloop/bind || fail "cannot bind $dev to snd_aloop again"
  log "bound $dev to snd_aloop again"
fi
start_tone   # modprobes snd-aloop if it was removed
log "microphone back: $(tr '\n' ' ' < /proc/asound/cards)"
tr '\n' ' ' < /proc/asound/cards > "$R/cards-after-restore.txt"
touch "$R/microphone-restored"

wait_file "$R/host.done" 220
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
