#!/usr/bin/env bash
# End-to-end test of `agentreplay sim serve` with curl(1): the llama-server-shaped HTTP API, SSE
# streaming, prefix caching across requests, /metrics, /slots, /tokenize, failures (context
# overflow, malformed JSON, the process dying of OOM mid-stream), signals, --rss-scale growth.
# Usage: sim-serve.sh AGENTREPLAY        (needs curl; ~5 s)
set -u
AR=${1:?usage: sim-serve.sh AGENTREPLAY}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# start PROFILE NAME [ARGS...]: starts a server, sets $port and $pid
start() {
  local profile=$1 name=$2; shift 2
  rm -f "$work/$name.port"
  "$AR" sim serve --profile "$profile" --port 0 --port-file "$work/$name.port" "$@" \
    > "$work/$name.out" 2> "$work/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do [ -s "$work/$name.port" ] && break; sleep 0.05; done
  port=$(cat "$work/$name.port" 2>/dev/null)
  [ -n "$port" ] || { bad "$name: server did not start"; cat "$work/$name.err"; exit 1; }
}

U() { echo "http://127.0.0.1:$port$1"; }

# ---- a healthy server ------------------------------------------------------------------------
start model=qwen3-8b,quant=q4_k_m,hw=rtx-4090,engine=llama-server,ctx=8k main --time-scale 50
check "health is 200 ok" [ "$(curl -s "$(U /health)")" = '{"status":"ok"}' ]

SYS='You are a coding agent working in a C repository. Read files before editing them.'
req() { # $1 = extra user text, $2 = stream (true/false), $3 = max_tokens
  printf '{"model":"m","messages":[{"role":"system","content":"%s"},{"role":"user","content":"Fix the failing test. %s"}],"max_tokens":%s,"stream":%s,"stream_options":{"include_usage":true}}' \
    "$SYS" "$1" "$3" "$2"
}
curl -sN -D "$work/h1" "$(U /v1/chat/completions)" -d "$(req 'first' true 8)" > "$work/s1"
check "stream: content-type text/event-stream" grep -qi '^content-type: text/event-stream' "$work/h1"
check "stream: first event is the role chunk" \
  bash -c "head -1 '$work/s1' | grep -q '\"delta\":{\"role\":\"assistant\",\"content\":null}'"
check "stream: 8 content events" [ "$(grep -c '"delta":{"content":' "$work/s1")" = 8 ]
check "stream: finish chunk with finish_reason length" grep -q '"finish_reason":"length","index":0,"delta":{}' "$work/s1"
check "stream: usage chunk with choices [] and timings" \
  grep -q '"choices":\[\],.*"usage":{"completion_tokens":8,.*"timings":{"cache_n":' "$work/s1"
check "stream: ends with data: [DONE]" bash -c "grep -v '^\$' '$work/s1' | tail -1 | grep -qx 'data: \[DONE\]'"
pt=$(grep -o '"prompt_tokens":[0-9]*' "$work/s1" | head -1 | cut -d: -f2)

# the same conversation, one message longer: its prefix comes from the cache
curl -sN "$(U /v1/chat/completions)" -d "$(req 'first and then some more words about the bug' true 4)" > "$work/s2"
cached=$(grep -o '"cached_tokens":[0-9]*' "$work/s2" | cut -d: -f2)
check "cache: second request reuses the shared prefix ($cached of $pt tokens)" [ "${cached:-0}" -gt 10 ]

# without stream_options: timings on the finish chunk, no usage
curl -sN "$(U /v1/chat/completions)" -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}' > "$work/s3"
check "stream without include_usage: finish chunk carries timings, no usage" \
  bash -c "grep -q '\"finish_reason\":\"length\".*\"timings\"' '$work/s3' && ! grep -q usage '$work/s3'"

