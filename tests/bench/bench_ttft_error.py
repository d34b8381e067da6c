#!/usr/bin/env python3
"""Benchmark: TTFT measurement error (measured - true) against the fault-
injecting server, whose log records when each request was read and when its
first token was handed to the socket (CLOCK_MONOTONIC, same clock as ours).

  agentreplay run : 200 turns of a tiny session, streaming, kept-alive
  curl reference  : 200 x curl -w '%{time_starttransfer} %{time_pretransfer}',
                    non-streaming with max_tokens 1 (its first byte is the
                    first token), on a fresh connection each time as curl(1) does

error = client-side TTFT - (t_first_token - t_recv) from the server log.
Usage: bench_ttft_error.py AGENTREPLAY AR_FAULTSRV [N]
"""
import json, os, subprocess, sys, tempfile, time

AR, FS = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 200
TTFT_MS = 50
work = tempfile.mkdtemp(prefix="ar-bench-ttft-")
log = os.path.join(work, "fs.log")
pf = os.path.join(work, "port")
srv = subprocess.Popen([FS, "--port", "0", "--port-file", pf, "--ttft-ms", str(TTFT_MS), "--itl-ms", "1", "--log", log],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while not (os.path.exists(pf) and open(pf).read().strip()):
    time.sleep(0.01)
url = f"http://127.0.0.1:{open(pf).read().strip()}"


def server_truth():
    rows = [json.loads(l) for l in open(log)]
    return [(r["t_first_token_ns"] - r["t_recv_ns"]) / 1e6 for r in rows]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]


# agentreplay: one session of N turns, 2 tokens each
trace = os.path.join(work, "t.jsonl")
with open(trace, "w") as f:
    f.write(json.dumps({"type": "session", "format": "agentreplay-trace/1", "id": "ttft", "system": "bench"}) + "\n")
    for i in range(N):
        f.write(json.dumps({"type": "turn", "i": i, "keep": 0, "append": [{"role": "user", "content": f"q{i}"}],
                            "response": {"output_tokens": 2}}) + "\n")
out = subprocess.run([AR, "run", trace, "--backend", f"openai:{url}", "--db", os.path.join(work, "b.db"), "--json",
                      "--quiet", "--repeats", "1", "--warmup", "0", "--cold", "none"], capture_output=True, text=True)
ours = [r["ttft_ms"] for r in sorted(json.loads(out.stdout)["configs"][0]["requests"], key=lambda r: r["turn"])]
truth = server_truth()
err_ours = [a - b for a, b in zip(ours, truth)]

# curl(1): non-streaming, 1 token, so its first byte is the first token
body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "q"}], "max_tokens": 1, "stream": False})
curl_t = []
for i in range(N):
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_pretransfer}",
                        "-H", "Content-Type: application/json", "-d", body, url + "/v1/chat/completions"],
                       capture_output=True, text=True)
    st, pre = map(float, p.stdout.split())
    curl_t.append((st - pre) * 1000)
truth = server_truth()[N:]
err_curl = [a - b for a, b in zip(curl_t, truth)]
srv.terminate()
srv.wait()

print(f"true first-token delay: {TTFT_MS} ms (server log: p50 {pct(truth, .5):.3f} ms)")
for name, e in (("agentreplay (stream, keep-alive)", err_ours), ("curl -w time_starttransfer", err_curl)):
    print(f"{name:34s} TTFT error p50 {pct(e, .5)*1000:7.0f} us, p99 {pct(e, .99)*1000:7.0f} us, "
          f"min {min(e)*1000:5.0f} us ({len(e)} requests)")
print(f"ratio of p50 errors (agentreplay / curl): {pct(err_ours, .5) / pct(err_curl, .5):.2f}; "
      f"p99: {pct(err_ours, .99) / pct(err_curl, .99):.2f}")
