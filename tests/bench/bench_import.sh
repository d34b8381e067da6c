#!/usr/bin/env bash
# bench_import.sh — import throughput (MB/s) and peak RSS, against references over the same bytes
# measured in the same run:
#   1. the largest real sample (tests/data/import/claude-code/yael-peretz_jgive_transcript.jsonl,
#      2.1 MB, Claude Code), repeated --runs times; median wall time;
#   2. a synthetic Claude Code log of --size MB (default 500), generated here from that real session
#      (copies chained by parentUuid with fresh uuids and message ids, so one long active branch and
#      a new API call per copy's call; never committed), imported once;
#   references: `cat FILE > /dev/null` (reading the bytes) and python3 `json.loads` of every line
#   (parsing them, the least an importer must do). Peak RSS from /usr/bin/time: streaming means it
#   stays flat as the file grows (the synthetic log is ~240x the real one).
# Usage: bench_import.sh AGENTREPLAY [--runs N] [--size MB] [--keep]
set -euo pipefail
BIN=${1:?usage: bench_import.sh AGENTREPLAY [--runs N] [--size MB]}
shift
RUNS=5 SIZE=500
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        *) echo "bench_import: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REAL=$SRC/tests/data/import/claude-code/yael-peretz_jgive_transcript.jsonl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x /usr/bin/time ] || { echo "bench_import: /usr/bin/time is needed for peak RSS" >&2; exit 2; }

python3 - "$REAL" "$work/synthetic.jsonl" "$SIZE" <<'PY'
import json, sys
src, dst, size = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 1000 * 1000
lines = [json.loads(l) for l in open(src, encoding="utf-8")]
last = None  # uuid of the previous copy's last line
with open(dst, "w", encoding="utf-8") as f:
    k = 0
    while f.tell() < size:
        first = True
        prev = None
        for o in lines:
            o = dict(o)
            for key in ("uuid", "parentUuid", "leafUuid", "sourceToolAssistantUUID"):
                if o.get(key):
                    o[key] = "%s-%d" % (o[key], k)
            if "uuid" in o and first:
                o["parentUuid"] = last  # chain the copy to the previous one
                first = False
            if o.get("type") == "assistant":
                m = dict(o["message"]); m["id"] = "%s-%d" % (m["id"], k); o["message"] = m
            if "uuid" in o:
                prev = o["uuid"]
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
        last = prev
        k += 1
PY

python3 - "$BIN" "$REAL" "$work/synthetic.jsonl" "$RUNS" "$work" <<'PY'
import os, statistics, subprocess, sys, time
bin_, real, synth, runs, work = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]

def run(args, stdin=None):
    """wall seconds and peak RSS (KiB) of one run"""
    a = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, stdin=open(stdin, "rb") if stdin else None)
    t = time.perf_counter() - a
    if p.returncode != 0:
        sys.exit("bench_import: %s failed: %s" % (args, p.stderr.decode()[-500:]))
    return t, int(p.stderr.decode().strip().splitlines()[-1])

PARSE = "import json,sys\nfor l in sys.stdin.buffer:\n    l.strip() and json.loads(l)\n"

def bench(name, path, n):
    mb = os.path.getsize(path) / 1e6
    imp = [run([bin_, "import", "claude-code", path, "-o", "-", "-q"]) for _ in range(n)]
    cat = [run(["cat", path]) for _ in range(n)]
    py = [run(["python3", "-c", PARSE], stdin=path) for _ in range(n)]
    ti, tc, tp = (statistics.median(x[0] for x in r) for r in (imp, cat, py))
    rss = max(x[1] for x in imp)
    print("%s (%.1f MB, median of %d):" % (name, mb, n))
    print("  agentreplay import   %8.1f MB/s  %7.3f s  peak RSS %7.1f MiB" % (mb / ti, ti, rss / 1024))
    print("  cat                  %8.1f MB/s  %7.3f s   (import is %.1fx slower)" % (mb / tc, tc, ti / tc))
    print("  python3 json.loads   %8.1f MB/s  %7.3f s   (import is %.2fx the speed of parsing alone)" % (mb / tp, tp, tp / ti))
    return rss

r1 = bench("largest real sample", real, runs)
r2 = bench("synthetic Claude Code log", synth, 1)
print("peak RSS: %.1f MiB on %.1f MB vs %.1f MiB on %.1f MB (streaming: bounded by the longest line and the per-line index)"
      % (r1 / 1024, os.path.getsize(real) / 1e6, r2 / 1024, os.path.getsize(synth) / 1e6))
PY
