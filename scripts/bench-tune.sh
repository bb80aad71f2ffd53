#!/usr/bin/env bash
# bench-tune.sh [SOCKETS...]: how long `tune --pid` takes for a process holding
# SOCKETS established sockets (default: 500 2000 5000), changing them and as a
# dry run (target: 5,000 sockets under 2 s, and linear). The owner is a Python
# process holding SOCKETS/2 loopback connections (both ends), keepalive off; it is
# tuned to a new --idle each round so every socket is changed. Loopback only;
# needs python3 and the release build (built if missing; TCPALIVE_BIN overrides).

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
build_release
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(500 2000 5000)
ulimit -n "$(( $(ulimit -Hn) < 65536 ? $(ulimit -Hn) : 65536 ))"

OWNER=""
cleanup() { [[ -n $OWNER ]] && kill "$OWNER" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

now() { date +%s.%N; }
printf '%8s %14s %14s %s\n' sockets "tune s" "dry-run s" "end"
idle=100
for n in "${SIZES[@]}"; do
    exec {out}< <(python3 - "$((n / 2))" <<'PY'
import resource, socket, sys, time
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * n + 100), hard))
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4096)
keep = []
for _ in range(n):
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); keep += [c, a]
import os
print(os.getpid(), l.getsockname()[1], flush=True)
time.sleep(3600)
PY
)
    read -r OWNER PORT <&"$out"
    idle=$((idle + 1))
    t0=$(now)
    end=$("$BIN" tune --pid "$OWNER" --port "$PORT" --idle "$idle" --json | tail -n1)
    t1=$(now)
    "$BIN" tune --pid "$OWNER" --port "$PORT" --idle "$((idle + 1))" --dry-run --json >/dev/null
    t2=$(now)
    msg=$(sed -E 's/.*"message":"([^"]*)".*/\1/' <<<"$end")
    printf '%8s %14.3f %14.3f %s\n' "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
        "$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}')" "$msg"
    kill "$OWNER"; wait "$OWNER" 2>/dev/null || true; OWNER=""
    exec {out}<&-
done
