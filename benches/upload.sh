#!/usr/bin/env bash
# Upload benchmark: goodput to a real S3 server (s3s-fs) through a shaped link, the time back
# to full rate after a 10 s outage, and `aws s3 cp` on the same link in the same run.
# Prints figures; asserts nothing. Needs root (network namespaces, tc) and python3.
#
# The link: two network namespaces made here (rrb-cli, rrb-srv), joined by two TUN devices
# that a small Python forwarder reads and writes, delaying every packet by RTT/2 each way
# (this kernel has no netem) and dropping all of them during the outage. The rate is the
# kernel's tbf on the client's egress. Addresses 10.77.0.1/2 exist only inside these
# namespaces; nothing leaves the machine.
#
#   benches/upload.sh [RATE_MBIT=20] [RTT_MS=40]
set -euo pipefail
cd "$(dirname "$0")/.."

rate_mbit="${1:-20}"
rtt_ms="${2:-40}"
segments="${BENCH_SEGMENTS:-30}"      # 1 MB each: ~3 s of 2.5 Mbit/s video per segment
work="$(mktemp -d /tmp/roomrec-bench.XXXXXX)"
cli=rrb-cli srv=rrb-srv
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$cli" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces and tc)" >&2; exit 1; }
scripts/install-s3s-fs
s3s_fs="${S3S_FS:-${ROOMREC_TOOLS:-$HOME/.cache/roomrec/tools}/bin/s3s-fs}"
command -v "$s3s_fs" >/dev/null || s3s_fs=s3s-fs

echo "== building the driver (tests/library/upload.rs, upload::bench_shaped_link)"
driver=$(cargo test --release --test library --no-run 2>&1 | grep -o 'target/release/deps/library-[0-9a-f]*' | tail -1)
[ -x "$driver" ] || { echo "could not build the driver" >&2; exit 1; }

ip netns del "$cli" 2>/dev/null || true
ip netns del "$srv" 2>/dev/null || true
ip netns add "$cli"
ip netns add "$srv"
ip -n "$cli" link set lo up
ip -n "$srv" link set lo up

# The forwarder creates rrb-tc and rrb-ts, hands them to the namespaces and relays packets.
cat > "$work/link.py" <<'PY'
import fcntl, os, signal, struct, sys, threading, time, heapq
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
delay = float(sys.argv[1]) / 2000.0
counter_path = sys.argv[2]
def tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd
cut = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: cut.set())
signal.signal(signal.SIGUSR2, lambda *_: cut.clear())
forwarded = [0]
def relay(src, dst, count):
    q, cv = [], threading.Condition()
    def writer():
        while True:
            with cv:
                while not q:
                    cv.wait()
                due, seq, pkt = q[0]
                wait = due - time.monotonic()
                if wait > 0:
                    cv.wait(wait)
                    continue
                heapq.heappop(q)
            os.write(dst, pkt)
            if count:
                forwarded[0] += len(pkt)
    threading.Thread(target=writer, daemon=True).start()
    seq = 0
    while True:
        pkt = os.read(src, 65535)
        if cut.is_set():
            continue
        seq += 1
        with cv:
            heapq.heappush(q, (time.monotonic() + delay, seq, pkt))
            cv.notify()
c, s = tun("rrb-tc"), tun("rrb-ts")
open(counter_path + ".ready", "w").close()
threading.Thread(target=relay, args=(c, s, True), daemon=True).start()
threading.Thread(target=relay, args=(s, c, False), daemon=True).start()
while True:
    with open(counter_path + ".tmp", "w") as f:
        f.write(str(forwarded[0]))
    os.replace(counter_path + ".tmp", counter_path)
    time.sleep(0.05)
PY
python3 "$work/link.py" "$rtt_ms" "$work/link-bytes" &
link_pid=$!
pids+=("$link_pid")
for _ in $(seq 50); do [ -e "$work/link-bytes.ready" ] && break; sleep 0.1; done
ip link set rrb-tc netns "$cli"
ip link set rrb-ts netns "$srv"
ip -n "$cli" addr add 10.77.0.1 peer 10.77.0.2 dev rrb-tc
ip -n "$srv" addr add 10.77.0.2 peer 10.77.0.1 dev rrb-ts
ip -n "$cli" link set rrb-tc mtu 1500 up
ip -n "$srv" link set rrb-ts mtu 1500 up
# tbf: the bottleneck, on the client's uplink; 100 ms of queue, about one BDP.
ip netns exec "$cli" tc qdisc add dev rrb-tc root tbf rate "${rate_mbit}mbit" burst 16kb latency 100ms

