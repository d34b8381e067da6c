#!/usr/bin/env bash
# The end-to-end paths under valgrind memcheck: every command a sweep or a user runs, against real
# HTTP servers on 127.0.0.1 (sim serve, the fault-injecting server), including error paths (a reset
# mid-stream, a server exiting, bad input). Fails on any memcheck error or definite/indirect leak.
# Timing figures are meaningless under valgrind; only memory correctness is checked here.
# Usage: valgrind.sh AGENTREPLAY AR_FAULTSRV      (needs valgrind; ~1-2 min; exit 77 without it)
set -u
AR=${1:?usage: valgrind.sh AGENTREPLAY AR_FAULTSRV}
FS=${2:?usage: valgrind.sh AGENTREPLAY AR_FAULTSRV}
command -v valgrind > /dev/null || { echo "valgrind missing: skipped"; exit 77; }
# a sanitizer build cannot run under valgrind (the ASan suite covers it instead)
if grep -qa __asan_init "$AR"; then echo "sanitizer build: skipped"; exit 77; fi
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TRACE="$SRC/traces/examples/small-session.jsonl"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null; wait "$p" 2> /dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
fails=0
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-fds=no --num-callers=30)

# vg NAME EXPECTED_RC CMD...: runs CMD under memcheck; fails on rc 99 (memcheck) or another rc
vg() {
  local name=$1 want=$2; shift 2
  "${VG[@]}" --log-file="$work/$name.vg" "$@" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  if [ "$rc" -eq 99 ] || [ -s "$work/$name.vg" ]; then
    echo "FAIL $name: memcheck reported errors"; cat "$work/$name.vg"; fails=$((fails + 1))
  elif [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, expected $want"; tail -5 "$work/$name.err"; fails=$((fails + 1))
  else
    echo "ok   $name (exit $rc, memcheck clean)"
  fi
}

# start_fs ARGS...: the fault-injecting server (not under valgrind); sets $url
start_fs() {
  rm -f "$work/fs.port"
  "$FS" --port 0 --port-file "$work/fs.port" "$@" > /dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do [ -s "$work/fs.port" ] && break; sleep 0.01; done
  url="http://127.0.0.1:$(cat "$work/fs.port")"
}

vg trace_validate 0 "$AR" trace validate "$TRACE"
vg trace_cat_zst 0 "$AR" trace cat "$SRC/traces/examples/gen-codex-32k.jsonl.zst" -o "$work/cat.jsonl"
printf '{"type":"session","format":"agentreplay-trace/1"}\n{"type":"turn","i":0}\n' > "$work/bad.jsonl"
vg trace_bad 2 "$AR" trace validate "$work/bad.jsonl"
vg gen 0 "$AR" gen --depth 32k --turns 6 --style claude-code -o "$work/g.jsonl.zst"
vg run_sim_inprocess 0 "$AR" run --quiet --json --db "$work/a.db" --repeats 1 "$TRACE"

start_fs --ttft-ms 5 --itl-ms 1
vg run_openai 0 "$AR" run --quiet --backend "openai:$url" --db "$work/b.db" --repeats 1 --warmup 0 "$TRACE"
vg run_concurrency 0 "$AR" run --quiet --backend "openai:$url" --db "$work/b.db" --repeats 1 --warmup 0 \
  --concurrency 8 --arrival stagger:5ms "$TRACE"
start_fs --ttft-ms 5 --itl-ms 1 --fault "reset_mid_stream@2:3" --fault "http_status@4:500" --fault "garbage@5"
vg run_faults 1 "$AR" run --quiet --backend "openai:$url" --db "$work/c.db" --repeats 1 --warmup 0 "$TRACE"
start_fs --ttft-ms 5 --itl-ms 1 --fault "exit@3:1"
vg run_server_exits 1 "$AR" run --quiet --backend "openai:$url" --db "$work/d.db" --repeats 1 --warmup 0 "$TRACE"
vg run_unreachable 3 "$AR" run --quiet --backend "openai:http://127.0.0.1:9" --db "$work/e.db" "$TRACE"

# sim serve itself under memcheck, driven by a replay, then stopped with SIGTERM
rm -f "$work/sim.port"
"${VG[@]}" --log-file="$work/sim_serve.vg" "$AR" sim serve --port 0 --port-file "$work/sim.port" --time-scale 200 \
  > /dev/null 2> "$work/sim_serve.err" &
simpid=$!
for _ in $(seq 1 600); do [ -s "$work/sim.port" ] && break; sleep 0.05; done
vg run_against_sim_serve 0 "$AR" run --quiet --backend "openai:http://127.0.0.1:$(cat "$work/sim.port")" \
  --db "$work/f.db" --repeats 1 --warmup 0 "$TRACE"
vg run_llama_native_sim_serve 0 "$AR" run --quiet --backend "llama-server:http://127.0.0.1:$(cat "$work/sim.port")" \
  --db "$work/f.db" --repeats 1 --warmup 0 "$TRACE"
kill -TERM "$simpid"; wait "$simpid"; rc=$?
if [ "$rc" -eq 99 ] || [ -s "$work/sim_serve.vg" ]; then
  echo "FAIL sim_serve: memcheck reported errors (exit $rc)"; cat "$work/sim_serve.vg"; fails=$((fails + 1))
else
  echo "ok   sim_serve (exit $rc, memcheck clean)"
fi

# importers (a real Claude Code log, a token-only WEKA trace, auto-detection) with redaction
D="$SRC/tests/data/import"
vg import_claude_code 0 "$AR" import claude-code "$D/claude-code/yael-peretz_jgive_transcript.jsonl" -o "$work/cc.jsonl"
vg import_auto_weka 0 "$AR" import auto "$(ls "$D"/weka/*.json | head -1)" -o "$work/w.jsonl"
printf 'not json\n' > "$work/junk.jsonl"
vg import_unknown 2 "$AR" import auto "$work/junk.jsonl" -o "$work/j.jsonl"

# a sweep owning sim-serve servers (one runs out of memory), resumed, and db merge
cat > "$work/sweep.yaml" << EOF
name: "{model}"
backends:
  sim:
    adapter: openai
    command: [$AR, sim, serve, --port, "{port}", --profile, "{profile}", --time-scale, "100000", --load-time, "1"]
    health: /health
    start_timeout: 20s
    grace: 3s
models:
  - {name: qwen3-32b, profile: "model=qwen3-32b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm"}
  - {name: gemma-3-27b, profile: "model=gemma-3-27b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm"}
traces: ["$SRC/traces/examples/gen-codex-32k.jsonl.zst"]
measure: {repeats: 1, warmup: 0, cold: tiers, until_fail: true, bisect: true}
EOF
vg sweep 0 env XDG_CACHE_HOME="$work/cache" "$AR" sweep "$work/sweep.yaml" --db "$work/s1.db" --quiet --shard 1/2
vg sweep_resume 0 env XDG_CACHE_HOME="$work/cache" "$AR" sweep "$work/sweep.yaml" --db "$work/s1.db" --quiet --shard 1/2 --resume
vg sweep_shard2 0 env XDG_CACHE_HOME="$work/cache" "$AR" sweep "$work/sweep.yaml" --db "$work/s2.db" --quiet --shard 2/2
vg db_merge 0 "$AR" db merge "$work/all.db" "$work/s1.db" "$work/s2.db"

# reports of the stores the runs above wrote
vg report_text 0 "$AR" report "$work/b.db"
vg report_html 0 "$AR" report "$work/c.db" --format html -o "$work/c.html"
vg report_csv 0 "$AR" report "$work/d.db" --format csv -o "$work/d.csv"
vg report_not_a_store 2 "$AR" report "$TRACE"

[ "$fails" -eq 0 ] && echo "all ok" || echo "$fails failed"
exit $((fails > 0))
