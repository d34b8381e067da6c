#!/usr/bin/env python3
"""Benchmark: read and validate a large trace, plain and zstd.

Writes a ~1 GB (uncompressed) agentreplay-trace/1 file of realistic coding-
agent sessions (file reads, grep hits, test output, tool calls; turn lines
from 1 KB to 200 KB), compresses it with zstd, then times

    agentreplay trace validate FILE        (plain and .zst)
    zstd -d -c FILE.zst > /dev/null        (the reference: decompression alone)

reporting throughput in MB/s of uncompressed text, the peak RSS of each run,
and the ratio of our zstd read rate to zstd's own.

Usage: bench_trace_read.py AGENTREPLAY [SIZE_MB] [WORKDIR]
"""
import json, os, random, subprocess, sys, time

binary = sys.argv[1]
size_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
work = sys.argv[3] if len(sys.argv) > 3 else "/tmp/ar-bench"
os.makedirs(work, exist_ok=True)
path = os.path.join(work, "big.jsonl")

rnd = random.Random(7)
WORDS = ("int main return static const struct buffer length error value result parse file read write "
         "open close index count size data node list item next prev self test assert expected actual").split()

def code_lines(n):
    out = []
    for i in range(n):
        ind = "    " * rnd.randint(0, 3)
        w = rnd.sample(WORDS, 4)
        out.append(f"{ind}{w[0]}_{w[1]} = {w[2]}({w[3]}, {rnd.randint(0, 4096)});  // {w[1]} {w[2]}")
    return "\n".join(out)

def write_trace():
    target = size_mb * 1024 * 1024
    written = 0
    s = 0
    with open(path, "w") as f:
        while written < target:
            sid = f"bench-{s}"
            line = json.dumps({"type": "session", "format": "agentreplay-trace/1", "id": sid,
                               "system": "You are a coding agent. " * 200,
                               "tools": [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
                                         for n in ("read_file", "bash", "grep", "edit_file")]},
                              separators=(",", ":"))
            f.write(line + "\n")
            written += len(line) + 1
            for i in range(40):
                size = int(min(200, rnd.lognormvariate(2.5, 1.0)))  # lines of code in the tool result
                turn = {"type": "turn", "i": i, "t": i * 4.5,
                        "append": [{"role": "tool", "tool_call_id": f"c{i-1}", "content": code_lines(max(size, 5))}]
                        if i else [{"role": "user", "content": "Fix the failing test in src/parse.c"}],
                        "response": {"content": "Let me look.", "tool_calls": [
                            {"id": f"c{i}", "name": "read_file", "arguments": json.dumps({"path": f"src/f{i}.c"})}],
                                     "output_tokens": 60},
                        "recorded": {"prompt_tokens": 1000 * i, "cached_tokens": 900 * i}}
                line = json.dumps(turn, separators=(",", ":"))
                f.write(line + "\n")
                written += len(line) + 1
            s += 1
    return written

def timed(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (wall seconds, its own peak RSS in KiB, its CPU seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    err = p.stderr.read().decode()[:500]
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{cmd} failed ({p.returncode}): {err}")
    return dt, ru.ru_maxrss, ru.ru_utime + ru.ru_stime

if not os.path.exists(path) or os.path.getsize(path) < size_mb * 1024 * 1024:
    t0 = time.monotonic()
    n = write_trace()
    print(f"wrote {n/1e6:.0f} MB in {time.monotonic()-t0:.1f} s")
size = os.path.getsize(path)
zpath = path + ".zst"
if not os.path.exists(zpath):
    subprocess.run(["zstd", "-q", "-T2", "-3", "-f", path, "-o", zpath], check=True)
print(f"trace: {size/1e6:.0f} MB plain, {os.path.getsize(zpath)/1e6:.0f} MB zstd")

res = {}
for name, cmd in (("plain", [binary, "trace", "validate", "-q", path]),
                  ("zstd", [binary, "trace", "validate", "-q", zpath])):
    dt, rss, cpu = timed(cmd)
    res[name] = dt
    print(f"agentreplay trace validate ({name}): {dt:.2f} s, {size/1e6/dt:.0f} MB/s, peak RSS {rss/1024:.1f} MiB")
    if rss > 64 * 1024:
        print(f"  WARNING: peak RSS {rss/1024:.1f} MiB is over the 64 MiB budget")
dt, rss, cpu = timed(["zstd", "-d", "-c", zpath])
print(f"reference zstd -d -c > /dev/null: {dt:.2f} s, {size/1e6/dt:.0f} MB/s")
print(f"ratio (our zstd read+validate rate / zstd's decompression rate): {dt/res['zstd']:.2f}")
