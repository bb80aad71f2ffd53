#!/usr/bin/env bash
# Property-based fuzzing of every parser that takes outside input: the command line
# (src/config/props.rs: durations, keepalive seconds, counts, --user-timeout, HOST:PORT,
# [HOST:]PORT, --expect/--within, whole argument vectors), the heartbeat line
# protocol read from the network (src/model/heartbeat_props.rs) and the capture
# reader of `explain` (src/model/capture/props.rs: pcap/pcapng, arbitrary or
# damaged bytes). The properties are
# unit tests of the library (`cargo test --lib`), selected by the `props::` in their
# path. Runs each property PROPTEST_CASES times (default 200000) in release mode and
# prints one line per property plus the count and the total time.
#
# Fails when a property fails, and when fewer than FUZZ_MIN_PROPS properties ran
# (default 27, the number in the tree): a filter that selects nothing is a failure,
# not a pass.
#
#   scripts/fuzz-parsers.sh            # 200k cases per property
#   PROPTEST_CASES=2000000 scripts/fuzz-parsers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-200000}"
min_props="${FUZZ_MIN_PROPS:-27}"
# Large case counts: do not let proptest's shrinking budget cut in.
export PROPTEST_MAX_SHRINK_ITERS="${PROPTEST_MAX_SHRINK_ITERS:-100000}"
echo "fuzz-parsers: PROPTEST_CASES=$PROPTEST_CASES per property ($(nproc) cores, $(uname -r))"
cargo test --release --quiet --lib --no-run 2>/dev/null || cargo test --release --lib --no-run
log=$(mktemp -t fuzz-parsers.XXXXXXXX)
trap 'rm -f "$log"' EXIT
start=$(date +%s%N)
set +e
cargo test --release --lib props:: -- --test-threads="$(nproc)" 2>&1 | tee "$log" \
    | grep -E '^test |test result|panicked|minimal failing|Test failed'
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s%N)
props=$(grep -cE '^test [a-z_:]*props::[a-z0-9_]+ \.\.\. ok$' "$log" || true)
failed=$(grep -cE '^test [a-z_:]*props::[a-z0-9_]+ \.\.\. FAILED$' "$log" || true)
ms=$(( (end - start) / 1000000 ))
ran=$((props + failed))
if [ "$rc" -eq 0 ] && [ "$ran" -lt "$min_props" ]; then
    echo "fuzz-parsers: only $ran properties ran, expected at least $min_props" >&2
    rc=1
fi
printf 'fuzz-parsers: %s properties passed, %s failed, %s cases each, %d.%d s wall; exit %s\n' \
    "$props" "$failed" "$PROPTEST_CASES" $((ms / 1000)) $((ms % 1000 / 100)) "$rc"
exit "$rc"
