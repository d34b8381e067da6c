#!/usr/bin/env bash
# test_faultsrv.sh — end-to-end checks of ar-faultsrv with curl(1).
#
# usage: test_faultsrv.sh PATH/TO/ar-faultsrv [PATH/TO/ar-faultprobe]
#
# Starts the server on a free port for each group of checks, talks to it with
# curl, stops it with SIGTERM and checks that it exited 0 and freed the port.
# With ar-faultprobe it also checks streaming TTFT on the client side and 200
# concurrent streams. Prints one line per check; exit 1 if any failed.
set -u

SRV=${1:?usage: test_faultsrv.sh ar-faultsrv [ar-faultprobe]}
PROBE=${2:-}
command -v curl >/dev/null || { echo "SKIP: curl(1) not found"; exit 77; }

TMP=$(mktemp -d)
PID=
PORT=
FAILS=0
CHECKS=0

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

ok() { CHECKS=$((CHECKS + 1)); echo "ok   $1"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '     %s\n' "$2"; }
check() { # check NAME COMMAND...
	local name=$1; shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}

# start ARGS... : runs the server on a free port, waits for its port file
start() {
	rm -f "$TMP/port"
	"$SRV" --port 0 --port-file "$TMP/port" --log "$TMP/log" "$@" >"$TMP/stdout" 2>"$TMP/stderr" &
	PID=$!
	for _ in $(seq 1 200); do
		[ -s "$TMP/port" ] && break
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.02
	done
	if [ ! -s "$TMP/port" ]; then
		bad "server starts ($*)" "$(cat "$TMP/stderr")"
		exit 1
	fi
	PORT=$(cat "$TMP/port")
	URL=http://127.0.0.1:$PORT
}

# stop : SIGTERM, exit status 0, port refused afterwards
stop() {
	kill -TERM "$PID"
	wait "$PID"
	local rc=$?
	PID=
	[ "$rc" -eq 0 ] || bad "server exits 0 on SIGTERM" "exit status $rc"
	curl -s -o /dev/null --max-time 2 "$URL/health"
	local crc=$?
	[ "$crc" -eq 7 ] || bad "port $PORT is free after stop" "curl exit $crc"
}

chat() { # chat MAX_TOKENS STREAM [EXTRA_JSON_MEMBERS] -> request body
	printf '{"model":"m","messages":[{"role":"system","content":"You are a test."},{"role":"user","content":"Say something about caches, please."}],"max_tokens":%s,"stream":%s%s}' \
		"$1" "$2" "${3:+,$3}"
}

# ---- 1. normal stream: shape and token count --------------------------------
start --ttft-ms 30 --itl-ms 5
curl -sN -D "$TMP/h" "$URL/v1/chat/completions" -d "$(chat 7 true)" >"$TMP/b"
check "stream: HTTP 200 text/event-stream" grep -qi '^content-type: text/event-stream' "$TMP/h"
n=$(grep -c '"delta":{"content":"' "$TMP/b")
[ "$n" -eq 7 ] && ok "stream: exactly 7 content tokens" || bad "stream: exactly 7 content tokens" "got $n"
check "stream: role-only first event with content null" \
	sh -c "grep '^data: ' '$TMP/b' | head -1 | grep -q '\"delta\":{\"role\":\"assistant\",\"content\":null}'"
check "stream: finish_reason length with timings" \
	grep -q '"finish_reason":"length","index":0,"delta":{}}.*"timings":{"cache_n":' "$TMP/b"
check "stream: last event is data: [DONE]" sh -c "grep -v '^\$' '$TMP/b' | tail -1 | grep -qx 'data: \[DONE\]'"

curl -sN "$URL/v1/chat/completions" -d "$(chat 3 true '"stream_options":{"include_usage":true}')" >"$TMP/b"
check "stream: usage chunk with cached_tokens (warm prefix)" \
	grep -q '"choices":\[\],.*"usage":{"completion_tokens":3,"prompt_tokens":[0-9]*,"total_tokens":[0-9]*,"prompt_tokens_details":{"cached_tokens":[1-9]' "$TMP/b"

curl -s "$URL/completion" -d '{"prompt":"hello there","n_predict":4,"stream":true}' >"$TMP/b"
n=$(grep -c '"stop":false' "$TMP/b")
[ "$n" -eq 4 ] && ok "/completion: 4 tokens, native shape" || bad "/completion: 4 tokens, native shape" "got $n"
check "/completion: final stop:true with timings, no [DONE]" \
	sh -c "grep -q '\"stop\":true.*\"timings\"' '$TMP/b' && ! grep -q DONE '$TMP/b'"

