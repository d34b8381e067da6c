#!/usr/bin/env python3
"""Benchmark: TTFT added by `agentreplay record` (the recording proxy).

One `agentreplay sim serve` (llama-server profile, --time-scale 200), one recorder in front
of it (redaction on, request log on). N pairs of streamed chat requests, each pair the same
fresh prompt (a new prefix, so no pair inherits a cached prompt) sent once directly and once
through the recorder, in alternating order, each path on its own kept-alive connection (as
agent SDKs do). TTFT = client send to the first SSE event carrying content. Prints p50/p99 of
both paths, the paired difference (via recorder - direct) and the ratio of the p50s, and the
paired difference at the last byte (the recorder ends an answer only once its record is written).
Usage: bench_record.py AGENTREPLAY [N]
"""
import http.client, json, os, subprocess, sys, tempfile, time

AR = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
work = tempfile.mkdtemp(prefix="ar-bench-record-")
procs = []


def wait_port(pf):
    for _ in range(500):
        if os.path.exists(pf) and open(pf).read().strip():
            return int(open(pf).read())
        time.sleep(0.01)
    raise SystemExit("no port in " + pf)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]


try:
    spf = os.path.join(work, "sim.port")
    procs.append(subprocess.Popen([AR, "sim", "serve", "--profile", "model=qwen3-8b,quant=q4_k_m,hw=rtx-4090,engine=llama-server,ctx=32k",
                                   "--port", "0", "--port-file", spf, "--time-scale", "200", "-q"], stderr=subprocess.DEVNULL))
    sp = wait_port(spf)
    rpf = os.path.join(work, "rec.port")
    procs.append(subprocess.Popen([AR, "record", "--upstream", "http://127.0.0.1:%d" % sp, "--listen", "127.0.0.1:0",
                                   "--port-file", rpf, "-o", os.path.join(work, "t.jsonl"), "--log", os.path.join(work, "log.jsonl"), "-q"],
                                  stderr=subprocess.DEVNULL))
    rp = wait_port(rpf)
    conns = {"direct": http.client.HTTPConnection("127.0.0.1", sp), "record": http.client.HTTPConnection("127.0.0.1", rp)}
    ctx = "Context: " + " ".join("line %d of the file under review;" % i for i in range(300))

    def ttft(path, prompt):
        c = conns[path]
        body = json.dumps({"model": "m", "stream": True, "max_tokens": 4,
                           "messages": [{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": prompt}]})
        t0 = time.perf_counter()
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json", "Authorization": "Bearer x"})
        r = c.getresponse()
        first = None
        buf = b""
        while True:
            b = r.read1(65536)
            if not b:
                break
            buf += b
            if first is None and b'"content":"' in buf:
                first = (time.perf_counter() - t0) * 1000
        if r.status != 200 or first is None:
            raise SystemExit("%s: status %d, no content" % (path, r.status))
        return first, (time.perf_counter() - t0) * 1000

    for k in range(5):  # warm both connections and the server
        ttft("direct", "warm %d" % k)
        ttft("record", "warm %d" % k)
    d, v, diff, ediff = [], [], [], []
    for k in range(N):
        prompt = "[pair %d] %s Review it." % (k, ctx)
        order = ("direct", "record") if k % 2 == 0 else ("record", "direct")
        got = {}
        for path in order:
            # same prompt on both paths: put a path tag first so neither hits the other's cache
            got[path] = ttft(path, "[%s] %s" % (path, prompt))
        d.append(got["direct"][0])
        v.append(got["record"][0])
        diff.append(got["record"][0] - got["direct"][0])
        ediff.append(got["record"][1] - got["direct"][1])
    print("pairs with more than 20 ms added: %d" % sum(1 for x in diff if x > 20))
    print("recorder TTFT overhead, %d pairs of streamed requests to sim serve (llama-server profile, time-scale 200)" % N)
    print("  direct    TTFT  p50 %7.3f ms  p99 %7.3f ms" % (pct(d, 0.5), pct(d, 0.99)))
    print("  recorder  TTFT  p50 %7.3f ms  p99 %7.3f ms" % (pct(v, 0.5), pct(v, 0.99)))
    print("  added (paired)  p50 %7.3f ms  p99 %7.3f ms" % (pct(diff, 0.5), pct(diff, 0.99)))
    print("  added to the end of the answer (paired; the record is written first) p50 %7.3f ms  p99 %7.3f ms"
          % (pct(ediff, 0.5), pct(ediff, 0.99)))
    print("  ratio recorder/direct p50 %.3f  p99 %.3f" % (pct(v, 0.5) / pct(d, 0.5), pct(v, 0.99) / pct(d, 0.99)))
finally:
    for p in procs:
        p.terminate()
        p.wait()
