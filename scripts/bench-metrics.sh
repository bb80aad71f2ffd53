#!/usr/bin/env bash
# bench-metrics.sh [CLIENTS] [SECONDS]: watch --metrics answering scrapes while
# CLIENTS (default 1000) hostile clients are connected for SECONDS (default 30):
# a quarter each silent, slowloris, oversized (100 KB head) and pipelined without
# reading (scripts/hostile-http.py). Prints the scrape latency (target: under
# 100 ms), watch's RSS and descriptors before, at the peak and after, and checks
# watch still ends on SIGTERM with exit 143. Loopback only; needs python3 and the
# release build (built if missing; TCPALIVE_BIN overrides).

set -euo pipefail
CLIENTS="${1:-1000}"
SECONDS_RUN="${2:-30}"
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
build_release
# The attacker holds CLIENTS descriptors (and watch as many, up to its cap).
ulimit -n "$(( $(ulimit -Hn) < 8192 ? $(ulimit -Hn) : 8192 ))"

WORK="$(mktemp -d /tmp/tcpalive-bench-metrics.XXXXXX)"
WATCH=""
cleanup() {
    [[ -n $WATCH ]] && kill -KILL "$WATCH" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" watch --port 1 --json --metrics 127.0.0.1:0 >"$WORK/watch.jsonl" 2>"$WORK/watch.err" &
WATCH=$!
PORT=""
for _ in $(seq 100); do
    PORT=$(sed -nE 's#.*http://127\.0\.0\.1:([0-9]+)/metrics.*#\1#p' "$WORK/watch.err")
    [[ -n $PORT ]] && break
    sleep 0.05
done
[[ -n $PORT ]] || { echo "watch did not say where it serves" >&2; cat "$WORK/watch.err" >&2; exit 1; }

rss() { awk '/^VmRSS:/ {print $2}' /proc/"$WATCH"/status; }
hwm() { awk '/^VmHWM:/ {print $2}' /proc/"$WATCH"/status; }
fds() { ls /proc/"$WATCH"/fd | wc -l; }
echo "bench-metrics: $CLIENTS hostile clients for ${SECONDS_RUN}s, binary $BIN"
echo "before: RSS $(rss) KiB, $(fds) fds"
peak_fds=0
( while kill -0 "$WATCH" 2>/dev/null; do n=$(fds); echo "$n"; sleep 0.5; done ) >"$WORK/fds" &
SAMPLER=$!
status=0
python3 "$(dirname "${BASH_SOURCE[0]}")/hostile-http.py" "$PORT" "$CLIENTS" "$SECONDS_RUN" 50 || status=1
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
peak_fds=$(sort -n "$WORK/fds" | tail -n1)
echo "peak: RSS $(hwm) KiB (VmHWM), $peak_fds fds"
sleep 7 # past the 5 s head timeout and the lingering close
echo "after: RSS $(rss) KiB, $(fds) fds"
kill -TERM "$WATCH"
set +e
wait "$WATCH"
code=$?
set -e
WATCH=""
echo "stop: exit $code, last line $(tail -n1 "$WORK/watch.jsonl" | grep -o '"event":"end"' || echo 'NO END')"
[[ $code -eq 143 ]] || status=1
exit "$status"