curl -s "$URL/api/chat" -d '{"model":"m","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":3}}' >"$TMP/b"
check "/api/chat: NDJSON, 3 tokens then done:true with eval counts" \
	sh -c "[ \$(grep -c '\"done\":false' '$TMP/b') -eq 3 ] && tail -1 '$TMP/b' | grep -q '\"done\":true,\"done_reason\":\"length\".*\"prompt_eval_count\":.*\"eval_count\":3'"

curl -s "$URL/v1/messages" -d '{"model":"m","max_tokens":2,"stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$TMP/b"
check "/v1/messages: Anthropic event sequence" \
	sh -c "sed -n 's/^event: //p' '$TMP/b' | tr '\n' ' ' | grep -q 'message_start content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop'"

check "/health" sh -c "curl -s '$URL/health' | grep -qx '{\"status\":\"ok\"}'"
curl -s "$URL/metrics" >"$TMP/m"
check "/metrics counts predicted tokens" grep -qx 'llamacpp:tokens_predicted_total 19' "$TMP/m"
check "/metrics counts cached prompt tokens" grep -q '^llamacpp:prompt_tokens_cached_total [1-9]' "$TMP/m"
check "/tokenize: one id per 4 bytes" \
	sh -c "curl -s '$URL/tokenize' -d '{\"content\":\"Hello world, this!\"}' | grep -qE '^\{\"tokens\":\[[0-9]+(,[0-9]+){4}\]\}\$'"
code=$(curl -s -o "$TMP/b" -w '%{http_code} %{content_type}' "$URL/no/such/path")
check "unknown path: 404 HTML" sh -c "[ '$code' = '404 text/html' ] && grep -q '<title>404 Not Found</title>' '$TMP/b'"
code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/v1/chat/completions" -d '{"messages": [')
check "malformed JSON: llama-style 500 parse_error.101" \
	sh -c "[ '$code' = 500 ] && grep -q '\"message\":\"\[json.exception.parse_error.101\] parse error' '$TMP/b'"
stop
check "log: one JSON line per generation request" sh -c "[ \$(wc -l <'$TMP/log') -eq 6 ]"

# ---- 2. exact TTFT -------------------------------------------------------------
: >"$TMP/log"
start --ttft-ms 150 --itl-ms 10
# non-streamed, one token: the first response byte is the first token; one curl,
# one kept-alive connection for 6 requests (the first pays connection setup)
args=()
for i in 1 2 3 4 5 6; do
	args+=(-s -o /dev/null -w '%{time_starttransfer}\n' "$URL/v1/chat/completions" -d "$(chat 1 false)")
	[ "$i" -lt 6 ] && args+=(--next)
done
curl "${args[@]}" >"$TMP/t"
med=$(tail -5 "$TMP/t" | sort -n | sed -n 3p)
if awk -v t="$med" 'BEGIN { d = t - 0.150; exit !(d > -0.005 && d < 0.005) }'; then
	ok "TTFT: curl time_starttransfer median ${med}s within 5 ms of 150 ms"
else
	bad "TTFT: curl time_starttransfer median within 5 ms of 150 ms" "$(tr '\n' ' ' <"$TMP/t")"
fi
for i in 1 2 3; do curl -sN -o /dev/null "$URL/v1/chat/completions" -d "$(chat 4 true)"; done
# a log line is written when the server has finished the request, which may be
# a moment after curl has read the last chunk
for _ in $(seq 1 100); do [ "$(grep -c '"stream":true' "$TMP/log")" -ge 3 ] && break; sleep 0.02; done
# the server's own record: t_first_token_ns - t_recv_ns (3 ms of slack for a busy CI host)
d=$(awk -F'[:,]' '/"stream":true/ { for (i = 1; i < NF; i++) { if ($i == "\"t_recv_ns\"") r = $(i+1); if ($i == "\"t_first_token_ns\"") f = $(i+1) }
	printf "%.3f ", (f - r) / 1e6 }' "$TMP/log")
# never early; the median within 3 ms; none more than 20 ms late (a loaded sanitizer run)
if echo "$d" | awk '{ n = split($0, v, " "); for (i = 1; i <= NF; i++) { if ($i < 150 || $i > 170) bad = 1; if ($i <= 153) near++ }
	exit (bad || NF != 3 || near < 2) }'; then
	ok "TTFT: server log t_first_token_ns - t_recv_ns never early, median within 3 ms of 150 ms ($d)"
else
	bad "TTFT: server log t_first_token_ns - t_recv_ns never early, median within 3 ms of 150 ms" "$d"
