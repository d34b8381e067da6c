#!/usr/bin/env python3
"""Benchmark: what reading a stream costs agentreplay — CPU seconds per 1M
streamed tokens at 10k and 100k tokens/s, against the fault-injecting server
(one request of N tokens at a fixed pace), minus the CPU of the same run with
a 1-token answer (start-up, trace, store). Also prints the decode rate and
ITL agentreplay measured, to show the pace held.

Usage: bench_stream_cpu.py AGENTREPLAY AR_FAULTSRV
"""
import json, os, subprocess, sys, tempfile, time

AR, FS = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="ar-bench-cpu-")


def trace(tokens):
    p = os.path.join(work, f"t{tokens}.jsonl")
    with open(p, "w") as f:
        f.write(json.dumps({"type": "session", "format": "agentreplay-trace/1", "id": "cpu", "system": "bench"}) + "\n")
        f.write(json.dumps({"type": "turn", "i": 0, "append": [{"role": "user", "content": "go"}],
                            "response": {"output_tokens": tokens}}) + "\n")
    return p


def measure(itl_ms, tokens):
    pf = os.path.join(work, "port")
    if os.path.exists(pf):
        os.unlink(pf)
    srv = subprocess.Popen([FS, "--port", "0", "--port-file", pf, "--ttft-ms", "5", "--itl-ms", str(itl_ms)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (os.path.exists(pf) and open(pf).read().strip()):
        time.sleep(0.01)
    url = f"http://127.0.0.1:{open(pf).read().strip()}"
    db = os.path.join(work, "b.db")
    if os.path.exists(db):
        os.unlink(db)
    p = subprocess.Popen([AR, "run", trace(tokens), "--backend", f"openai:{url}", "--db", db, "--json", "--quiet",
                          "--repeats", "1", "--warmup", "0", "--cold", "none"], stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    srv.terminate()
    srv.wait()
    r = json.loads(out)["configs"][0]["requests"][0]
    return ru.ru_utime + ru.ru_stime, r


base_cpu, _ = measure(1, 1)
print(f"baseline (1-token answer): {base_cpu * 1000:.1f} ms CPU")
for rate, itl, n in ((10_000, 0.1, 100_000), (100_000, 0.01, 300_000)):
    cpu, r = measure(itl, n)
    per_m = (cpu - base_cpu) / (r["completion_tokens"] / 1e6)
    print(f"{rate:>7,} tok/s target: {r['completion_tokens']} tokens, measured decode {r['decode_tps']:,.0f} tok/s, "
          f"ITL p50 {r['itl_p50_ms']*1000:.1f} us, CPU {cpu:.2f} s -> {per_m:.2f} CPU-s per 1M tokens "
          f"({per_m / 1e6 * 1e9:.0f} ns per token)")
