#!/usr/bin/env bash
# The `tcpalive lab` figures of docs/lab.md: runs every scenario N times (default 3) as an
# unprivileged user and prints outcome, errno, exit code, detect_s and
# predicted_detect_s of each run's `end`. Run as root it drops to nobody with
# setpriv; otherwise it runs as you. No root is needed by the lab itself.
#   scripts/lab-figures.sh [N]        (uses target/release/tcpalive, or $TCPALIVE)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TCPALIVE:-target/release/tcpalive}
n=${1:-3}
as_user=()
if [ "$(id -u)" = 0 ]; then
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
printf '%-12s %-18s %-11s %4s %9s %9s\n' scenario outcome errno exit detect_s predicted
for s in alive cable-pull flap reboot exits aborts hung busy not-reading; do
  for _ in $(seq 1 "$n"); do
    # A scenario's exit code is its outcome's (6 for a timeout): not a failure here.
    end=$("${as_user[@]}" "$bin" lab "$s" --json --quiet) || true
    printf '%s\n' "$end" | python3 -c '
import json, sys
e = json.loads(sys.stdin.read())
f = lambda v: "-" if v is None else "%.3f" % v
print("%-12s %-18s %-11s %4d %9s %9s" % (sys.argv[1], e["outcome"], e["errno"] or "-",
      e["exit_code"], f(e["detect_s"]), f(e["predicted_detect_s"])))' "$s"
  done
done
