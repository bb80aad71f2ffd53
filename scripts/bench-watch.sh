#!/usr/bin/env bash
# One dump-and-match pass of `tcpalive watch` against `ss -tin`, side by side, over
# N established loopback connections (default 50,000: 100,000 sockets, both ends)
# inside a network namespace this script creates and removes.
#
#   sudo scripts/bench-watch.sh [N]          # needs root, iproute2, python3
#
# Uses hyperfine when installed (apt-get install hyperfine), else a plain loop.
# The tcpalive binary is target/release/tcpalive (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-50000}
RUNS=${RUNS:-20}
NS="tcpalive-bench-$$"
BIN="$PWD/target/release/tcpalive"
READY=$(mktemp)
HOLDER_PIDS=""

cleanup() {
  for p in $HOLDER_PIDS; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$READY"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "bench-watch: needs root (ip netns)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"

# Descriptors: raise the soft limit to the hard one (and the hard one where that is
# allowed). Without CAP_SYS_RESOURCE (a container) the hard limit stays, so the
# connections are spread over several holder processes, each holding both ends of
# its share.
ulimit -Hn $((2 * N + 1000)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
PER=$(( ($(ulimit -n) - 200) / 2 ))
HOLDERS=$(( (N + PER - 1) / PER ))

# Each holder opens its share spread over 8 listening ports of its own on
# 127.0.0.1, from sources 127.0.0.2..4 (so the ephemeral port range is never the
# limit), reports, and waits until killed.
HOLDER_PY='
import socket, sys, time
n, base, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
listeners = []
for i in range(8):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", base + i)); l.listen(4096); listeners.append(l)
held = []
for k in range(n):
    c = socket.socket()
    c.bind((f"127.0.0.{2 + k % 3}", 0))
    c.connect(("127.0.0.1", base + k % 8))
    s, _ = listeners[k % 8].accept()
    held += (c, s)
with open(ready, "a") as f:
    f.write(f"{len(held) // 2}\n")
while True:
    time.sleep(3600)
'
for h in $(seq 0 $((HOLDERS - 1))); do
  share=$(( N / HOLDERS + (h < N % HOLDERS ? 1 : 0) ))
  ip netns exec "$NS" python3 -c "$HOLDER_PY" "$share" "$((9000 + 8 * h))" "$READY" &
  HOLDER_PIDS+=" $!"
done
for _ in $(seq 1 900); do
  [ "$(wc -l < "$READY")" -ge "$HOLDERS" ] && break
  for p in $HOLDER_PIDS; do
    kill -0 "$p" 2>/dev/null || { echo "bench-watch: a holder process died" >&2; exit 1; }
  done
  sleep 0.2
done
[ "$(wc -l < "$READY")" -ge "$HOLDERS" ] || { echo "bench-watch: connections not made in time" >&2; exit 1; }
TOTAL=$(awk '{s += $1} END {print s}' "$READY")
echo "bench-watch: $TOTAL established connections ($((2 * TOTAL)) sockets) held by $HOLDERS process(es) in namespace $NS"
echo "bench-watch: ss -tin prints $(ip netns exec "$NS" ss -tinH | grep -c ESTAB) sockets"
ip netns exec "$NS" "$BIN" watch --dump-once --quiet
ip netns exec "$NS" "$BIN" watch --dump-once --quiet --port 9003

run() {
  if command -v hyperfine >/dev/null; then
    local md
    md=$(mktemp)
    ip netns exec "$NS" hyperfine -N --warmup 3 --runs "$RUNS" --style basic --export-markdown "$md" "$@" \
      | grep -E '^(Benchmark|  Time)' || true
    cat "$md"
    rm -f "$md"
  else
    for cmd in "$@"; do
      local t0 t1
      t0=$(date +%s%N)
      for _ in $(seq 1 "$RUNS"); do ip netns exec "$NS" sh -c "$cmd" >/dev/null; done
      t1=$(date +%s%N)
      echo "$cmd: $(( (t1 - t0) / RUNS / 1000000 )) ms per run (mean of $RUNS, includes ip netns exec)"
    done
  fi
}

echo "== full pass: every socket =="
run "ss -tin" "$BIN watch --dump-once --quiet"
echo "== filtered pass: one port of eight (of the first holder) =="
run "ss -tin '( sport = :9003 or dport = :9003 )'" "$BIN watch --dump-once --quiet --port 9003"
