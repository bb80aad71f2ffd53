#!/usr/bin/env bash
# `tcpalive watch` at fleet scale, over N established loopback connections (default
# 50,000: 100,000 sockets, both ends) inside a network namespace this script
# creates and removes:
#
# 1. One dump-and-match pass against `ss -tin`, side by side (hyperfine when
#    installed, else a plain loop; RUNS=0 skips it).
# 2. `watch --json` running unfiltered for FOLLOW_S seconds (default 60) once it
#    has joined every connection, with 20 more connections among them whose
#    clients keep alive at idle 5 s, intvl 2 s, cnt 3 (so each probes every ~5 s,
#    answered): its CPU over the window (utime + stime of /proc/PID/stat, and the
#    sum of its threads' schedstat run time), and for every keepalive probe
#    tcpdump saw on the wire how long until watch's `probe` line for it arrived
#    (each line is stamped as it is read from watch's stdout). Target: <= 2 % of
#    one core, every probe within 100 ms. FOLLOW_S=0 skips it.
#
#   sudo scripts/bench-watch.sh [N]    # needs root, iproute2, python3, tcpdump
#
# The tcpalive binary is target/release/tcpalive (built if missing), or BIN=PATH
# (for example a build of an older commit, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-50000}
RUNS=${RUNS:-20}
NS="tcpalive-bench-$$"
BIN=${BIN:-$PWD/target/release/tcpalive}
FOLLOW_S=${FOLLOW_S:-60}
READY=$(mktemp)
WORK=$(mktemp -d)
HOLDER_PIDS=""

cleanup() {
  for p in $HOLDER_PIDS; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$READY"
  rm -rf "$WORK"
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

if [ "$RUNS" -gt 0 ]; then
  echo "== full pass: every socket =="
  run "ss -tin" "$BIN watch --dump-once --quiet"
  echo "== filtered pass: one port of eight (of the first holder) =="
  run "ss -tin '( sport = :9003 or dport = :9003 )'" "$BIN watch --dump-once --quiet --port 9003"
fi
[ "$FOLLOW_S" -gt 0 ] || exit 0
command -v tcpdump >/dev/null || { echo "bench-watch: the follow run needs tcpdump (apt-get install tcpdump)" >&2; exit 1; }

echo "== follow: watch --json, unfiltered, $FOLLOW_S s =="
# One `ss -tin` pass's CPU (user + system), for the side by side: polling at the
# 100 ms the probes need would take ten of these a second.
TIMEFORMAT='%U %S'
SS_CPU=$( { time ip netns exec "$NS" ss -tin >/dev/null; } 2>&1 | awk '{printf "%.1f", ($1 + $2) * 1000}')
echo "bench-watch: one ss -tin pass: $SS_CPU ms CPU"

# The 20 keepalive connections: their own listener on port 8800, keepalive set
# on the client side only (the server's socket has none), held until killed.
KA_PY='
import socket, sys, time
n, port, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port)); l.listen(64)
held = []
for k in range(n):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    c.connect(("127.0.0.1", port))
    s, _ = l.accept()
    held += (c, s)
with open(ready, "w") as f:
    f.write("ok\n")
while True:
    time.sleep(3600)
'
KAPORT=8800
PCAP="$WORK/probes.txt"
ip netns exec "$NS" tcpdump -i lo -n -tt -l "tcp port $KAPORT" >"$PCAP" 2>/dev/null &
HOLDER_PIDS+=" $!"
sleep 1 # tcpdump attached
ip netns exec "$NS" python3 -c "$KA_PY" 20 "$KAPORT" "$WORK/ka-ready" &
HOLDER_PIDS+=" $!"
for _ in $(seq 1 100); do [ -s "$WORK/ka-ready" ] && break; sleep 0.1; done
[ -s "$WORK/ka-ready" ] || { echo "bench-watch: keepalive connections not made" >&2; exit 1; }

# watch's stdout goes through a FIFO to a reader that stamps each line as it
# arrives (epoch seconds, a tab, the line): when it was reported, not when the
# event says it happened.
STAMP_PY='
import sys, time
out = open(sys.argv[2], "w")
for line in open(sys.argv[1]):
    out.write(f"{time.time():.6f}\t{line}")
    out.flush()
