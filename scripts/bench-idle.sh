#!/usr/bin/env bash
# Idle cost: CPU time of `tcpalive connect` watching an idle loopback connection with
# idle 1 s, intvl 1 s (a keepalive probe every second), and of `tcpalive listen`
# holding it, over DURATION seconds (default 60); side by side, socat doing the same:
#   socat -u TCP:HOST:PORT,keepalive,keepidle=1,keepintvl=1,keepcnt=3 STDOUT
# against a socat listener with the same options, and a second `connect --quiet`
# (no timeline written: the cost of the wake-ups alone). Target (issue 24): <= 5 ms
# CPU per minute for `connect` at one probe per second. Prints one line per process
# and the figures scaled to one minute.
#
#   scripts/bench-idle.sh [DURATION]
source "$(dirname "$0")/bench-common.sh"
DURATION=${1:-60}
build_release
need_socat
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

KA=(--idle 1 --intvl 1 --cnt 3)
SOCAT_KA="keepalive,keepidle=1,keepintvl=1,keepcnt=3"

# Pair 1: tcpalive listen <- tcpalive connect (JSON timeline kept to count probes).
"$BIN" listen 127.0.0.1:0 --json "${KA[@]}" > "$work/listen.jsonl" & tl=$!; pids+=("$tl")
port=$(listen_port "$work/listen.jsonl")
"$BIN" connect "127.0.0.1:$port" --json "${KA[@]}" --for $((DURATION + 10)) > "$work/connect.jsonl" & tc=$!; pids+=("$tc")

# The same connect without a timeline: what the wake-ups alone cost.
"$BIN" connect "127.0.0.1:$port" --quiet "${KA[@]}" --for $((DURATION + 10)) > /dev/null & tq=$!; pids+=("$tq")

# Pair 2: socat listen <- socat connect, both with the same keepalive settings.
sport=$(free_port)
socat -u "TCP-LISTEN:$sport,bind=127.0.0.1,reuseaddr,$SOCAT_KA" STDOUT > /dev/null & sl=$!; pids+=("$sl")
sleep 0.3
socat -u "TCP:127.0.0.1:$sport,$SOCAT_KA" STDOUT > /dev/null & sc=$!; pids+=("$sc")

sleep 1   # connected, settings applied, start-up costs paid
declare -A start
for p in $tl $tc $tq $sl $sc; do start[$p]=$(cpu_ns "$p"); done
t0=$(date +%s.%N)
sleep "$DURATION"
t1=$(date +%s.%N)
declare -A used
for p in $tl $tc $tq $sl $sc; do used[$p]=$(( $(cpu_ns "$p") - ${start[$p]} )); done
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
probes=$(grep -c '"event":"probe-acked"' "$work/connect.jsonl" || true)
events=$(wc -l < "$work/connect.jsonl")

echo "idle cost over ${elapsed}s, keepalive idle 1s intvl 1s cnt 3 on loopback (kernel $(uname -r), $(nproc) cores)"
echo "tcpalive connect saw $probes answered probes ($events events) in the window"
printf '%-34s %10s %14s %8s\n' process "cpu ms" "cpu ms/min" "RSS KiB"
row() { printf '%-34s %10s %14s %8s\n' "$1" "$(ms "$2")" "$(awk -v ns="$2" -v s="$elapsed" 'BEGIN { printf "%.2f", ns / 1e6 * 60 / s }')" "$(rss_kib "$3")"; }
row "tcpalive connect --json" "${used[$tc]}" "$tc"
row "tcpalive connect --quiet" "${used[$tq]}" "$tq"
row "tcpalive listen --json (2 conns)" "${used[$tl]}" "$tl"
row "socat -u TCP:...,keepalive STDOUT" "${used[$sc]}" "$sc"
row "socat -u TCP-LISTEN:...,keepalive" "${used[$sl]}" "$sl"
worst=$(awk -v a="${used[$tc]}" -v b="${used[$tq]}" -v l="${used[$tl]}" -v s="$elapsed" 'BEGIN { m = a > b ? a : b; m = m > l / 2 ? m : l / 2; printf "%.2f", m / 1e6 * 60 / s }')
verdict=$(awk -v w="$worst" 'BEGIN { print (w <= 5) ? "PASS" : "FAIL" }')
echo "target <= 5 ms CPU per minute per connection at one probe per second (listen: per connection): worst $worst ms/min: $verdict"
