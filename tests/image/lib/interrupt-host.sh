# shellcheck shell=bash
# Host side of the interruption scenarios ($R/interrupt: reboot, power-cut or stall), $1 = boot.
# Boot 1: bob records to the cloud, alice locally; once 6 segments are sealed, the guest
# reboots (systemctl reboot), the host kills QEMU 1.5 s into a segment (a power cut), or the
# guest freezes the capture pipeline (a stall: the watchdog kills roomrecd and systemd restarts
# it, in the same boot).
# Then (boot 2, or boot 1 after the restart): roomrecd back online; alice's recording is
# needs_finalize (L5), bob's cloud recording restored paused; the cloud one resumes for 2 more
# segments and stops, its upload completes; the local one is finalized by command (ready).
. "$ROOMREC_IMAGE_TESTS/lib/host.sh"
boot=$1
kind=$(cat "$R/interrupt")
status_json() { ctl --json status; }
cloud_state() { status_json | python3 -c 'import json,sys; c=json.load(sys.stdin)["state"]["cloud"]; print(c["state"], c["recorded_ms"])'; }
if [ "$boot" = 1 ]; then
  wait_online 600
  wait_for 60 "status: camera ok, microphone ok" health ok ok
  ctl watch --for 800 >"$R/watch-1.log" 2>&1 &
  join_demo_meeting
  reply=$(ctl --json send start --as bob kind=cloud) || fail "cloud start was refused: $reply"
  start_local_recording
  wait_sealed 6
  ok "$(sealed_count) segments sealed; cloud: $(cloud_state)"
  case $kind in
    power-cut)
      sleep 1.5   # into the next segment
      vm_hard_reset
      exit 0 ;;
    reboot)
      touch "$R/interrupt.go"
      ok "the guest reboots now"
      exit 0 ;;
    stall)
      touch "$R/interrupt.go"
      ok "the guest freezes the capture pipeline now"
      # The guest says when systemd runs a new roomrecd; only a live daemon answers a command
      # (the old one's retained status may still say online).
      wait_for 400 "the watchdog restart (guest)" test -e "$R/restarted"
      answers() { CTL_TIMEOUT=5 ctl --json send status --as alice >/dev/null 2>&1; }
      wait_for 300 "the restarted roomrecd to answer a command" answers ;;
  esac
else
  # Boot 2. The retained status of boot 1 (or its last will) must not count.
  clear_status
  wait_online 600
fi
ok "roomrecd is back online after the $kind"
ctl watch --for 800 >"$R/watch-after.log" 2>&1 &
rid=$(cat "$R/recording-id")
expect_needs_finalize "$rid" "$kind"
cloud_paused() { [ "$(cloud_state | cut -d' ' -f1)" = paused ]; }
wait_for 60 "the cloud recording restored paused" cloud_paused
before_ms=$(cloud_state | cut -d' ' -f2)
reply=$(ctl --json send resume --as alice target=cloud) || fail "resume cloud was refused: $reply"
before_n=$(sealed_count)
wait_sealed $((before_n + 2))
reply=$(ctl --json send stop --as alice target=cloud) || fail "cloud stop was refused: $reply"
uploaded() { [ -n "$(find "$ROOMREC_S3_DATA" -name index.m3u8 -print -quit)" ]; }
wait_for 300 "the cloud recording's upload to complete (index.m3u8 in s3s-fs)" uploaded
ok "cloud restored paused ($before_ms ms), resumed, stopped, uploaded (index.m3u8 in s3s-fs)"
finalize_until_ready "$rid"
guest_done
