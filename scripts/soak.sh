#!/usr/bin/env bash
# soak.sh MINUTES: tcpalive against hostile peers for MINUTES (default 2), on
# loopback only. Prints RSS, descriptor count and CPU time of every tcpalive
# process under test at the start (after a 5 s warm-up) and at the end, then
# stops them with SIGTERM and checks each ended with exit 143 and, where its JSON
# is kept, an `end` as its last line.
#
# Under test:
#   listen      `listen --json` served by: a churn loop (connect, close), 300 silent
#               clients (slowloris), 2 clients sending endless lines, 1 client
#               sending endless bytes without a newline;
#   unread      `listen --json` whose stdout is a FIFO nobody reads, with its own churn;
#   recon-fin   `connect --reconnect` against a server that accepts and closes at once;
#   recon-rst   `connect --reconnect` against a server that resets at accept;
#   watch-port  `watch --port` on listen's port (every churned connection passes by);
#   watch-pid   `watch --pid` of listen.
# The closing and resetting servers are tcpalive's own fault modes
# (`listen --close-after 10ms`, `listen --reset-after 10ms`).
#
# Needs bash (/dev/tcp) and the release build (built if missing; TCPALIVE_BIN
# overrides). No root, no network beyond 127.0.0.1.

set -euo pipefail
MINUTES="${1:-2}"
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
build_release

