#!/usr/bin/env bash
# bench_gen.sh — how fast `agentreplay gen` is, and how far its token estimates are from real tokenizers.
#
#   1. one 128k-token session (claude-code, 25 turns), to a file: median wall time of N runs, MB/s;
#      target: under 50 ms on a 2-core machine (process start included);
#   2. a file of 100 sessions of 32k tokens each: wall time, MB/s;
#   each compared, in the same run, with references over the same bytes: `cat` (copying them) and
#   `zstd -3 -c` (compressing them, what writing .zst costs at least), plus `agentreplay --version`
#   (process start);
#   3. with --real: the estimator's error against Llama-3, Qwen2 and o200k per style and per content
#      kind, from tests/real/check-gen-depth.sh (needs the real tier's tokenizers; minutes).
#
# Usage: bench_gen.sh AGENTREPLAY [--runs N] [--real] [--check]
#   --check   exit 1 when the 128k median exceeds 50 ms
set -euo pipefail
BIN=${1:?usage: bench_gen.sh AGENTREPLAY [--runs N] [--real] [--check]}
shift
RUNS=15 REAL=0 CHECK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --real) REAL=1; shift ;;
        --check) CHECK=1; shift ;;
        *) echo "bench_gen: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v python3 >/dev/null || { echo "bench_gen: python3 is needed for timing" >&2; exit 2; }

python3 - "$BIN" "$work" "$RUNS" "$CHECK" <<'PY'
import os, statistics, subprocess, sys, time
bin_, work, runs, check = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"

def timed(args, n, stdin=None, stdout=subprocess.DEVNULL):
    t = []
    for _ in range(n):
        f = open(stdin, "rb") if stdin else None
        a = time.perf_counter()
        subprocess.run(args, stdin=f, stdout=stdout, stderr=subprocess.DEVNULL, check=True)
        t.append(time.perf_counter() - a)
        if f:
            f.close()
    return statistics.median(t), min(t)

def row(name, med, mn, nbytes):
    mbs = nbytes / med / 1e6 if med > 0 else 0
    print(f"  {name:<34} median {med*1000:8.1f} ms  min {mn*1000:8.1f} ms  {mbs:8.1f} MB/s")

print(f"agentreplay gen benchmark ({os.cpu_count()} CPUs, {runs} runs each)")
start = timed([bin_, "--version"], runs)
print(f"  {'process start (--version)':<34} median {start[0]*1000:8.1f} ms")

one = os.path.join(work, "one.jsonl")
g1 = timed([bin_, "gen", "--depth", "128k", "--turns", "25", "--seed", "1", "-q", "-o", one], runs)
n1 = os.path.getsize(one)
print(f"one 128k session, claude-code, 25 turns: {n1} bytes")
row("gen -o one.jsonl", *g1, n1)
g1z = timed([bin_, "gen", "--depth", "128k", "--turns", "25", "--seed", "1", "-q", "-o", one + ".zst"], runs)
row("gen -o one.jsonl.zst", *g1z, n1)
row("reference: cat", *timed(["cat", one], runs), n1)
row("reference: zstd -3 -c", *timed(["zstd", "-3", "-c", one], runs), n1)

many = os.path.join(work, "many.jsonl")
n = max(3, runs // 5)
g2 = timed([bin_, "gen", "--depth", "32k", "--sessions", "100", "--seed", "1", "-q", "-o", many], n)
n2 = os.path.getsize(many)
print(f"100 sessions of 32k, claude-code: {n2} bytes")
row("gen --sessions 100 -o many.jsonl", *g2, n2)
row("reference: cat", *timed(["cat", many], n), n2)
row("reference: zstd -3 -c", *timed(["zstd", "-3", "-c", many], n), n2)

target = 0.050
verdict = "met" if g1[0] < target else "MISSED"
print(f"target: one 128k session under 50 ms: {verdict} ({g1[0]*1000:.1f} ms median)")
if check and g1[0] >= target:
    sys.exit(1)
PY

if [ "$REAL" = 1 ]; then
    echo "estimator vs real tokenizers (tests/real/check-gen-depth.sh, seeds 1 2 3):"
    rc=0
    "$SCRIPT_DIR/../real/check-gen-depth.sh" "$BIN" --seeds "1 2 3" --tsv "$work/kinds.tsv" || rc=$?
    if [ "$rc" = 77 ]; then echo "  (tokenizers unavailable: skipped)"; exit 0; fi
    python3 - "$work/kinds.tsv" <<'PY'
import csv, collections, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def table(key, title):
    agg = collections.defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        if r["kind"] == "prompt" and key != "style":
            continue
        if key == "style" and r["kind"] != "prompt":
            continue
        a = agg[r[key]]
        for i, f in enumerate(("est", "llama3", "qwen2", "o200k")):
            a[i] += int(r[f])
    print(f"  {title:<18} {'tokens':>9} {'vs llama3':>10} {'vs qwen2':>9} {'vs o200k':>9}   (estimate - real) / real")
    for k, a in sorted(agg.items()):
        print(f"  {k:<18} {a[0]:9d} {100*(a[0]-a[1])/a[1]:+9.1f}% {100*(a[0]-a[2])/a[2]:+8.1f}% {100*(a[0]-a[3])/a[3]:+8.1f}%")
table("style", "style (prompt text)")
table("kind", "content kind")
PY
    exit $rc
fi
