#!/usr/bin/env bash
# Scale: `tcpalive listen` holding N (default 10000) concurrent idle loopback
# connections with keepalive on (idle 1 s, intvl 1 s, cnt 3: every connection is
# probed every second), clients from a small Python load script. Prints resident
# memory (target < 64 MiB), CPU while idle over WINDOW seconds, and the accept rate;
# then the same for `socat TCP-LISTEN:...,fork` (one process per connection).
# Needs root, or a hard `ulimit -n` of at least N + 100 for both sides.
#
#   scripts/bench-scale.sh [N] [WINDOW]      # SCALE_SKIP_SOCAT=1 to skip socat
source "$(dirname "$0")/bench-common.sh"
N=${1:-10000}
WINDOW=${2:-30}
IDLE=${SCALE_IDLE:-1}
build_release
[[ -n "${SCALE_SKIP_SOCAT:-}" ]] || need_socat
ulimit -n $((N + 1000)) 2>/dev/null || { echo "cannot raise ulimit -n to $((N + 1000)) (hard limit $(ulimit -Hn); raise it as root)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The load client: opens N connections, reports when done, holds them until stdin closes.
cat > "$work/load.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
t0 = time.monotonic()
for i in range(n):
    for attempt in range(50):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError as e:
            time.sleep(0.01)
    else:
        print(f"connect {i} failed: {e}", file=sys.stderr, flush=True); sys.exit(1)
    socks.append(s)
print(f"client opened {n} connections in {time.monotonic() - t0:.2f}s", flush=True)
sys.stdin.read()
PY

# Waits until the server holds N connections; prints seconds since $2 (date +%s.%N).
wait_held() {
    local count_fn=$1 since=$2 deadline=$((SECONDS + 120)) c
    while (( SECONDS < deadline )); do
        c=$($count_fn)
        if (( c >= N )); then
            awk -v a="$since" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
            return
        fi
        sleep 0.05
    done
    echo "timeout: server holds only $c of $N" >&2
    return 1
}

measure() { # name server_pid count_fn port  -> prints one result row
    local name=$1 pid=$2 count_fn=$3 port=$4
    local base_rss base_cpu
    read -r base_rss _ < <(tree_mem_kib "$pid")
    mkfifo "$work/hold.$port"
    local t0; t0=$(date +%s.%N)
    python3 "$work/load.py" "$port" "$N" < "$work/hold.$port" > "$work/client.$port" & local cl=$!; pids+=("$cl")
    exec {holdfd}> "$work/hold.$port"
    local took; took=$(wait_held "$count_fn" "$t0")
    local rate; rate=$(awk -v n="$N" -v s="$took" 'BEGIN { printf "%.0f", n / s }')
    sleep 3   # let the accept burst settle
    local c0 t1 c1 t2
    c0=$(cpu_ns_tree "$pid"); t1=$(date +%s.%N)
    sleep "$WINDOW"
    c1=$(cpu_ns_tree "$pid"); t2=$(date +%s.%N)
    local held; held=$($count_fn)
    local cpu_pct; cpu_pct=$(awk -v ns=$((c1 - c0)) -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", ns / 1e9 / (b - a) * 100 }')
    local cpu_per_conn; cpu_per_conn=$(awk -v ns=$((c1 - c0)) -v a="$t1" -v b="$t2" -v n="$N" 'BEGIN { printf "%.3f", ns / 1e6 * 60 / (b - a) / n }')
    local rss pss; read -r rss pss < <(tree_mem_kib "$pid")
    printf '%-26s %7s %9s %10s %10s %9s %12s %11s\n' "$name" "$held" "$took" "$rate" \
        "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$(awk -v k="$pss" 'BEGIN { printf "%.1f", k / 1024 }')" "$cpu_pct" "$cpu_per_conn"
    exec {holdfd}>&-
    wait "$cl" 2>/dev/null || true
    echo "  ($(cat "$work/client.$port"); server RSS before the clients: $(awk -v k="$base_rss" 'BEGIN { printf "%.1f", k / 1024 }') MiB)"
}

echo "scale: $N concurrent idle loopback connections, keepalive idle ${IDLE}s intvl 1s cnt 3, CPU over ${WINDOW}s (kernel $(uname -r), $(nproc) cores)"
printf '%-26s %7s %9s %10s %10s %9s %12s %11s\n' server held "accept s" "accepts/s" "RSS MiB" "PSS MiB" "idle CPU %" "ms/min/conn"

"$BIN" listen 127.0.0.1:0 --json --max-conns $((N + 100)) --idle "$IDLE" --intvl 1 --cnt 3 > "$work/listen.jsonl" & tl=$!; pids+=("$tl")
port=$(listen_port "$work/listen.jsonl")
# Connections held = accepted sockets: open fds minus the ones listen has at start.
base_fds=$(fd_count "$tl")
tcpalive_held() { echo $(( $(fd_count "$tl") - base_fds )); }
measure "tcpalive listen --json" "$tl" tcpalive_held "$port"
out_bytes=$(stat -c %s "$work/listen.jsonl")
echo "  (listen wrote $(wc -l < "$work/listen.jsonl") JSON lines, $((out_bytes / 1024 / 1024)) MiB, to a file meanwhile; peak RSS $(awk -v k="$(hwm_kib "$tl")" 'BEGIN { printf "%.1f", k / 1024 }') MiB)"
kill "$tl"; wait "$tl" 2>/dev/null || true

if [[ -z "${SCALE_SKIP_SOCAT:-}" ]]; then
    sport=$(free_port)
    socat -u "TCP-LISTEN:$sport,bind=127.0.0.1,reuseaddr,fork,backlog=1024,keepalive,keepidle=$IDLE,keepintvl=1,keepcnt=3" STDOUT > /dev/null & sl=$!; pids+=("$sl")
    sleep 0.3
    socat_held() { pgrep -P "$sl" -c || true; }
    measure "socat TCP-LISTEN,fork" "$sl" socat_held "$sport"
    children=$(pgrep -P "$sl" || true)
    kill "$sl"; for c in $children; do kill "$c" 2>/dev/null || true; done; wait "$sl" 2>/dev/null || true
fi
echo "target: tcpalive RSS < 64 MiB with $N connections"
