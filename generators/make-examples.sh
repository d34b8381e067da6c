#!/usr/bin/env bash
# make-examples.sh — regenerate the checked-in generated sessions in traces/examples/:
# per style, 32k tokens in 10 turns and 128k tokens in 25 turns, seed 1, zstd-compressed.
# tests/unit/test_gen_examples.c regenerates them in memory and compares the uncompressed bytes,
# so run this (and commit the result) whenever the generator, a profile or the core estimator
# changes on purpose.
#
# Usage: generators/make-examples.sh [AGENTREPLAY]   (default: build/agentreplay)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build/agentreplay}
for style in claude-code codex aider generic; do
    "$bin" gen --style "$style" --depth 32k --turns 10 --seed 1 -q -o "$root/traces/examples/gen-$style-32k.jsonl.zst"
    "$bin" gen --style "$style" --depth 128k --turns 25 --seed 1 -q -o "$root/traces/examples/gen-$style-128k.jsonl.zst"
done
ls -l "$root"/traces/examples/gen-*.jsonl.zst