fi
if [ -n "$PROBE" ]; then
	"$PROBE" --port "$PORT" --requests 20 --keepalive --max-tokens 4 --expect-tokens 4 \
		--expect-ttft-ms 150 --json >"$TMP/p"
	if awk -F'[:,}]' '{ for (i = 1; i < NF; i++) if ($i == "\"ttft_abs_err_ms\"") { print; exit } }' "$TMP/p" >/dev/null &&
		grep -q '"failed":0' "$TMP/p" &&
		sed 's/.*"ttft_abs_err_ms":{"p50":\([0-9.]*\).*/\1/' "$TMP/p" | awk '{ exit !($1 < 5) }'; then
		ok "TTFT: streaming, client-side p50 error < 5 ms ($(sed 's/.*"ttft_abs_err_ms":{\([^}]*\)}.*/\1/' "$TMP/p"))"
	else
		bad "TTFT: streaming, client-side p50 error < 5 ms" "$(cat "$TMP/p")"
	fi
fi
stop

# --arrival-stamps: t_recv is the kernel's receive stamp of the request (the log says so), and the
# schedule counts from it: never early, the median within 3 ms
start --ttft-ms 50 --itl-ms 5 --arrival-stamps
: >"$TMP/log"
for i in 1 2 3; do curl -sN -o /dev/null "$URL/v1/chat/completions" -d "$(chat 2 true)"; done
for _ in $(seq 1 100); do [ "$(grep -c '"stream":true' "$TMP/log")" -ge 3 ] && break; sleep 0.02; done
n=$(grep -c '"t_recv_from":"kernel"' "$TMP/log")
check "arrival stamps: every request's t_recv_from is kernel ($n of 3)" test "$n" -eq 3
d=$(awk -F'[:,]' '/"stream":true/ { for (i = 1; i < NF; i++) { if ($i == "\"t_recv_ns\"") r = $(i+1); if ($i == "\"t_first_token_ns\"") f = $(i+1) }
	printf "%.3f ", (f - r) / 1e6 }' "$TMP/log")
if echo "$d" | awk '{ for (i = 1; i <= NF; i++) { if ($i < 50 || $i > 70) bad = 1; if ($i <= 53) near++ } exit (bad || NF != 3 || near < 2) }'; then
	ok "arrival stamps: t_first_token_ns - t_recv_ns never early, median within 3 ms of 50 ms ($d)"
else
	bad "arrival stamps: t_first_token_ns - t_recv_ns never early, median within 3 ms of 50 ms" "$d"
fi
stop
start --ttft-ms 20 --itl-ms 5
: >"$TMP/log"
curl -sN -o /dev/null "$URL/v1/chat/completions" -d "$(chat 2 true)"
for _ in $(seq 1 100); do grep -q '"stream":true' "$TMP/log" && break; sleep 0.02; done
check "without --arrival-stamps: t_recv_from is read" grep -q '"t_recv_from":"read"' "$TMP/log"
stop

# ---- 3. faults -------------------------------------------------------------------
start --ttft-ms 20 --itl-ms 5 --fault reset_before_headers@1 --fault reset_mid_stream@2:2 \
	--fault close_mid_stream@3:2 --fault oom@4 --fault html_404@5 --fault http_status@6:503 \
	--fault http_status@7:429 --fault reset_mid_headers@8 --fault no_done@9 --fault stall@10:200 \
	--fault ctx_exceeded_midstream@11:1
curl -sN -o /dev/null "$URL/v1/chat/completions" -d "$(chat 5 true)"
rc=$?
check "reset_before_headers: curl sees a reset (exit 56)" [ "$rc" -eq 56 ]

curl -sN "$URL/v1/chat/completions" -d "$(chat 5 true)" >"$TMP/b"
rc=$?
n=$(grep -c '"delta":{"content":"' "$TMP/b")
check "reset_mid_stream:2: 2 tokens then a reset (exit 56)" [ "$rc" -eq 56 -a "$n" -eq 2 ]

curl -sN "$URL/v1/chat/completions" -d "$(chat 5 true)" >"$TMP/b"
rc=$?
n=$(grep -c '"delta":{"content":"' "$TMP/b")
check "close_mid_stream:2: 2 tokens, FIN inside the chunked body (exit 18)" [ "$rc" -eq 18 -a "$n" -eq 2 ]

curl -sN "$URL/v1/chat/completions" -d "$(chat 5 true)" >"$TMP/b"
n=$(grep -c '"delta":{"content":"' "$TMP/b")
check "oom (llama): 3 tokens, bad_alloc error event, no [DONE]" sh -c \
	"[ $n -eq 3 ] && grep -v '^\$' '$TMP/b' | tail -1 | grep -qx 'data: {\"error\":{\"code\":500,\"message\":\"got exception: std::bad_alloc\",\"type\":\"server_error\"}}' && ! grep -q DONE '$TMP/b'"

