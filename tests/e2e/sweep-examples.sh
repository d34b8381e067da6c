#!/usr/bin/env bash
# Every shipped example sweep (sweeps/*.yaml) parses, expands and lists its
# configs with `sweep --dry-run`; each lists as many configs as it says, with
# distinct names and keys, and every placeholder resolved but {port}.
# Usage: sweep-examples.sh AGENTREPLAY SWEEPS_DIR
set -u
bin=$1 dir=$2
fail=0
n=0
for f in "$dir"/*.yaml; do
  n=$((n + 1))
  out=$("$bin" sweep "$f" --dry-run 2>&1) || { echo "FAIL: $f: exit $?: $out"; fail=1; continue; }
  want=$(printf '%s\n' "$out" | sed -n '1s/.*): \([0-9]*\) config.*/\1/p')
  got=$(printf '%s\n' "$out" | grep -c '^[0-9]*\. ')
  [ -n "$want" ] && [ "$want" = "$got" ] && [ "$got" -gt 0 ] || { echo "FAIL: $f: header says '$want' configs, listed $got"; fail=1; }
  dup=$(printf '%s\n' "$out" | grep -E '^[0-9]+\. |^   key: ' | sed 's/^[0-9]*\. //' | sort | uniq -d)
  [ -z "$dup" ] || { echo "FAIL: $f: duplicate names or keys: $dup"; fail=1; }
  left=$(printf '%s\n' "$out" | grep '^   command:' | sed "s/{port}//g" | grep -o '{[a-z_][a-z0-9_.-]*}' | head -1)
  [ -z "$left" ] || { echo "FAIL: $f: unresolved placeholder $left"; fail=1; }
done
for want in llama-server vllm sglang ollama mlx-lm lmstudio sim; do
  [ -f "$dir/$want.yaml" ] || { echo "FAIL: sweeps/$want.yaml is missing"; fail=1; }
done
[ $fail = 0 ] && echo "sweep examples: $n configs files parse"
exit $fail
