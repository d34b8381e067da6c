#!/usr/bin/env python3
"""End-to-end: `agentreplay record --log` then `agentreplay import openai-log` of that log.

A scripted agent sends a conversation through the recorder to `agentreplay sim serve`: it grows
(streamed answers), then the agent rewrites its history (a compaction to a summary), then a new
system prompt starts another session. The recorder writes its trace (-o) and its request log
(--log). Importing the log must give the same turns as the recorder's own trace (both derive them
with src/reqdiff.c from the same requests; only `source` may differ), and the imported trace must
validate. Usage: test_import_record_log.py AGENTREPLAY            (~2 s)
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

AR = sys.argv[1]
work = tempfile.mkdtemp(prefix="ar-import-log-")
procs = []
fails = 0


def ok(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    fails += 0 if cond else 1


def wait_port(pf):
    for _ in range(300):
        if os.path.exists(pf) and open(pf).read().strip():
            return int(open(pf).read())
        time.sleep(0.02)
    raise SystemExit("no port in " + pf)


def post(port, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    raw = r.read().decode()
    c.close()
    return r.status, raw


def text_of(raw):
    return "".join((json.loads(l[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                   for l in raw.split("\n") if l.startswith("data: {"))


try:
    pf = os.path.join(work, "sim.port")
    procs.append(subprocess.Popen([AR, "sim", "serve", "--profile",
                                   "model=qwen3-8b,quant=q4_k_m,hw=rtx-4090,engine=llama-server,ctx=8k",
                                   "--port", "0", "--port-file", pf, "--time-scale", "50", "-q"], stderr=subprocess.DEVNULL))
    sim = wait_port(pf)
    rpf = os.path.join(work, "rec.port")
    trace, log = os.path.join(work, "rec.jsonl"), os.path.join(work, "rec.log")
    rec = subprocess.Popen([AR, "record", "--upstream", "http://127.0.0.1:%d" % sim, "--listen", "127.0.0.1:0",
                            "--port-file", rpf, "-o", trace, "--log", log, "-q"], stderr=subprocess.DEVNULL)
    procs.append(rec)
    port = wait_port(rpf)
    sysmsg = {"role": "system", "content": "You are a coding agent."}
    msgs = [sysmsg, {"role": "user", "content": "Fix the failing test in ring.c."}]
    for k in range(3):  # growth
        st, raw = post(port, {"model": "m", "messages": msgs, "max_tokens": 6, "stream": True,
                              "stream_options": {"include_usage": True}})
        msgs = msgs + [{"role": "assistant", "content": text_of(raw)}, {"role": "user", "content": "next %d" % k}]
    # compaction: the history is rewritten to a summary
    msgs = [sysmsg, {"role": "user", "content": "Summary: ring.c fixed. Continue with the commit message."}]
    post(port, {"model": "m", "messages": msgs, "max_tokens": 5, "stream": False})
    # another system prompt: another session
    post(port, {"model": "m", "messages": [{"role": "system", "content": "You review code."},
                                           {"role": "user", "content": "Review ring.c"}], "max_tokens": 4})
    rec.send_signal(signal.SIGTERM)
    rec.wait(timeout=10)

    out = os.path.join(work, "imported.jsonl")
    p = subprocess.run([AR, "import", "openai-log", log, "-o", out, "--json"], capture_output=True, text=True)
    ok(p.returncode == 0, "import openai-log exits 0: " + p.stderr.strip())
    rep = json.loads(p.stdout) if p.returncode == 0 else {}
    ok(rep.get("turns") == 5 and rep.get("sessions") == 2 and rep.get("compactions") == 1,
       "report: 5 turns, 2 sessions, 1 compaction: %s" % {k: rep.get(k) for k in ("turns", "sessions", "compactions")})
    v = subprocess.run([AR, "trace", "validate", out], capture_output=True, text=True)
    ok(v.returncode == 0, "the imported trace validates: " + (v.stdout + v.stderr).strip())

    def lines(path):
        r = []
        for l in subprocess.run([AR, "trace", "cat", path], capture_output=True, text=True).stdout.splitlines():
            o = json.loads(l)
            o.pop("source", None)
            if o["type"] == "session":
                o.pop("id", None)
                o.pop("meta", None)
            r.append(o)
        return r

    a, b = lines(trace), lines(out)
    ok(len(a) == len(b) == 7, "both traces have 2 session lines and 5 turns (%d, %d)" % (len(a), len(b)))
    ok(a == b, "the imported turns equal the recorder's own")
    ok(any(o.get("keep") == 0 for o in b), "the rewrite is keep 0 + the summary")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
print("%d failed" % fails)
sys.exit(1 if fails else 0)
