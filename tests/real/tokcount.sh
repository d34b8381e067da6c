#!/usr/bin/env bash
# tokcount.sh — real tokenizer counts of text files, for calibrating agentreplay's token estimator.
#
# Usage: tokcount.sh [--header] FILE...
# Prints one TSV row per file:  file  bytes  chars  llama3  qwen2  o200k
#   file    basename of the file
#   bytes   size in bytes; chars: Unicode code points (the file must be UTF-8)
#   llama3  Llama-3 BPE (llama.cpp models/ggml-vocab-llama-bpe.gguf), content only: no BOS, no special
#           parsing, no escape processing
#   qwen2   Qwen2 BPE   (llama.cpp models/ggml-vocab-qwen2.gguf), same
#   o200k   GPT-4o o200k_base via npm gpt-tokenizer@4.0.0 (special-token strings counted as text)
#
# Needs: setup-llama.sh (builds llama-tokenize and provides the vocab files, cached), node + npm
# (installs gpt-tokenizer into ${AR_CACHE_DIR:-$HOME/.cache/agentreplay}/npm-tok once).
# Non-interactive; exits non-zero if any file fails.
set -euo pipefail

GPT_TOKENIZER_VERSION=4.0.0
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${AR_CACHE_DIR:-$HOME/.cache/agentreplay}
TOK_NPM=${AR_TOK_NPM_DIR:-$CACHE/npm-tok}

die() { echo "tokcount: ERROR: $*" >&2; exit 1; }

HEADER=0
if [ "${1:-}" = "--header" ]; then HEADER=1; shift; fi
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && { sed -n '2,15p' "$0"; exit 0; }
[ $# -gt 0 ] || die "usage: tokcount.sh [--header] FILE..."

# llama-tokenize + vocab files (builds on first use; a no-op afterwards)
env_out=$("$SCRIPT_DIR/setup-llama.sh" --quiet) || die "setup-llama.sh failed"
eval "$env_out"
TOKENIZE=${AR_LLAMA_TOKENIZE:-$LLAMA_TOKENIZE}
VOCAB_LLAMA3="$LLAMA_VOCAB_DIR/ggml-vocab-llama-bpe.gguf"
VOCAB_QWEN2="$LLAMA_VOCAB_DIR/ggml-vocab-qwen2.gguf"
for f in "$TOKENIZE" "$VOCAB_LLAMA3" "$VOCAB_QWEN2"; do [ -e "$f" ] || die "missing $f"; done

# gpt-tokenizer for o200k_base
command -v node >/dev/null 2>&1 || die "node not found (apt-get install -y nodejs)"
have_ver=$(node -p "require('$TOK_NPM/node_modules/gpt-tokenizer/package.json').version" 2>/dev/null || true)
if [ "$have_ver" != "$GPT_TOKENIZER_VERSION" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found (apt-get install -y npm)"
    mkdir -p "$TOK_NPM"
    [ -f "$TOK_NPM/package.json" ] || echo '{"name":"agentreplay-tok-cache","private":true}' >"$TOK_NPM/package.json"
    (cd "$TOK_NPM" && npm i -E --ignore-scripts --no-audit --no-fund --loglevel=error \
        "gpt-tokenizer@$GPT_TOKENIZER_VERSION" >&2) || die "npm install gpt-tokenizer@$GPT_TOKENIZER_VERSION failed"
fi

# one llama-tokenize run per file and vocab; prints only the count
count_llama() { # vocab file
    local out n
    # -f reads the file verbatim; --no-escape keeps "\n" etc. in code/JSON literal (escapes are
    # processed by default!), --no-parse-special treats "<|im_start|>" etc. as text, --no-bos: content only
    out=$("$TOKENIZE" -m "$1" -f "$2" --no-escape --no-parse-special --no-bos --ids --show-count --log-disable 2>/dev/null) ||
        { echo "tokcount: llama-tokenize failed on $2 with $(basename "$1")" >&2; return 1; }
    n=$(printf '%s\n' "$out" | sed -n 's/^Total number of tokens: \([0-9][0-9]*\)$/\1/p')
    [ -n "$n" ] || { echo "tokcount: no token count from llama-tokenize for $2" >&2; return 1; }
    echo "$n"
}

# o200k + chars for all files in one node process
declare -A O200K CHARS
while IFS=$'\t' read -r path chars n; do
    CHARS[$path]=$chars; O200K[$path]=$n
done < <(AR_TOK_NPM_DIR="$TOK_NPM" node "$SCRIPT_DIR/tokcount-o200k.mjs" "$@" || echo "__fail__")

[ "$HEADER" = 1 ] && printf 'file\tbytes\tchars\tllama3\tqwen2\to200k\n'
rc=0
for f in "$@"; do
    if [ -z "${O200K[$f]:-}" ]; then echo "tokcount: $f: not counted by o200k (not UTF-8 or unreadable?)" >&2; rc=1; continue; fi
    bytes=$(wc -c <"$f")
    l3=$(count_llama "$VOCAB_LLAMA3" "$f") || { rc=1; continue; }
    q2=$(count_llama "$VOCAB_QWEN2" "$f") || { rc=1; continue; }
    printf '%s\t%d\t%d\t%d\t%d\t%d\n' "$(basename "$f")" "$bytes" "${CHARS[$f]}" "$l3" "$q2" "${O200K[$f]}"
done
exit $rc
