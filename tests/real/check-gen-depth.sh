#!/usr/bin/env bash
# check-gen-depth.sh — real-tokenizer check of `agentreplay gen` (the `real` test tier).
#
# For every shipped style at 32k and 128k (and a few seeds with --seeds), generate a session,
# write its final prompt's text with the hidden `gen --dump-prompt DIR` option, count it with the
# Llama-3, Qwen2 and GPT-4o (o200k) tokenizers (tests/real/tokcount.sh), add the chat-template
# framing the estimator assumes (4 tokens per message, 8 per tool call, FORMAT.md section 8.2) and
# require each real count to be within +-10% of --depth. Also prints the estimator's error per
# content kind (code by language, test logs, grep hits, prose, tool schemas, ...).
#
# Then --tokenizer-url end to end: start llama-server (setup-llama.sh's tiny.gguf: random weights,
# the real Qwen2 tokenizer), generate through its POST /tokenize, and require the Qwen2 count of the
# final prompt (plus framing) within +-1% of --depth. Skipped with --no-server.
#
# Usage: check-gen-depth.sh AGENTREPLAY [--seeds "1 2"] [--depths "32k 128k"] [--styles "..."]
#                           [--tsv FILE]   (per-kind rows: style depth seed kind est llama3 qwen2 o200k)
#                           [--no-server]
# Exit: 0 all within bounds, 1 a count out of bounds or a failure, 77 tokenizers unavailable
# (ctest SKIP_RETURN_CODE).
set -uo pipefail

BIN=${1:?usage: check-gen-depth.sh AGENTREPLAY [--seeds LIST] [--depths LIST] [--styles LIST] [--tsv FILE]}
shift
SEEDS="1"
DEPTHS="32k 128k"
STYLES="claude-code codex aider generic"
TSV=""
SERVER=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-server) SERVER=0; shift ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --depths) DEPTHS=$2; shift 2 ;;
        --styles) STYLES=$2; shift 2 ;;
        --tsv) TSV=$2; shift 2 ;;
        *) echo "check-gen-depth: unknown argument '$1'" >&2; exit 1 ;;
    esac
done
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOKCOUNT="$SCRIPT_DIR/tokcount.sh"
[ -x "$BIN" ] || { echo "check-gen-depth: '$BIN' is not executable" >&2; exit 1; }
[ -f "$TOKCOUNT" ] || { echo "check-gen-depth: $TOKCOUNT missing; skipping" >&2; exit 77; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# tokenizers available? (tokcount.sh builds llama-tokenize on first use: minutes)
printf 'hello world\n' >"$work/probe.txt"
if ! bash "$TOKCOUNT" "$work/probe.txt" >/dev/null 2>"$work/probe.err"; then
    echo "check-gen-depth: tokenizers unavailable; skipping:" >&2
    tail -3 "$work/probe.err" >&2
    exit 77
fi

tokens_of() { # depth spec -> integer
    case "$1" in
        *k|*K) echo $(( ${1%[kK]} * 1024 )) ;;
        *) echo "$1" ;;
    esac
}

runs=()
for style in $STYLES; do
    for depth in $DEPTHS; do
        for seed in $SEEDS; do
            d="$work/$style-$depth-$seed"
            if ! "$BIN" gen --style "$style" --depth "$depth" --seed "$seed" --dump-prompt "$d" -q \
                -o "$work/$style-$depth-$seed.jsonl" 2>"$work/gen.err"; then
                echo "check-gen-depth: gen --style $style --depth $depth --seed $seed failed:" >&2
                cat "$work/gen.err" >&2
                exit 1
            fi
            runs+=("$style $depth $seed")
        done
    done
done

# one tokcount run over every file (node and the vocab loads are the slow part)
mapfile -t files < <(find "$work" -mindepth 2 -name '*.txt' | sort)
if ! bash "$TOKCOUNT" "${files[@]}" >"$work/counts.tsv" 2>"$work/count.err"; then
    echo "check-gen-depth: tokcount failed:" >&2
    tail -5 "$work/count.err" >&2
    exit 1
fi
# tokcount prints basenames; rows come in the order of the files given
paste <(printf '%s\n' "${files[@]}") "$work/counts.tsv" >"$work/joined.tsv"