mkdir -p "$work/s3/recordings" "$work/files"
ip netns exec "$srv" "$s3s_fs" --host 10.77.0.2 --port 9000 --access-key benchkey \
  --secret-key benchsecret "$work/s3" 2>"$work/s3s-fs.log" &
pids+=("$!")
for i in $(seq "$segments"); do head -c 1000000 /dev/urandom > "$work/files/$(printf %08d "$i").ts"; done
sleep 0.3

echo "== link: ${rate_mbit} Mbit/s (tbf), RTT ${rtt_ms} ms (forwarder), ${segments} segments of 1 MB"
ip netns exec "$cli" env \
  BENCH_ENDPOINT=http://10.77.0.2:9000 BENCH_FILES="$work/files" BENCH_RATE_MBIT="$rate_mbit" \
  BENCH_LINK_PID="$link_pid" BENCH_COUNTER="$work/link-bytes" \
  "$driver" --ignored --exact upload::bench_shaped_link --nocapture --test-threads 1 2>&1 \
  | grep -oE '(bench .*|test result.*)'

echo "== aws s3 cp (PyPI awscli) on the same link"
if command -v aws >/dev/null; then
  mkdir -p "$work/aws"
  printf '[default]\ns3 =\n  addressing_style = path\n  multipart_threshold = 64MB\n' > "$work/aws/config"
  start=$(date +%s.%N)
  ip netns exec "$cli" env AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret \
    AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE="$work/aws/config" \
    aws s3 cp --quiet --recursive "$work/files" s3://recordings/aws/ \
    --endpoint-url http://10.77.0.2:9000
  end=$(date +%s.%N)
  python3 - "$start" "$end" "$segments" "$rate_mbit" <<'PY'
import sys
start, end, n, rate = map(float, sys.argv[1:])
secs = end - start
mbit = n * 1_000_000 * 8 / secs / 1e6
print(f"bench aws-cli: {n:.0f} MB in {secs:.2f} s = {mbit:.2f} Mbit/s goodput = {100*mbit/rate:.1f} % of the link (includes ~1 s of CLI start-up)")
PY
else
  echo "aws not installed: pip install awscli"
fi

# The link's own ceiling: one bulk TCP stream of the same bytes, no HTTP, no S3, no checksums,
# timed from connect to the receiver's acknowledgement of the last byte. Neither client can
# beat it; it shows what the emulated link (tbf, TUN, the forwarder) lets TCP carry.
echo "== one bulk TCP stream of the same bytes on the same link (the ceiling)"
cat > "$work/bulk.py" <<'PY'
import socket, sys, time
mode, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
if mode == "recv":
    s = socket.create_server(("10.77.0.2", 9100))
    c, _ = s.accept()
    got = 0
    while got < n:
        b = c.recv(1 << 20)
        if not b:
            break
        got += len(b)
    c.sendall(b"k")
    c.close()
else:
    c = socket.create_connection(("10.77.0.2", 9100))
    block = b"\0" * (1 << 20)
    start = time.monotonic()
    left = n
    while left > 0:
        c.sendall(block[: min(left, len(block))])
        left -= min(left, len(block))
    c.recv(1)
    secs = time.monotonic() - start
    mbit = n * 8 / secs / 1e6
    print(f"bench bulk TCP: {n / 1e6:.0f} MB in {secs:.2f} s = {mbit:.2f} Mbit/s = {100 * mbit / rate:.1f} % of the link")
PY
bytes=$((segments * 1000000))
ip netns exec "$srv" python3 "$work/bulk.py" recv "$bytes" "$rate_mbit" &
pids+=("$!")
sleep 0.5
ip netns exec "$cli" python3 "$work/bulk.py" send "$bytes" "$rate_mbit"