'
mkfifo -m 600 "$WORK/out.fifo"
python3 -c "$STAMP_PY" "$WORK/out.fifo" "$WORK/out.txt" &
HOLDER_PIDS+=" $!"
ip netns exec "$NS" "$BIN" watch --json >"$WORK/out.fifo" 2>"$WORK/err.txt" &
WATCH=$!
HOLDER_PIDS="$WATCH $HOLDER_PIDS"
WANT=$((2 * TOTAL + 40))
JOIN0=$(date +%s.%N)
for _ in $(seq 1 1800); do
  joined=$(grep -c '"event":"watched"' "$WORK/out.txt" 2>/dev/null || true)
  [ "${joined:-0}" -ge "$WANT" ] && break
  kill -0 "$WATCH" 2>/dev/null || { echo "bench-watch: watch died: $(cat "$WORK/err.txt")" >&2; exit 1; }
  sleep 1
done
JOINED=$(grep -c '"event":"watched"' "$WORK/out.txt" || true)
echo "bench-watch: watch joined $JOINED of $WANT sockets in $(awk -v a="$JOIN0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s (pid $WATCH)"
sleep 5 # the joins' own work (settings read through pidfd_getfd, the first predictions) done

cpu() { # utime + stime in ms, and the threads' schedstat run time in ms
  local tick
  tick=$(getconf CLK_TCK)
  awk -v t="$tick" '{print ($14 + $15) * 1000 / t}' "/proc/$WATCH/stat"
  cat /proc/"$WATCH"/task/*/schedstat | awk '{s += $1} END {print s / 1e6}'
}
read -r -d '' C0 S0 < <(cpu) || true
W0=$(date +%s.%N)
sleep "$FOLLOW_S"
read -r -d '' C1 S1 < <(cpu) || true
W1=$(date +%s.%N)
kill -INT "$WATCH"
wait "$WATCH" 2>/dev/null || true
sleep 1 # the reader and tcpdump flushed
python3 - "$WORK/out.txt" "$PCAP" "$W0" "$W1" "$KAPORT" "$C0" "$C1" "$S0" "$S1" "$SS_CPU" <<'PY'
import json, sys, datetime
out, pcap, w0, w1, kaport = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
c0, c1, s0, s1, ss = map(float, sys.argv[6:11])
span = w1 - w0
# The keepalive clients: local 127.0.0.1:EPH, peer 127.0.0.1:8800.
conn_of = {}
said = {}  # conn -> [(stamp, event time)] of probe lines
warnings = []
for line in open(out):
    stamp, _, text = line.partition("	")
    try:
        e = json.loads(text)
    except ValueError:
        continue
    if e.get("event") == "watched" and e.get("peer", "").endswith(f":{kaport}"):
        conn_of[e["local"].rsplit(":", 1)[1]] = e["conn"]
    elif e.get("event") == "probe":
        t = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
        said.setdefault(e["conn"], []).append((float(stamp), t))
    elif e.get("event") == "warning" and e.get("conn") == 0:
        warnings.append(e["message"])
wire = {}
for line in open(pcap):
    f = line.split()
    if len(f) < 5 or " Flags [.]," not in line or not line.rstrip().endswith(" length 0"):
        continue
    t = float(f[0])
    src = f[2].rsplit(".", 1)
    dst = f[4].rstrip(":").rsplit(".", 1)
    if dst[1] != str(kaport) or src[1] not in conn_of or not (w0 < t < w1 - 1):
        continue
    wire.setdefault(conn_of[src[1]], []).append(t)
# Each probe on the wire is matched, in order, to the first probe line of its
# connection that arrived after it.
late, missed, n = [], 0, 0
for conn, times in wire.items():
    lines = sorted(s for s, _ in said.get(conn, []))
    i = 0
    for t in sorted(times):
        n += 1
        while i < len(lines) and lines[i] < t:
            i += 1
        if i < len(lines) and lines[i] - t < 2.0:
            late.append(lines[i] - t)
            i += 1
        else:
            missed += 1
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))] * 1e3 if late else float("nan")
print(f"watch CPU: {(c1 - c0) / span / 10:.2f} % of one core (utime+stime), {(s1 - s0) / span / 10:.2f} % (schedstat), over {span:.1f} s")
print(f"keepalive probes on the wire: {n}, reported: {len(late)}, missed: {missed}; "
      f"reported after the wire: median {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, max {q(1.0):.1f} ms, "
      f"over 100 ms: {sum(1 for x in late if x > 0.1)}")
print(f"side by side: ss -tin once = {ss:.0f} ms CPU (every 100 ms: {ss / 100 * 100:.0f} % of a core); "
      f"watch before (a full pass every 200 ms, 204.5 ms each): about 100 % of a core")
for w in warnings:
    print(f"run warning: {w}")
PY
