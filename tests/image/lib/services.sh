# shellcheck shell=bash
# Sourced by tests/image/run: the host's services for one scenario attempt, on the loopback
# only (the guest reaches them at 10.0.2.2), and the run's roomrec.toml.
broker_pid="" broker_port="" s3_pid="" s3_port=""
S3_ACCESS_KEY=roomrec-test-key
S3_SECRET_KEY=s3cr3t-Vx7kQ9-never-in-logs
S3_BUCKET=recordings

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() {
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_broker RESULTS: mosquitto on a free loopback port (broker_port, broker_pid).
start_broker() {
  broker_port=$(free_port)
  mkdir -p "$1/broker"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n' \
    "$broker_port" > "$1/broker/mosquitto.conf"
  /usr/sbin/mosquitto -c "$1/broker/mosquitto.conf" >"$1/broker/mosquitto.log" 2>&1 &
  broker_pid=$!
  listening "$broker_port"
}

# start_s3 RESULTS: s3s-fs (scripts/install-s3s-fs) on a free loopback port, data in
# RESULTS/s3/data, the same credentials and bucket as tests/common/s3.rs.
start_s3() {
  local bin=${S3S_FS:-${ROOMREC_TOOLS:-$HOME/.cache/roomrec/tools}/bin/s3s-fs}
  [ -x "$bin" ] || bin=$(command -v s3s-fs) || { echo "s3s-fs is not installed (scripts/install-s3s-fs)" >&2; return 1; }
  mkdir -p "$1/s3/data/$S3_BUCKET"
  s3_port=$(free_port)
  RUST_LOG=s3s_fs=debug,s3s=warn "$bin" --host 127.0.0.1 --port "$s3_port" \
    --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$1/s3/data" >"$1/s3/s3s-fs.log" 2>&1 &
  s3_pid=$!
  listening "$s3_port"
}

stop_services() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null
  [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null
  broker_pid="" s3_pid=""
  return 0
}

# write_config FILE [EXTRA_TOML]: the device's configuration for this run: the image's
# devices (vivid's /dev/video0, snd-aloop's hw:Loopback,1,0), 320x180 at 15 fps, 1 s segments,
# storage in the unit's StateDirectory, the host's broker (and S3 server) at 10.0.2.2, the
# run's admin key, text logs (the host helpers of tests/qemu read them).
write_config() {
  cat > "$1" <<TOML
device_id = "room-image"

[mqtt]
url = "mqtt://10.0.2.2:$broker_port"
keep_alive_s = 10
reconnect_max_s = 2

[storage]
dir = "/var/lib/roomrec"

[media]
source = "v4l2"
camera = "/dev/video0"
microphone = "hw:Loopback,1,0"
segment_seconds = 1
width = 320
height = 180
framerate = 15
video_bitrate_kbps = 300

[auth.admin_keys]
ci = "$(cat "$R/admin.pub")"

[log]
format = "auto"
level = "info,roomrec=debug"
TOML
  if [ -n "$s3_port" ]; then
    cat >> "$1" <<TOML

[upload]
endpoint = "http://10.0.2.2:$s3_port"
bucket = "$S3_BUCKET"
access_key_id = "$S3_ACCESS_KEY"
secret_access_key = "$S3_SECRET_KEY"
TOML
  fi
  [ -n "${2:-}" ] && printf '\n%s\n' "$2" >> "$1"
  "$ROOMREC_BIN/roomrecd" --check-config --config "$1" >/dev/null 2>&1 || [ -n "${ROOMREC_CONFIG_INVALID_OK:-}" ] \
    || { echo "write_config: roomrecd rejects $1" >&2; return 1; }
}
