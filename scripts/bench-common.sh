# Shared helpers for scripts/bench-*.sh (sourced, not run).
# CPU time comes from /proc/PID/task/*/schedstat (nanoseconds on the CPU, summed over
# threads): clock ticks (utime+stime, 10 ms) are too coarse for a few ms per minute.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${TCPALIVE_BIN:-$ROOT/target/release/tcpalive}"

build_release() {
    if [[ -z "${TCPALIVE_BIN:-}" ]]; then
        (cd "$ROOT" && cargo build --release --quiet 2>/dev/null) || (cd "$ROOT" && cargo build --release)
    fi
}

need_socat() {
    if ! command -v socat >/dev/null; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "installing socat (apt-get install -y socat)" >&2
            apt-get install -y -qq socat >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq socat >/dev/null; }
        else
            echo "socat is missing: apt-get install socat (the comparison needs it)" >&2
            exit 1
        fi
    fi
}

# CPU nanoseconds of one process (all its threads).
cpu_ns() {
    local pid=$1 total=0 f v
    for f in /proc/"$pid"/task/*/schedstat; do
        read -r v _ < "$f" 2>/dev/null || continue
        total=$((total + v))
    done
    echo "$total"
}

# CPU nanoseconds of a process and all its children (socat fork mode).
cpu_ns_tree() {
    local pid=$1 total c
    total=$(cpu_ns "$pid")
    for c in $(pgrep -P "$pid" || true); do
        total=$((total + $(cpu_ns "$c" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }

# Sum of RSS and of PSS (shared pages divided among sharers) over a process tree, KiB.
tree_mem_kib() {
    local pid=$1 rss=0 pss=0 p r s
    for p in "$pid" $(pgrep -P "$pid" || true); do
        r=$(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        s=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        rss=$((rss + ${r:-0})); pss=$((pss + ${s:-0}))
    done
    echo "$rss $pss"
}

# Waits for a `listening` JSON line in FILE and prints the port.
listen_port() {
    local file=$1 i
    for i in $(seq 1 100); do
        if [[ -s $file ]]; then
            head -1 "$file" | sed -n 's/.*"local":"[^"]*:\([0-9]*\)".*/\1/p'
            return
        fi
        sleep 0.05
    done
    echo "no listening line in $file" >&2
    return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ms() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e6 }'; }
