# shellcheck shell=bash
# Guest side of `camera-removed`: vivid + snd-aloop with a tone, roomrecd on v4l2. When the host
# writes $R/remove-camera: `rmmod vivid`. While roomrecd has the node open the module is in use
# and rmmod is refused; a USB unplug cannot be refused, so the device is then unbound from its
# driver through sysfs (what an unplug does: the node goes away under the open file), and the
# module removed once roomrecd let go of it. How it went is written to $R/camera-removed.
# When the host writes $R/restore-camera: modprobe vivid again (rate set), $R/camera-restored.
. "$ROOMREC_QEMU_DIR/lib/guest.sh"
load_vivid
webcam_setup /dev/video0
start_tone
start_roomrecd_on_devices

wait_file "$R/remove-camera" 200
ls -l /proc/"$ROOMRECD_PID"/fd > "$R/fds-before-removal.txt" 2>&1 || true
how=""
if out=$(rmmod vivid 2>&1); then
  how="rmmod vivid succeeded at once"
else
  log "rmmod vivid refused: $out"
  dev=$(basename "$(readlink -f /sys/class/video4linux/video0/device)")
  echo "$dev" > /sys/bus/platform/drivers/vivid/unbind || fail "cannot unbind $dev from vivid"
  log "unbound $dev from the vivid driver (the node is gone: $(ls /dev/video* 2>/dev/null | tr '\n' ' '))"
  sleep 3
  # Who still holds the removed node (a real unplug leaves only the process's open files).
  { echo "roomrecd's open V4L2 files 3 s after the unbind:"
    n=0
    for f in /proc/"$ROOMRECD_PID"/fd/*; do
      l=$(readlink "$f" 2>/dev/null || true)
      case $l in /dev/video*|/dev/v4l*) echo "fd ${f##*/} -> $l"; n=$((n + 1)) ;; esac
    done
    [ $n -gt 0 ] || echo "(none)"
    echo "roomrecd's mappings of V4L2 buffers:"
    grep -E '/dev/video|/dev/v4l' /proc/"$ROOMRECD_PID"/maps | awk '{print $6, $7}' | sort | uniq -c || echo "(none)"
    echo "roomrecd's threads in the kernel:"
    for t in /proc/"$ROOMRECD_PID"/task/*; do echo "$(cat "$t/comm") $(cat "$t/wchan" 2>/dev/null)"; done | sort | uniq -c
  } > "$R/holders-after-unbind.txt" 2>&1
  log "$(head -5 "$R/holders-after-unbind.txt" | tr '\n' ' ')"
  for _ in $(seq 10); do rmmod vivid 2>/dev/null && break; sleep 0.5; done
  if lsmod | grep -q '^vivid '; then
    how="rmmod refused (in use: $out); unbound $dev through sysfs; the module was still in use 8 s later (holders-after-unbind.txt)"
  else
    how="rmmod refused (in use: $out); unbound $dev through sysfs, then rmmod succeeded"
  fi
fi
[ ! -e /dev/video0 ] || fail "/dev/video0 still exists after the removal"
log "camera removed: $how"
echo "$how" > "$R/camera-removed"

wait_file "$R/restore-camera" 200
if lsmod | grep -q '^vivid '; then
  echo "$dev" > /sys/bus/platform/drivers/vivid/bind || fail "cannot bind $dev to vivid again"
  log "bound $dev to vivid again"
else
  modprobe vivid || fail "modprobe vivid (again)"
fi
for _ in $(seq 20); do [ -n "$(ls /dev/video* 2>/dev/null)" ] && break; sleep 0.5; done
nodes=$(ls /dev/video* 2>/dev/null | tr '\n' ' ')
[ -n "$nodes" ] || fail "no V4L2 node after loading vivid again"
# The same node name comes back only if nothing holds the old one open; otherwise the camera
# is elsewhere (and roomrecd, configured with /dev/video0, cannot find it: the host's device_back
# check then fails, with this line as the reason).
[ -e /dev/video0 ] || log "the camera came back as $nodes, not /dev/video0: the old node is still held open"
echo "$nodes" > "$R/nodes-after-restore.txt"
# roomrecd may already have opened it again (it retries every second): then setting the rate
# is refused (busy), which is fine, since roomrecd sets the format itself.
[ -e /dev/video0 ] && v4l2-ctl -d /dev/video0 --set-parm=30 >/dev/null 2>&1 || log "v4l2-ctl --set-parm refused (roomrecd already has the node)"
log "camera back: $(ls /dev/video* | tr '\n' ' ')"
touch "$R/camera-restored"

wait_file "$R/host.done" 220
kill -0 "$ROOMRECD_PID" 2>/dev/null || fail "roomrecd died during the scenario"
stop_roomrecd
stop_tone