# not streamed
curl -s "$(U /v1/chat/completions)" -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":3}' > "$work/n1"
check "non-stream: chat.completion with usage and timings" \
  grep -q '"object":"chat.completion".*"usage":{"completion_tokens":3.*"timings"' "$work/n1"

# native /completion with cache_n
curl -s "$(U /completion)" -d '{"prompt":[1,2,3,4,5,6,7,8,9,10],"n_predict":2,"cache_prompt":true}' > /dev/null
curl -s "$(U /completion)" -d '{"prompt":[1,2,3,4,5,6,7,8,9,10],"n_predict":2,"cache_prompt":true}' > "$work/c2"
check "/completion: the repeated prompt is cached but the last token (cache_n 9)" grep -q '"cache_n":9,' "$work/c2"
check "/completion: tokens_predicted and stop_type" grep -q '"tokens_predicted":2,.*"stop_type":"limit"' "$work/c2"

check "/tokenize returns ids" bash -c "curl -s '$(U /tokenize)' -d '{\"content\":\"Hello world, this is a test.\"}' | grep -q '^{\"tokens\":\[[0-9]'"
# /apply-template + native /completion (the llama-server adapter's path): the rendered prompt ends
# with the assistant header, and the next turn's prompt (previous prompt + answer + new message)
# reuses the previous one from the cache
AT=$(curl -s "$(U /apply-template)" -d '{"messages":[{"role":"system","content":"You are terse. '"$(printf 'Rules apply. %.0s' $(seq 1 80))"'"},{"role":"user","content":"list the files"}]}')
check "/apply-template ends with the assistant header" python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["prompt"].endswith("<|im_start|>assistant\n") else 1)' "$AT"
P1=$(printf '%s' "$AT" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prompt"]))')
P2=$(python3 -c 'import json,sys; p=json.loads(sys.argv[1]); print(json.dumps(p + "main.c util.c<|im_end|>\n<|im_start|>user\nopen main.c<|im_end|>\n<|im_start|>assistant\n"))' "$P1")
curl -s "$(U /completion)" -d "{\"prompt\":$P1,\"n_predict\":2}" > /dev/null
C2=$(curl -s "$(U /completion)" -d "{\"prompt\":$P2,\"n_predict\":2}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["timings"]["cache_n"])')
check "native /completion reuses the previous turn's prompt (cache_n $C2)" [ "${C2:-0}" -gt 100 ]
check "/slots lists the slots" bash -c "curl -s '$(U /slots)' | grep -q '\"id\":0,\"n_ctx\":8192'"
curl -s "$(U /metrics)" > "$work/m"
check "/metrics: llamacpp counters" grep -q '^llamacpp:prompt_tokens_total [0-9]' "$work/m"
check "/metrics: KV usage gauge" grep -q '^llamacpp:kv_cache_usage_ratio [0-9.e-]*$' "$work/m"
check "/metrics: stream lag summary" grep -q '^agentreplay_sim_stream_lag_seconds{quantile="0.99"}' "$work/m"

# errors with llama-server's bodies
body() { # $1 = words of user content, $2 = max_tokens, $3 = stream; written to $work/body
  { printf '{"messages":[{"role":"user","content":"'
    head -c $(( $1 * 5 )) /dev/zero | tr '\0' 'a' | sed 's/a\{5\}/word /g'
    printf '"}],"max_tokens":%s,"stream":%s}' "$2" "$3"; } > "$work/body"
}
body 12000 4 true
code=$(curl -s -o "$work/e1" -w '%{http_code}' "$(U /v1/chat/completions)" -d @"$work/body")
check "context overflow: 400 exceed_context_size_error, not SSE" \
  bash -c "[ $code = 400 ] && grep -q '\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":[0-9]*,\"n_ctx\":8192' '$work/e1'"
code=$(curl -s -o "$work/e2" -w '%{http_code}' "$(U /v1/chat/completions)" -d '{bad json')
check "malformed JSON: 500 parse error" bash -c "[ $code = 500 ] && grep -q 'parse_error' '$work/e2'"
code=$(curl -s -o "$work/e3" -w '%{http_code}' "$(U /v1/chat/completions)" -d '{"messages":"x"}')
check "wrong field type: 400 invalid_request_error" bash -c "[ $code = 400 ] && grep -q \"Expected 'messages' to be an array\" '$work/e3'"
check "unknown path: 404" [ "$(curl -s -o /dev/null -w '%{http_code}' "$(U /nope)")" = 404 ]

kill -TERM "$pid"; wait "$pid"; rc=$?
check "SIGTERM: exits 0" [ $rc = 0 ]
check "log lines on stderr (llama-server style)" grep -q 'slot update_slots: id' "$work/main.err"

# ---- real time: pacing follows the model ------------------------------------------------------
start model=qwen3-8b,quant=q4_k_m,hw=rtx-4090,engine=llama-server,ctx=8k pace --time-scale 1
t0=$(date +%s%N)
curl -sN "$(U /v1/chat/completions)" -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":40,"stream":true}' > "$work/p1"
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
pred=$(grep -o '"predicted_ms":[0-9.]*' "$work/p1" | cut -d: -f2 | cut -d. -f1)
check "time scale 1: 40 tokens take the modelled ${pred} ms (took $ms ms)" \
  bash -c "[ $ms -ge $((pred * 9 / 10)) ] && [ $ms -le $((pred * 3 + 200)) ]"
kill "$pid"; wait "$pid"

# ---- absurd options are refused ---------------------------------------------------------------
"$AR" sim serve --time-scale 0 > /dev/null 2>&1; rc=$?
check "time scale 0 refused (exit 2)" [ $rc = 2 ]
"$AR" sim serve --rss-scale 50 > /dev/null 2>&1; rc=$?
check "rss scale 50 refused (exit 2)" [ $rc = 2 ]

# ---- a config that does not load: the process exits before listening -------------------------
"$AR" sim serve --port 0 --profile model=llama-3.1-70b,quant=bf16,hw=rtx-4090,engine=llama-server \
  > /dev/null 2> "$work/load.err"; rc=$?
check "does not fit: exits 1 before listening, cudaMalloc log" \
  bash -c "[ $rc = 1 ] && grep -q 'cudaMalloc failed: out of memory' '$work/load.err'"

# ---- --rss-scale: memory really grows with the modelled KV -------------------------------------
start model=qwen3-8b,quant=q4_k_m,hw=m3-max-64g,engine=mlx-lm rss --time-scale 100000 --rss-scale 0.01 --rss-max 512MiB
rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
body 20000 2 false
curl -s "$(U /v1/chat/completions)" -d @"$work/body" > /dev/null
rss1=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
check "rss-scale: VmRSS grows with the cached sequence ($rss0 -> $rss1 kB)" [ $((rss1 - rss0)) -gt 10000 ]
kill "$pid"; wait "$pid"

# ---- running out of memory mid-request: SIGABRT, the stream is cut -----------------------------
start model=llama-3.3-70b,quant=mlx-4bit,hw=m3-max-64g,engine=mlx-lm oom --time-scale 100000
body 60000 4 true
curl -sN -m 30 -o "$work/o1" -w '%{http_code}' "$(U /v1/chat/completions)" -d @"$work/body" > "$work/o1.code"
crc=$?
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && kill "$pid"
wait "$pid"; rc=$?
check "oom: the stream is cut (curl exit 18: transfer closed)" [ $crc = 18 ]
check "oom: the process dies of SIGABRT (status 134)" [ $rc = 134 ]
check "oom: Metal's log line" grep -q 'Insufficient Memory' "$work/oom.err"
check "oom: the port is closed afterwards" bash -c "! curl -s -m 2 '$(U /health)' > /dev/null"

echo "$fails failure(s)"
[ $fails = 0 ]
