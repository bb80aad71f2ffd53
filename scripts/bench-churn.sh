#!/usr/bin/env bash
# Churn: CYCLES (default 100000) connect/close cycles against `tcpalive listen --json`
# on loopback, from CLIENTS (default 2) Python client processes. Counts /proc/PID/fd
# and VmRSS before (after a warm-up of 1000 cycles) and after (once every session has
# ended), and checks that every connection got its `end` event. Growth in either is a
# leak.
#
# Keepalive on listen is idle 1 s by default; CHURN_KA="--idle 7200" (the kernel's
# default) makes every connection leave a timer two hours out, which is what showed
# listen keeping the timers of departed connections.
#
#   scripts/bench-churn.sh [CYCLES] [CLIENTS]
source "$(dirname "$0")/bench-common.sh"
CYCLES=${1:-100000}
CLIENTS=${2:-2}
build_release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/churn.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
failed = 0
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.close()
    except OSError:
        failed += 1
        time.sleep(0.001)
print(failed)
PY

read -r -a KA <<< "${CHURN_KA:---idle 1 --intvl 1 --cnt 3}"
"$BIN" listen 127.0.0.1:0 --json "${KA[@]}" > "$work/listen.jsonl" & tl=$!; pids+=("$tl")
port=$(listen_port "$work/listen.jsonl")
ends() { grep -c '"event":"end"' "$work/listen.jsonl" || true; }
# Waits until listen has ended WANT sessions (its fds are back to the idle set).
settle() {
    local want=$1 deadline=$((SECONDS + 60))
    while (( SECONDS < deadline )); do
        (( $(ends) >= want )) && return
        sleep 0.1
    done
    echo "only $(ends) of $want sessions ended" >&2
}

# One long-lived connection stays open throughout, as in a real experiment: its
# timer sits in front of the churning ones' in listen's timer queue.
python3 -c 'import socket, sys, time; s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); time.sleep(100000)' "$port" & holder=$!; pids+=("$holder")
python3 "$work/churn.py" "$port" 1000 > /dev/null
settle 1000
sleep 0.5
fd0=$(fd_count "$tl"); rss0=$(rss_kib "$tl"); cpu0=$(cpu_ns "$tl")
t0=$(date +%s.%N)
per=$((CYCLES / CLIENTS))
cl=()
for i in $(seq 1 "$CLIENTS"); do python3 "$work/churn.py" "$port" "$per" > "$work/failed.$i" & cl+=($!); done
for p in "${cl[@]}"; do wait "$p"; done
t1=$(date +%s.%N)
total=$((per * CLIENTS))
settle $((1000 + total))
sleep 0.5
fd1=$(fd_count "$tl"); rss1=$(rss_kib "$tl"); cpu1=$(cpu_ns "$tl"); hwm=$(hwm_kib "$tl")
failed=$(cat "$work"/failed.* | awk '{ s += $1 } END { print s + 0 }')
kill -TERM "$tl"; wait "$tl" 2>/dev/null || true
summary=$(tail -1 "$work/listen.jsonl" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p')

secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "churn: listen ${KA[*]}: $total connect/close cycles from $CLIENTS clients in ${secs}s ($(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') cycles/s), $failed failed connects (kernel $(uname -r), $(nproc) cores)"
echo "listen fds:    $fd0 before, $fd1 after"
echo "listen VmRSS:  $rss0 KiB before, $rss1 KiB after (peak $hwm KiB)"
echo "listen CPU:    $(ms $((cpu1 - cpu0))) ms for the cycles ($(awk -v ns=$((cpu1 - cpu0)) -v n="$total" 'BEGIN { printf "%.1f", ns / 1e3 / n }') us per connection, JSON events included)"
echo "listen ended:  $(( $(ends) - 2 )) sessions (want $((1000 + total))); summary: $summary"
ok=PASS
(( fd1 <= fd0 )) || ok=FAIL
(( rss1 <= rss0 + 1024 )) || ok=FAIL
(( $(ends) - 2 == 1000 + total )) || ok=FAIL
echo "no fd growth, RSS growth <= 1 MiB, every session ended: $ok"
