#!/usr/bin/env bash
# The sample output of README.md and docs/*.md, from real runs.
#
#   scripts/readme-samples.sh              rewrite every marked block (README.md, docs/*.md)
#   scripts/readme-samples.sh NAME...      rewrite those blocks only
#   scripts/readme-samples.sh --print NAME print one sample's output (tests/readme.rs)
#   scripts/readme-samples.sh --list       the sample names
#
# A marked block is
#
#   <!-- sample: NAME -->
#   ```text
#   ...output of sample_NAME below...
#   ```
#   <!-- /sample -->
#
# tests/readme.rs reruns every sample with the test build and compares it with the
# block, numbers normalised (times, ports, PIDs vary from run to run; the lines,
# their events and their words may not). Needs: redis-server (heartbeat-expect);
# demo needs unprivileged user namespaces or root. TCPALIVE_BIN picks the binary
# (default: target/release/tcpalive, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${TCPALIVE_BIN:-target/release/tcpalive}
if [ ! -x "$BIN" ]; then
  cargo build --release --quiet
fi
TMP=$(mktemp -d)
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop_all; rm -rf "$TMP"' EXIT

# Starts `tcpalive listen 127.0.0.1:PORT ARGS` on the first free port from 7000
# (below the ephemeral range, so the metrics name it); sets PORT.
start_listen() {
  local port
  for port in $(seq 7000 7199); do
    "$BIN" listen "127.0.0.1:$port" "$@" >"$TMP/listen.out" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
      grep -q '^ *+[0-9.]*s listening' "$TMP/listen.out" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null && grep -q listening "$TMP/listen.out"; then
      PIDS+=("$pid")
      PORT=$port
      return 0
    fi
  done
  echo "no free port for listen" >&2
  return 1
}

# Waits until the kernel shows an established connection to PORT (ss).
wait_established() {
  for _ in $(seq 100); do
    ss -Htn state established "( dport = :$1 )" | grep -q . && return 0
    sleep 0.05
  done
  echo "no connection to port $1" >&2
  return 1
}

sample_demo() {
  "$BIN" demo
}

# An application's connection without keepalive, seen from outside (the peer
# sends nothing either, so the run is the same every time).
sample_watch() {
  start_listen --no-keepalive
  "$BIN" connect "127.0.0.1:$PORT" --no-keepalive --for 10 >/dev/null 2>&1 &
  local client=$!
  PIDS+=("$client")
  wait_established "$PORT"
  # The last contact is then well before the watch starts (closer, whether the
  # watch's first dumps see it as "idle since" depends on their timing).
  sleep 1
  "$BIN" watch --pid "$client" --for 1.5s
}

# Both ends of a connection as Prometheus metrics (text format, as curl gets it).
sample_metrics() {
  start_listen --idle 1 --intvl 1 --cnt 3
  "$BIN" connect "127.0.0.1:$PORT" --no-keepalive --for 10 >/dev/null 2>&1 &
  PIDS+=("$!")
  wait_established "$PORT"
  "$BIN" watch --port "$PORT" --metrics 127.0.0.1:0 --for 10 >/dev/null 2>"$TMP/watch.err" &
  PIDS+=("$!")
  local url=""
  for _ in $(seq 100); do
    url=$(grep -o 'http://[^ ]*/metrics' "$TMP/watch.err" 2>/dev/null || true)
    [ -n "$url" ] && break
    sleep 0.05
  done
  [ -n "$url" ] || { echo "watch did not serve metrics" >&2; return 1; }
  # Two probes of the accepted socket (idle 1, intvl 1) are counted by then.
  sleep 2.5
  # A plain GET (bash's /dev/tcp), the body only: what curl would print.
  local port=${url#http://127.0.0.1:}
  port=${port%/metrics}
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

# Redis with a password answers PING with -NOAUTH: --heartbeat-expect +PONG does
# not take that for an answer.
sample_heartbeat_expect() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --requirepass secret --daemonize no >/dev/null 2>&1 &
  PIDS+=("$!")
  wait_listening "$port"
  "$BIN" connect "127.0.0.1:$port" --heartbeat 400ms --heartbeat-timeout 1s \
    --heartbeat-payload 'PING\r\n' --heartbeat-expect +PONG || true
}

wait_listening() {
  for _ in $(seq 100); do
    ss -Htln "( sport = :$1 )" | grep -q . && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

NAMES=(demo watch metrics heartbeat_expect)

run_sample() {
  local name=${1//-/_}
  if ! declare -F "sample_$name" >/dev/null; then
    echo "no sample '$1' (have: ${NAMES[*]})" >&2
    return 2
  fi
  "sample_$name"
}

case "${1:-}" in
  --list)
    printf '%s\n' "${NAMES[@]//_/-}"
    exit 0
    ;;
  --print)
    run_sample "${2:?--print NAME}"
    exit 0
    ;;
esac

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${NAMES[@]//_/-}")
for name in "${wanted[@]}"; do
  # Each sample in a fresh subshell: its own processes, cleaned up after it.
  ( PIDS=(); trap stop_all EXIT; run_sample "$name" ) >"$TMP/$name.txt"
  python3 - "$name" "$TMP/$name.txt" <<'EOF'
import re, sys
name, path = sys.argv[1], sys.argv[2]
out = open(path).read().rstrip("\n")
pattern = re.compile(
    r"(<!-- sample: " + re.escape(name) + r" -->\n```text\n)(.*?)(```\n<!-- /sample -->)",
    re.S,
)
import glob
found = False
for doc in ["README.md"] + sorted(glob.glob("docs/*.md")):
    text = open(doc).read()
    if not pattern.search(text):
        continue
    found = True
    text = pattern.sub(lambda m: m.group(1) + out + "\n" + m.group(3), text)
    open(doc, "w").write(text)
    print(f"{doc}: sample {name} regenerated ({out.count(chr(10)) + 1} lines)")
if not found:
    sys.exit(f"no block <!-- sample: {name} --> in README.md or docs/*.md")
EOF
done