fail=0
printf '%-12s %6s %5s %9s %9s %9s %9s %8s %8s %8s\n' style depth seed estimate llama3 qwen2 o200k err-l3 err-q2 err-o2
[ -n "$TSV" ] && printf 'style\tdepth\tseed\tkind\test\tllama3\tqwen2\to200k\n' >"$TSV"
for r in "${runs[@]}"; do
    set -- $r
    style=$1 depth=$2 seed=$3
    d="$work/$style-$depth-$seed"
    want=$(tokens_of "$depth")
    framing=$(awk -F'\t' '$1=="framing"{print $2}' "$d/estimates.tsv")
    final=$(awk -F'\t' '$1=="final_context"{print $2}' "$d/estimates.tsv")
    read -r l3 q2 o2 < <(awk -F'\t' -v f="$d/prompt.txt" '$1==f{print $5, $6, $7}' "$work/joined.tsv")
    line=$(printf '%-12s %6s %5s %9d' "$style" "$depth" "$seed" "$final")
    for n in "$l3" "$q2" "$o2"; do line+=$(printf ' %9d' $((n + framing))); done
    for n in "$l3" "$q2" "$o2"; do
        total=$((n + framing))
        # error in permille, integer arithmetic
        e=$(( (total - want) * 1000 / want ))
        line+=$(printf ' %+7d‰' "$e")
        if [ "$e" -gt 100 ] || [ "$e" -lt -100 ]; then fail=1; line+="!"; fi
    done
    echo "$line"
    if [ -n "$TSV" ]; then
        while IFS=$'\t' read -r kind est bytes pieces; do
            case "$kind" in kind|framing|final_context|depth) continue ;; esac
            read -r a b c < <(awk -F'\t' -v f="$d/$kind.txt" '$1==f{print $5, $6, $7}' "$work/joined.tsv")
            [ -n "${a:-}" ] && printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$style" "$depth" "$seed" "$kind" "$est" "$a" "$b" "$c" >>"$TSV"
        done <"$d/estimates.tsv"
    fi
done
if [ "$fail" = 1 ]; then
    echo "check-gen-depth: a real tokenizer's count is more than 10% away from --depth (marked !)" >&2
    exit 1
fi
echo "check-gen-depth: all real counts within +-10% of --depth"

[ "$SERVER" = 1 ] || exit 0
eval "$("$SCRIPT_DIR/setup-llama.sh" --quiet)" || { echo "check-gen-depth: setup-llama.sh failed" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$LLAMA_SERVER" -m "$LLAMA_MODEL_TINY" -c 4096 --host 127.0.0.1 --port "$port" -t 2 >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { echo "check-gen-depth: llama-server died:" >&2; tail -5 "$work/server.log" >&2; exit 1; }
    sleep 0.2
done
echo "tokenizer-url: llama-server (tiny.gguf, Qwen2 tokenizer) on port $port"
for style in claude-code aider; do
    for depth in 32k 128k; do
        d="$work/url-$style-$depth"
        if ! "$BIN" gen --style "$style" --depth "$depth" --seed 1 --tokenizer-url "http://127.0.0.1:$port" \
            --dump-prompt "$d" -o "$d.jsonl" 2>"$work/gen.err"; then
            cat "$work/gen.err" >&2; exit 1
        fi
        want=$(tokens_of "$depth")
        framing=$(awk -F'\t' '$1=="framing"{print $2}' "$d/estimates.tsv")
        q2=$(bash "$TOKCOUNT" "$d/prompt.txt" | cut -f5)
        total=$((q2 + framing))
        e=$(( (total - want) * 10000 / want ))
        sign=+; [ "$e" -lt 0 ] && sign=-
        a=$(( e < 0 ? -e : e ))
        printf '  %-12s %5s  qwen2 %7d  error %s%d.%02d%%\n' "$style" "$depth" "$total" "$sign" $((a / 100)) $((a % 100))
        if [ "$e" -gt 100 ] || [ "$e" -lt -100 ]; then
            echo "check-gen-depth: --tokenizer-url missed +-1% for $style $depth" >&2; exit 1
        fi
    done
done
echo "check-gen-depth: --tokenizer-url lands within +-1% of --depth by the server's tokenizer"