code=$(curl -s -o "$TMP/b" -w '%{http_code} %{content_type}' "$URL/v1/chat/completions" -d "$(chat 5 true)")
check "html_404: 404 text/html page" sh -c "[ '$code' = '404 text/html' ] && grep -q '<html>' '$TMP/b'"

code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/v1/chat/completions" -d "$(chat 5 true)")
check "http_status:503: llama 'Loading model' body" sh -c \
	"[ '$code' = 503 ] && grep -qx '{\"error\":{\"message\":\"Loading model\",\"type\":\"unavailable_error\",\"code\":503}}' '$TMP/b'"

curl -s -D "$TMP/h" -o /dev/null "$URL/v1/chat/completions" -d "$(chat 5 true)"
check "http_status:429: Retry-After: 2" sh -c "grep -q '^HTTP/1.1 429' '$TMP/h' && grep -qi '^retry-after: 2' '$TMP/h'"

curl -sN -o /dev/null "$URL/v1/chat/completions" -d "$(chat 5 true)"
rc=$?
check "reset_mid_headers: partial status line then reset (curl exit 56)" [ "$rc" -eq 56 ]

curl -sN "$URL/v1/chat/completions" -d "$(chat 5 true)" >"$TMP/b"
check "no_done: finish chunk but no [DONE]" sh -c "grep -q '\"finish_reason\":\"length\"' '$TMP/b' && ! grep -q DONE '$TMP/b'"

t=$(curl -sN -o /dev/null -w '%{time_total}' "$URL/v1/chat/completions" -d "$(chat 3 true)")
check "stall:200: the stream takes 200 ms longer ($t s)" awk -v t="$t" 'BEGIN { exit !(t > 0.225 && t < 0.4) }'

curl -sN "$URL/v1/chat/completions" -d "$(chat 5 true)" >"$TMP/b"
check "ctx_exceeded_midstream:1: 1 token then 'Context size has been exceeded.'" sh -c \
	"[ \$(grep -c '\"delta\":{\"content\":\"' '$TMP/b') -eq 1 ] && grep -q 'Context size has been exceeded.' '$TMP/b' && ! grep -q DONE '$TMP/b'"
stop

# ---- 4. context limit per flavor ----------------------------------------------
long=$(printf '%*s' 4000 '' | tr ' ' x)   # 4000 bytes = 1000 prompt tokens
body="{\"messages\":[{\"role\":\"user\",\"content\":\"$long\"}],\"max_tokens\":10,\"stream\":true}"
start --ctx-limit 512
code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/v1/chat/completions" -d "$body")
check "ctx-limit (llama): 400 exceed_context_size_error body" sh -c "[ '$code' = 400 ] && grep -qx \
'{\"error\":{\"code\":400,\"message\":\"request (1000 tokens) exceeds the available context size (512 tokens), try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":1000,\"n_ctx\":512}}' '$TMP/b'"
stop
start --ctx-limit 512 --flavor vllm
code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/v1/chat/completions" -d "$body")
check "ctx-limit (vllm): 400 'maximum context length is 512 tokens'" sh -c "[ '$code' = 400 ] && grep -q \
'\"message\":\"This model.s maximum context length is 512 tokens. However, you requested 1010 tokens (1000 in the messages, 10 in the completion).*\"type\":\"BadRequestError\",\"param\":null,\"code\":400' '$TMP/b'"
stop
start --ctx-limit 512 --flavor openai
code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/v1/chat/completions" -d "$body")
check "ctx-limit (openai): 400 context_length_exceeded" sh -c "[ '$code' = 400 ] && grep -q '\"code\":\"context_length_exceeded\"' '$TMP/b'"
stop
start --ctx-limit 512 --flavor ollama
curl -s "$URL/api/chat" -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"$long\"}],\"options\":{\"num_predict\":2}}" >"$TMP/b"
check "ctx-limit (ollama): 200, prompt silently truncated to 512" sh -c "tail -1 '$TMP/b' | grep -q '\"prompt_eval_count\":512,'"
stop

# ---- 5. many concurrent streams ----------------------------------------------------
if [ -n "$PROBE" ]; then
	start --ttft-ms 100 --itl-ms 20
	if "$PROBE" --port "$PORT" --conns 200 --requests 200 --max-tokens 10 --expect-tokens 10 \
		--timeout-s 60 >"$TMP/p"; then
		ok "200 concurrent streams, all complete with 10 tokens and [DONE]"
	else
		bad "200 concurrent streams" "$(cat "$TMP/p")"
	fi
	stop
fi

echo "$((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
