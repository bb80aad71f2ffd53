#!/usr/bin/env bash
# Output path cost: `tcpalive listen` holding N (default 2000) idle loopback
# connections, each probed every second (keepalive idle 1 s, intvl 1 s, cnt 3;
# loopback answers at once, so N probes per second and five events per probe:
# probe-window, probe, probe-acked, idle, prediction), stdout to /dev/null. For
# each output mode (text, --json, --quiet) it prints the CPU the process used
# per second of wall time over WINDOW (default 10) seconds, read from
# /proc/PID/task/*/schedstat, and that divided by the probes per second.
# Target (issue 27): <= 20 ms per second with text or JSON at 2,000 connections,
# under 10 us per probe in every mode.
#
#   scripts/bench-output.sh [N] [WINDOW]      # MODES="json" to run only some modes
# Needs a hard `ulimit -n` of at least N + 200 (root raises it).
source "$(dirname "$0")/bench-common.sh"
N=${1:-2000}
WINDOW=${2:-10}
MODES=${MODES:-text json quiet}
build_release
ulimit -n $((N + 200)) 2>/dev/null || { echo "cannot raise ulimit -n to $((N + 200)) (hard limit $(ulimit -Hn))" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The load client: opens N connections, says so, holds them until stdin closes.
cat > "$work/load.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    for attempt in range(100):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port)))
            break
        except OSError as e:
            err = e
            time.sleep(0.01)
    else:
        print(f"connect {i} failed: {err}", file=sys.stderr, flush=True); sys.exit(1)
print("held", flush=True)
sys.stdin.read()
PY

echo "bench-output: listen with $N loopback connections probed every second (idle 1 s, intvl 1 s, cnt 3), stdout to /dev/null, CPU over ${WINDOW}s (kernel $(uname -r), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-7s %10s %12s %10s\n' mode "CPU ms/s" "us/probe" "held"
for mode in $MODES; do
    case $mode in
        text) flags=() ;;
        json) flags=(--json) ;;
        quiet) flags=(--quiet) ;;
        *) echo "unknown mode $mode (text, json, quiet)" >&2; exit 2 ;;
    esac
    port=$(free_port)
    "$BIN" listen "127.0.0.1:$port" "${flags[@]}" --max-conns $((N + 100)) --idle 1 --intvl 1 --cnt 3 > /dev/null & tl=$!; pids+=("$tl")
    for _ in $(seq 1 100); do
        [[ -n $(ss -Hltn "sport = :$port") ]] && break
        sleep 0.05
    done
    base_fds=$(fd_count "$tl")
    mkfifo "$work/hold.$mode"
    python3 "$work/load.py" "$port" "$N" < "$work/hold.$mode" > "$work/client.$mode" & cl=$!; pids+=("$cl")
    exec {holdfd}> "$work/hold.$mode"
    deadline=$((SECONDS + 120))
    while (( $(fd_count "$tl") - base_fds < N )); do
        (( SECONDS < deadline )) || { echo "listen holds only $(( $(fd_count "$tl") - base_fds )) of $N" >&2; exit 1; }
        sleep 0.1
    done
    sleep 3   # past the accept burst: every connection in its once-a-second probe cycle
    c0=$(cpu_ns "$tl"); t0=$(date +%s.%N)
    sleep "$WINDOW"
    c1=$(cpu_ns "$tl"); t1=$(date +%s.%N)
    held=$(( $(fd_count "$tl") - base_fds ))
    awk -v ns=$((c1 - c0)) -v a="$t0" -v b="$t1" -v n="$N" -v m="$mode" -v h="$held" \
        'BEGIN { ms = ns / 1e6 / (b - a); printf "%-7s %10.1f %12.1f %10d\n", m, ms, ms * 1000 / n, h }'
    exec {holdfd}>&-
    kill "$tl" 2>/dev/null || true
    wait "$tl" "$cl" 2>/dev/null || true
done
