# shellcheck shell=bash
# Host side of `hard-reset-campaign`, once per VM ($1 = boot). Boot 1: licence, meeting, bob
# (co-host) starts a cloud recording, alice (host) a local one. Boot b > 1: roomrecd back
# online; the catalog's figures for the previous reset (media lost, from the adopted segments
# in roomrecd-b.log: see campaign.py and docs/qemu.md); every local recording a reset
# interrupted is needs_finalize (L5), the cloud one is restored paused and is resumed; alice
# starts a new local recording. Every boot but the last: once both record, wait a random
# (seeded) 0.5-12 s, kill QEMU, and check the disk as the reset left it (campaign.py
# after-kill; new segments decoded). The last boot prints the campaign's summary (a WARN per
# reset that lost more media than the RPO) and fails when one lost more than twice the RPO.
. "$ROOMREC_QEMU_DIR/lib/host.sh"
boot=$1
RESETS=${ROOMREC_RESETS:-3}
here=$(dirname "${BASH_SOURCE[0]}")
campaign() { python3 "$here/campaign.py" "$@"; }
now_ms() { date +%s%3N; }
status_json() { ctl --json status; }

if [ "$boot" = 1 ]; then
  seed=${ROOMREC_RESET_SEED:-$(python3 -c 'import random; print(random.SystemRandom().randrange(1, 2**31))')}
  echo "$seed" > "$R/seed"
  ok "campaign: $RESETS resets, seed $seed (ROOMREC_RESET_SEED=$seed ROOMREC_RESETS=$RESETS replays it)"
  wait_online 120
  ctl watch --for 230 >"$R/watch-1.log" 2>&1 &
  watch_pid=$!
  ctl licence set --valid-until 2099-01-01T00:00:00Z
  ctl meeting set "$ROOMREC_REPO/demo/meeting.json"
  meeting_applied() { grep -q '"meeting_id":"m-demo"' <<<"$(status_json)"; }
  wait_for 30 "the meeting to be applied" meeting_applied
  reply=$(ctl --json send start --as bob kind=cloud) || fail "start cloud was refused: $reply"
  reply=$(ctl --json send start --as alice kind=local) || fail "start local was refused: $reply"
  ok "cloud (bob) and local (alice) recordings started"
else
  seed=$(cat "$R/seed")
  # The killed daemon's last will is retained; only the new daemon's status counts.
  clear_status
  wait_online 150
  ctl watch --for 200 >"$R/watch-$boot.log" 2>&1 &
  watch_pid=$!
  campaign after-boot "$boot" | tee -a "$R/figures.txt" | sed 's/^/  /'
  ctl --json send list_recordings --as admin:ci > "$R/recordings-$boot.json" \
    || fail "list_recordings failed: $(cat "$R/recordings-$boot.json")"
  verdict=$(python3 - "$R/recordings-$boot.json" "$((boot - 1))" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
want = int(sys.argv[2])
locals_ = [r for r in d["recordings"] if r["kind"] == "local"]
bad = [f'{r["recording_id"]}={r["state"]}' for r in locals_ if r["state"] != "needs_finalize"]
if len(locals_) != want or bad:
    print(f"{len(locals_)} local recordings (want {want}), not needs_finalize: {bad}")
else:
    print("ok")
PY
)
  [ "$verdict" = ok ] || fail "after reset $((boot - 1)): $verdict"
  ok "after reset $((boot - 1)): the $((boot - 1)) interrupted local recordings are needs_finalize"
  cloud_paused() { python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["state"]["cloud"]["state"] != "paused")' <<<"$(status_json)"; }
  wait_for 30 "the cloud recording restored paused" cloud_paused
  reply=$(ctl --json send resume --as alice target=cloud) || fail "resume cloud was refused: $reply"
  reply=$(ctl --json send start --as alice kind=local) || fail "start local was refused: $reply"
  ok "after reset $((boot - 1)): cloud restored paused and resumed, a new local recording started"
fi

if [ "$boot" -gt "$RESETS" ]; then
  # Not stopped within a second of the restart: a SIGTERM before the first buffer reaches the
  # new segment catalogues it sealed with 0 bytes, 0 ms, and it does not decode (an open
  # defect, docs/qemu.md "Defects found", 6); this scenario is about resets, so it lets the
  # last boot seal one segment first.
  # (After "capture started": the segment adopted at the restart is logged sealed too.)
  sealed_here() { awk '/capture started/ {c = 1} c && /INFO segment sealed seq=[0-9]+ .*bytes=[1-9]/ {f = 1} END {exit !f}' "$R/roomrecd-$boot.log"; }
  wait_for 60 "a segment sealed after the last restart" sealed_here
  rc=0
  campaign summary > "$R/summary.txt" || rc=$?
  sed 's/^/  /' "$R/summary.txt"
  [ $rc -eq 0 ] || fail "$(grep -o 'media lost beyond.*' "$R/summary.txt" || echo "campaign.py summary failed")"
  ok "$(head -1 "$R/summary.txt")"
  { grep -o 'WARN: .*' "$R/summary.txt" || true; } | while read -r line; do log "$line"; done
  guest_done
  exit 0
fi

both_recording() { python3 -c 'import json,sys; s=json.load(sys.stdin)["state"]
sys.exit(not (s["cloud"]["state"] == "recording" and any(l["state"] == "recording" for l in s["local"])))' <<<"$(status_json)"; }
wait_for 30 "both recordings running" both_recording
running_since=$(now_ms)
delay=$(python3 -c 'import random,sys; print(random.Random(sys.argv[1]).randint(500, 12000))' "$seed-$boot")
log "reset $boot: both recording; killing QEMU in $delay ms"
sleep "$(awk -v d="$delay" 'BEGIN {printf "%.3f", d / 1000}')"
killed_at=$(now_ms)
vm_hard_reset
kill "$watch_pid" 2>/dev/null || true
qpid=$(cat "$ROOMREC_QEMU_PIDFILE")
for _ in $(seq 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$qpid" 2>/dev/null && fail "QEMU (pid $qpid) still runs 10 s after SIGKILL"
rc=0
campaign after-kill "$boot" "$killed_at" "$running_since" > "$R/reset-$boot.txt" || rc=$?
sed 's/^/  /' "$R/reset-$boot.txt"
[ $rc -eq 0 ] || fail "reset $boot: the storage is not right: $(grep FAIL "$R/reset-$boot.txt" | head -3 | tr '\n' ' ')"
n=0
while read -r seg; do
  [ "$(video_frames "$seg")" -gt 0 ] || fail "reset $boot: segment $seg does not decode"
  n=$((n + 1))
done < "$R/reset-$boot/decode.txt"
ok "$(head -1 "$R/reset-$boot.txt"); $n new segments decode"
