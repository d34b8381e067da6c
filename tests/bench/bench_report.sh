#!/usr/bin/env bash
# Report benchmark: a store of 100k requests (tests/data/report/big.sql);
# times each format's writing and prints the HTML page's size. Reference in
# the same invocation: the CSV export of the same rows (ratio html/csv).
# Browser load time of the page: tests/e2e/report_browser.py ... --big.
# usage: tests/bench/bench_report.sh build/agentreplay build/tests/ar-mkstore
set -euo pipefail
ar=$1 mk=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$mk" "$work/big.db" "$src/tests/data/report/big.sql"
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
declare -A secs
for f in csv json text html; do
  secs[$f]=$(t "$ar" report "$work/big.db" --format $f -o "$work/out.$f")
  printf '%-5s %6.2f s  %9d bytes\n' $f "${secs[$f]}" "$(stat -c %s "$work/out.$f")"
done
echo "html/csv time ratio: $(echo "scale=2; ${secs[html]} / ${secs[csv]}" | bc)"
