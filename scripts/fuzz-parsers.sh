#!/usr/bin/env bash
# Property-based fuzzing of every parser that takes outside input: the command line
# (src/config_props.rs: durations, keepalive seconds, counts, --user-timeout, HOST:PORT,
# [HOST:]PORT, --expect/--within, whole argument vectors) and the heartbeat line
# protocol read from the network (src/heartbeat_props.rs). Runs each property PROPTEST_CASES times (default 200000) in release
# mode and prints one line per property plus the total time.
#
#   scripts/fuzz-parsers.sh            # 200k cases per property
#   PROPTEST_CASES=2000000 scripts/fuzz-parsers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-200000}"
# Large case counts: do not let proptest's per-test timeouts or shrinking budget cut in.
export PROPTEST_MAX_SHRINK_ITERS="${PROPTEST_MAX_SHRINK_ITERS:-100000}"
echo "fuzz-parsers: PROPTEST_CASES=$PROPTEST_CASES per property ($(nproc) cores, $(uname -r))"
cargo test --release --quiet --bin tcpalive --no-run 2>/dev/null || cargo test --release --bin tcpalive --no-run
start=$(date +%s.%N)
set +e
cargo test --release --bin tcpalive _props:: -- --test-threads="$(nproc)" 2>&1 | tee /tmp/fuzz-parsers.$$.log \
    | grep -E '^test |test result|panicked|minimal failing|Test failed' 
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s.%N)
props=$(grep -c '^test [a-z_]*_props::.* ok$' /tmp/fuzz-parsers.$$.log || true)
failed=$(grep -c '^test [a-z_]*_props::.* FAILED$' /tmp/fuzz-parsers.$$.log || true)
printf 'fuzz-parsers: %s properties passed, %s failed, %s cases each, %.1f s wall; exit %s\n' \
    "$props" "$failed" "$PROPTEST_CASES" "$(echo "$end - $start" | bc)" "$rc"
rm -f /tmp/fuzz-parsers.$$.log
exit "$rc"
