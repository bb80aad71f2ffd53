#!/usr/bin/env bash
# idle-limit's wall time in the lab: how long the one-round measurement takes to find
# a middlebox's idle timeout T, against the goal of at most 1.2 x T + 5 s, and
# whether the limit is within the resolution it states. For each limit it runs
# `scripts/lab.sh nat-limit --ct-timeout T` (a NAT router dropping forgotten flows
# silently) and `scripts/lab.sh proxy-limit --proxy P --proxy-timeout T` (a TCP proxy
# closing idle flows), at once, and prints one Markdown row per run.
#
#   sudo scripts/bench-idle-limit.sh [T ...]     (default: 10 30 60 120 300)
#
# Environment: TCPALIVE (the binary; default target/release/tcpalive), PARALLEL
# (idle-limit --parallel, default 1000: fine to about 830 s at --resolution 1s;
# the default 300 is fine to about 100 s), PROXY (haproxy, nginx or socat; default
# socat), IDLE_LIMIT_ARGS (more idle-limit options, e.g. "--direction out").
# "Within resolution": |found - T| <= the resolution the end states + 50 ms (a
# proxy's own timer: with 1000 flows at once haproxy closed flows 2-31 ms before
# T, counted from HELD's arrival on this side; nginx, whose timers move only by
# 300 ms or more, needs more, docs/kernel-facts.md). The wall time is the measurement's (idle-limit's clock at its end, or at
# --verify's start): it includes connecting, every check and the wait for the
# listener's last report. Needs root (network namespaces), nft, jq and the proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TCPALIVE:-target/release/tcpalive}
parallel=${PARALLEL:-1000}
proxy=${PROXY:-socat}
read -r -a extra <<<"${IDLE_LIMIT_ARGS:-}"
[ $# -gt 0 ] || set -- 10 30 60 120 300
[ -x "$bin" ] || { echo "bench-idle-limit: no $bin (cargo build --release, or set TCPALIVE)" >&2; exit 2; }
work=$(mktemp -d /tmp/bench-idle-limit.XXXXXX)
# kept when a run missed, for its logs (lab.sh --out DIR keeps every file)
keep=0
trap '[ "$keep" = 1 ] && echo "bench-idle-limit: the runs are in $work" >&2 || rm -rf "$work"' EXIT

# run KEY T ARGS...: one lab run in the background, its verdict in $work/KEY
run() {
    local key=$1 t=$2; shift 2
    local cmd=(scripts/lab.sh "$@" --max-wait $((2 * t + 120)) --parallel "$parallel" "${extra[@]+"${extra[@]}"}")
    printf '%s\n' "sudo ${cmd[*]}" >"$work/$key.cmd"
    TCPALIVE=$bin bash "${cmd[@]}" --out "$work/$key" >"$work/$key.log" 2>&1 &
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
for t in "$@"; do
    case $t in ''|*[!0-9]*) echo "bench-idle-limit: limits are whole seconds, not '$t'" >&2; exit 2 ;; esac
    run "nat-$t" "$t" nat-limit --ct-timeout "$t"
    run "proxy-$t" "$t" proxy-limit --proxy "$proxy" --proxy-timeout "$t"
done
wait

echo "load before: $load, after: $(cut -d' ' -f1-3 /proc/loadavg); $("$bin" --version)"
echo
echo '| limit T | middlebox | found | resolution | drop mode | wall time | / T | goal 1.2 x T + 5 s | within resolution | command |'
echo '|---|---|---|---|---|---|---|---|---|---|'
fail=0
for t in "$@"; do
    for key in "nat-$t" "proxy-$t"; do
        v=$work/$key/verdict.json
        if [ ! -s "$v" ]; then
            echo "| $t s | $key | no verdict ($(tail -1 "$work/$key.log")) | | | | | | | \`$(cat "$work/$key.cmd")\` |"
            fail=1; continue
        fi
        row=$(jq -r --arg t "$t" --arg cmd "$(cat "$work/$key.cmd")" '
            ($t | tonumber) as $t
            | (if .scenario == "proxy-limit" then .proxy else "NAT (drop)" end) as $box
            | (.measure_s // .wall_s) as $wall
            | (if .idle_limit_s == null then false
               else ((.idle_limit_s - $t) | fabs) <= .resolution_s + (if .proxy == "nginx" then 0.35 else 0.05 end) end) as $within
            | ($wall <= 1.2 * $t + 5) as $fast
            | "| \($t) s | \($box) | \(.idle_limit_s // "none") s | +-\(.resolution_s // "-") s | \(.drop_mode // "-")"
              + " | \($wall) s | \(if $wall == null then "-" else ($wall / $t * 100 | round / 100) end)"
              + " | \(if $fast then "met" else "MISSED" end) (\(1.2 * $t + 5) s) | \(if $within then "yes" else "NO" end)"
              + " | `\($cmd)` |",
              (if $fast and $within and .exit_code == 0 then "" else "FAIL" end)' "$v")
        printf '%s\n' "$(head -1 <<<"$row")"
        [ -z "$(sed -n 2p <<<"$row")" ] || fail=1
    done
done
keep=$fail
exit $fail
