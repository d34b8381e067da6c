#!/usr/bin/env bash
# sim-calibrate-cpu.sh — fit the simulator's cpu-2core hardware profile to a real llama-server.
#
# Measures a running-for-the-occasion llama-server's own prefill and decode rates (its /completion
# `timings`) at two depths, then calls `agentreplay sim calibrate` to fit the hardware profile
# (compute rate, attention rate, bandwidth, per-layer overhead; the llama-server engine's efficiency
# factors stay as they are) and writes it to OUT.
#
# Usage: sim-calibrate-cpu.sh AGENTREPLAY LLAMA_SERVER MODEL.gguf SPEC OUT.yaml [DEPTH] [THREADS]
#   SPEC   the sim profile of the same model shape, e.g.
#          hw=cpu-2core,engine=llama-server,model=qwen2-tiny-random,quant=f16,kv=f16
#   DEPTH  the second depth (default 8192); the first is 0
# Then:    agentreplay sim predict --profile hw=OUT.yaml,engine=llama-server,model=...,ctx=... TRACE
# stdout: the measured points and the fitted errors; the profile goes to OUT.
# Needs curl and python3. Takes ~10-40 s with the tiny model on 2 cores.
set -euo pipefail
if [ $# -lt 5 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
AR=$1 SERVER=$2 MODEL=$3 SPEC=$4 OUT=$5 DEPTH=${6:-8192} THREADS=${7:-2}
PP=512 TG=128
CTX=$((DEPTH + PP + TG + 1024))
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" -m "$MODEL" -c "$CTX" -np 1 -t "$THREADS" --port "$port" --host 127.0.0.1 \
  --cache-ram 0 > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "llama-server died:" >&2; tail -20 "$work/server.log" >&2; exit 1; }
  sleep 0.1
done

# one /completion with a token-id prompt; prints "prompt_n prompt_ms predicted_n predicted_ms cache_n"
complete() { # $1 = first token id, $2 = prompt tokens, $3 = n_predict, $4 = extra tokens after a shared prefix
  python3 - "$1" "$2" "$3" "${4:-0}" > "$work/req.json" <<'EOF'
import json, sys
first, n, npred, extra = map(int, sys.argv[1:])
ids = [1000 + (first + 7919 * i) % 90000 for i in range(n)]
ids += [100000 + (13 * i) % 40000 for i in range(extra)]
print(json.dumps({"prompt": ids, "n_predict": npred, "cache_prompt": True, "ignore_eos": True,
                  "temperature": 0, "samplers": ["top_k"], "top_k": 1}))
EOF
  curl -sf "http://127.0.0.1:$port/completion" -H 'Content-Type: application/json' -d @"$work/req.json" |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["timings"]; print(t["prompt_n"], t["prompt_ms"], t["predicted_n"], t["predicted_ms"], t.get("cache_n", 0))'
}

rate() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.1f' % (a/(b/1000)))" "$@"; }

complete 1 64 8 > /dev/null                     # warm up (page in the weights)
read -r pn pms _ _ _ < <(complete 2 "$PP" 1)     # prefill of 512 at depth 0
pp0=$(rate "$pn" "$pms")
read -r _ _ gn gms _ < <(complete 3 32 "$TG")    # decode of 128 after ~32 tokens
tg0=$(rate "$((gn - 1))" "$gms")
complete 4 "$DEPTH" 1 > /dev/null               # fill DEPTH tokens
read -r pn pms _ _ cn < <(complete 4 "$DEPTH" 1 "$PP")   # 512 more at depth DEPTH (prefix cached)
ppd=$(rate "$pn" "$pms")
read -r _ _ gn gms _ < <(complete 4 "$DEPTH" "$TG" "$PP")  # decode after DEPTH+512 (all cached)
tgd=$(rate "$((gn - 1))" "$gms")
dd=$((DEPTH + PP))
echo "measured: pp:$PP@0=$pp0 pp:$pn@$cn=$ppd tg:$TG@32=$tg0 tg:$TG@$dd=$tgd"
"$AR" sim calibrate --profile "$SPEC" --point "pp:$PP@0=$pp0" --point "pp:$pn@$cn=$ppd" \
  --point "tg:$((TG - 1))@32=$tg0" --point "tg:$((TG - 1))@$dd=$tgd" -o "$OUT"