WORK="$(mktemp -d /tmp/tcpalive-soak.XXXXXX)"
declare -A PID
PEERS=()
cleanup() {
    for p in "${PEERS[@]}"; do kill "$p" 2>/dev/null || true; done
    for name in "${!PID[@]}"; do kill -KILL "${PID[$name]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The port a `listen --json` announced in its first line.
port_of() {
    local file=$1 line
    for _ in $(seq 100); do
        line=$(head -n1 "$file" 2>/dev/null || true)
        if [[ $line == *'"listening"'* ]]; then
            sed -E 's/.*"local":"[^"]*:([0-9]+)".*/\1/' <<<"$line"
            return
        fi
        sleep 0.05
    done
    echo "no listening line in $file" >&2
    exit 1
}

# A free loopback port (for the listen whose stdout cannot be read).
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        if ! (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

start() { # NAME OUTFILE ARGS...
    local name=$1 out=$2
    shift 2
    "$BIN" "$@" >"$out" 2>>"$WORK/$name.err" &
    PID[$name]=$!
}

churn() { # PORT: connect and close as fast as bash can
    local port=$1
    while :; do (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null || sleep 0.01; done
}

# --- the processes under test and their peers -----------------------------------
start listen "$WORK/listen.jsonl" listen 127.0.0.1:0 --json --max-conns 100000
LPORT=$(port_of "$WORK/listen.jsonl")

UPORT=$(free_port)
mkfifo "$WORK/unread.fifo"
exec 7<>"$WORK/unread.fifo" # held open, never read
start unread "$WORK/unread.fifo" listen 127.0.0.1:"$UPORT" --json --max-conns 100000

"$BIN" listen 127.0.0.1:0 --json --close-after 10ms --max-conns 100000 >"$WORK/fin.jsonl" 2>/dev/null &
PEERS+=($!)
"$BIN" listen 127.0.0.1:0 --json --reset-after 10ms --max-conns 100000 >"$WORK/rst.jsonl" 2>/dev/null &
PEERS+=($!)
FPORT=$(port_of "$WORK/fin.jsonl")
RPORT=$(port_of "$WORK/rst.jsonl")
start recon-fin "$WORK/recon-fin.jsonl" connect 127.0.0.1:"$FPORT" --reconnect --json
start recon-rst "$WORK/recon-rst.jsonl" connect 127.0.0.1:"$RPORT" --reconnect --json
start watch-port "$WORK/watch-port.jsonl" watch --port "$LPORT" --json
start watch-pid "$WORK/watch-pid.jsonl" watch --pid "${PID[listen]}" --json

churn "$LPORT" & PEERS+=($!)
churn "$LPORT" & PEERS+=($!)
churn "$UPORT" & PEERS+=($!)
# Slowloris: 300 connections that never send, held by one shell.
(
    for i in $(seq 300); do exec {fd}<>/dev/tcp/127.0.0.1/"$LPORT"; done
    sleep infinity
) & PEERS+=($!)
# Endless lines (two clients) and endless bytes with no newline at all.
(yes 'hello hello hello hello' >/dev/tcp/127.0.0.1/"$LPORT") 2>/dev/null & PEERS+=($!)
(yes 'PING 1' >/dev/tcp/127.0.0.1/"$LPORT") 2>/dev/null & PEERS+=($!)
(tr '\0' 'x' </dev/zero >/dev/tcp/127.0.0.1/"$LPORT") 2>/dev/null & PEERS+=($!)

# --- measurements -----------------------------------------------------------------
NAMES=(listen unread recon-fin recon-rst watch-port watch-pid)
rss_kib() { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status 2>/dev/null || echo "?"; }
fds() { ls /proc/"$1"/fd 2>/dev/null | wc -l; }
declare -A RSS0 FD0 CPU0
snapshot() { # LABEL
    printf '%-10s %-11s %10s %6s %12s\n' "$1" process "RSS KiB" fds "CPU s"
    for n in "${NAMES[@]}"; do
        local p=${PID[$n]} cpu
        cpu=$(cpu_ns "$p")
        printf '%-10s %-11s %10s %6s %12.3f\n' "$1" "$n" "$(rss_kib "$p")" "$(fds "$p")" \
            "$(awk -v n="$cpu" 'BEGIN{print n/1e9}')"
        if [[ $1 == start ]]; then
            RSS0[$n]=$(rss_kib "$p"); FD0[$n]=$(fds "$p"); CPU0[$n]=$cpu
        fi
    done
}

echo "soak: $MINUTES minute(s), binary $BIN"
sleep 5
T0=$(date +%s.%N)
snapshot start
sleep "${SOAK_SECONDS:-$((MINUTES * 60))}"
T1=$(date +%s.%N)
snapshot end
echo
printf '%-11s %12s %10s %14s\n' process "RSS delta" "fd delta" "CPU % (run)"
for n in "${NAMES[@]}"; do
    p=${PID[$n]}
    printf '%-11s %+10s K %+10s %14.2f\n' "$n" "$(( $(rss_kib "$p") - RSS0[$n] ))" \
        "$(( $(fds "$p") - FD0[$n] ))" \
        "$(awk -v a="${CPU0[$n]}" -v b="$(cpu_ns "$p")" -v t0="$T0" -v t1="$T1" \
            'BEGIN{print (b-a)/1e9/(t1-t0)*100}')"
done

# Work done meanwhile, from the kept JSON (the unread listen's is not readable).
echo
echo "listen: $(grep -c '"event":"connected"' "$WORK/listen.jsonl") connections followed"
echo "recon-fin: $(grep -c '"event":"down"' "$WORK/recon-fin.jsonl") outages logged"
echo "recon-rst: $(grep -c '"event":"down"' "$WORK/recon-rst.jsonl") outages logged"

# --- stop: SIGTERM, exit 143 and an `end` last ------------------------------------
for p in "${PEERS[@]}"; do kill "$p" 2>/dev/null || true; done
PEERS=()
status=0
for n in "${NAMES[@]}"; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
for n in "${NAMES[@]}"; do
    set +e
    wait "${PID[$n]}"
    code=$?
    set -e
    unset "PID[$n]"
    last="(not kept)"
    if [[ $n != unread ]]; then
        last=$(tail -n1 "$WORK/$n.jsonl" | grep -o '"event":"end"' || echo "NO END")
    fi
    printf 'stop %-11s exit %3s last line %s\n' "$n" "$code" "$last"
    if [[ $code -ne 143 || $last == "NO END" ]]; then status=1; fi
    if [[ -s $WORK/$n.err ]]; then sed "s/^/  $n stderr: /" "$WORK/$n.err" | head -3; fi
done
exit "$status"
