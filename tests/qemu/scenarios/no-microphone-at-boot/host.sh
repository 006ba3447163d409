# shellcheck shell=bash
# Host side of `no-microphone-at-boot`: roomrecd online without a microphone: status
# microphone missing (or error), camera ok; roomrecd's log says why and what to check; `start`
# answered device_unavailable naming the microphone; the guest loads snd-aloop and plays the
# tone: status microphone ok within 20 s without a restart, the same start succeeds and records
# >= 12.5 s, meeting end, ready.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
wait_online 120
ok "roomrecd in the guest is online without a microphone"
ctl watch --for 280 >"$R/watch.log" 2>&1 &
wait_for 20 "status: camera ok, microphone missing (or error)" eval 'health ok missing || health ok error'
ok "status: camera ok, $(grep -o '"microphone":"[a-z]*"' "$R/status.json" | head -1)"
# Why, for a person: status carries only the health, so the reason is in roomrecd's log.
reason() { grep 'capture device unusable' "$R/roomrecd-1.log" | grep 'microphone hw:Loopback,1,0' \
  | grep -q 'check that it is plugged in'; }
wait_for 10 "roomrecd to log why the microphone is unusable" reason
ok "roomrecd logs: $(grep -m1 -o 'reason=.*microphone hw:Loopback.*' "$R/roomrecd-1.log" | cut -c1-220)"
join_demo_meeting

expect_start_refused microphone

touch "$R/load-microphone"
wait_for 40 "the guest to load snd-aloop and play the tone" test -e "$R/microphone-loaded"
t=$SECONDS
wait_for 20 "status: microphone ok (no restart)" health ok ok
ok "status: camera ok, microphone ok $((SECONDS - t)) s after snd-aloop was loaded"
record_local_until_ready
guest_done
