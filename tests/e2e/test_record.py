#!/usr/bin/env python3
"""End-to-end test of `agentreplay record` (replay/record.c).

A scripted agent (this file) sends a growing conversation with tool calls, streamed and not,
in OpenAI chat and Anthropic messages shapes, through the recorder to a scripted upstream
(below; `sim serve` has no /v1/messages, and a scripted upstream lets us compare bytes). A
second pass goes through the recorder to `agentreplay sim serve`. Asserts:
  - the agent receives byte-identical bodies (what the upstream sent), streamed in pieces;
  - credentials in headers reach the upstream and appear in no output file; a secret in a
    message body is redacted in the trace and the log;
  - the trace validates, and replaying it (`agentreplay run --backend openai:...` against a
    capturing server) sends exactly the prompts the agent sent (nonce aside);
  - an unreachable upstream gets a 502 JSON error and the recorder serves the next request;
  - SIGKILL leaves a valid trace; SIGINT exits 130 and SIGTERM 0 with a valid trace;
  - a main conversation and two concurrent subagent conversations (threads, interleaved) become
    3 sessions: the parent first, 2 children with parent and spawned_at_turn; each session
    materialises exactly the prompts its conversation sent; the log names each call's session;
    SIGKILL while the children run leaves a valid trace.
Usage: test_record.py AGENTREPLAY            (~5 s)
"""
import http.client
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

AR = sys.argv[1]
work = tempfile.mkdtemp(prefix="ar-record-")
fails = 0
procs = []


def ok(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails += 1


AUTH = "Bearer " + "live-" + "Zq8RkT2mW9xY4pL7vN3s"
XKEY = "xk-" + "7Hq2Lp9Ws4Rt8Yv3Nm6B"
SECRET = "gh" + "p_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tV8wX0yZcUiO"


# ---- the scripted upstream ---------------------------------------------------------------------
class Upstream(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, capture=False):
        super().__init__(addr, Handler)
        self.log = []  # (path, headers, body bytes, response bytes)
        self.capture = capture
        self.answerer = None  # (path, req, k) -> (text, calls); None = answer()
        self.raw = None  # bytes that replace "RAW" in answers (e.g. bytes that are not UTF-8)
        self.linger = 0  # seconds between a stream's last event and its closing chunk


def sse_openai(text, calls, usage):
    ev = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}]
    for w in re.findall(r"\S+\s*", text):
        ev.append({"choices": [{"index": 0, "delta": {"content": w}}]})
    for i, (cid, name, args) in enumerate(calls):
        ev.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": cid, "type": "function",
                                                                      "function": {"name": name, "arguments": ""}}]}}]})
        for k in range(0, len(args), 7):
            ev.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": args[k:k + 7]}}]}}]})
    ev.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}]})
    ev.append({"choices": [], "usage": usage})
    return [("data: " + json.dumps(e) + "\n\n").encode() for e in ev] + [b"data: [DONE]\n\n"]


def sse_anthropic(text, calls, usage):
    ev = [("message_start", {"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": [],
                                                                  "usage": {"input_tokens": usage[0], "cache_read_input_tokens": usage[1], "output_tokens": 1}}}),
          ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
          ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "let me think"}}),
          ("content_block_stop", {"type": "content_block_stop", "index": 0})]
    idx = 1
    if text:
        ev.append(("content_block_start", {"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}}))
        for w in re.findall(r"\S+\s*", text):
            ev.append(("content_block_delta", {"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": w}}))
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": idx}))
        idx += 1
    for cid, name, args in calls:
        ev.append(("content_block_start", {"type": "content_block_start", "index": idx,
                                           "content_block": {"type": "tool_use", "id": cid, "name": name, "input": {}}}))
        for k in range(0, len(args), 5):
            ev.append(("content_block_delta", {"type": "content_block_delta", "index": idx,
                                               "delta": {"type": "input_json_delta", "partial_json": args[k:k + 5]}}))
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": idx}))
        idx += 1
    ev.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use" if calls else "end_turn"},
                                 "usage": {"output_tokens": usage[2]}}))
    ev.append(("message_stop", {"type": "message_stop"}))
    return [("event: %s\ndata: %s\n\n" % (n, json.dumps(d))).encode() for n, d in ev]


def answer(path, req, n):
    """The scripted model: a tool call on odd user-turn counts, text otherwise."""
    msgs = req.get("messages", [])
    call = n % 2 == 0
    text = "" if call else "Done after %d messages: the build passes now." % len(msgs)
    calls = [("call_%d" % n, "bash", json.dumps({"command": "make test -j%d" % n}))] if call else []
    return text, calls


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real servers do: each event leaves at once

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.log.append((self.path, dict(self.headers), b"", body))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        req = json.loads(raw.decode("utf-8", "replace"))
        k = len(self.server.log)
        anthropic = self.path.startswith("/v1/messages")
        text, calls = (self.server.answerer or answer)(self.path, req, k)
        if self.server.capture:
            text, calls = "ok", []
        stream = bool(req.get("stream"))
        if anthropic:
            usage = (100 + 10 * k, 50 * k, 20)
            if stream:
                chunks = sse_anthropic(text, calls, usage)
            else:
                content = [{"type": "thinking", "thinking": "hm", "signature": "s"}]
                if text:
                    content.append({"type": "text", "text": text})
                content += [{"type": "tool_use", "id": c, "name": nm, "input": json.loads(a)} for c, nm, a in calls]
                chunks = [json.dumps({"id": "msg_%d" % k, "type": "message", "role": "assistant", "content": content,
                                      "usage": {"input_tokens": usage[0], "cache_read_input_tokens": usage[1],
                                                "output_tokens": usage[2]}}).encode()]
        else:
            usage = {"prompt_tokens": 100 + 10 * k, "completion_tokens": 20, "total_tokens": 120 + 10 * k,
                     "prompt_tokens_details": {"cached_tokens": 50 * k}}
            if stream:
                chunks = sse_openai(text, calls, usage)
            else:
                msg = {"role": "assistant", "content": text or None}
                if calls:
                    msg["tool_calls"] = [{"id": c, "type": "function", "function": {"name": nm, "arguments": a}} for c, nm, a in calls]
                chunks = [json.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": msg,
                                      "finish_reason": "tool_calls" if calls else "stop"}], "usage": usage}).encode()]
        if self.server.raw is not None:
            chunks = [c.replace(b"RAW", self.server.raw) for c in chunks]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        self.send_header("X-Upstream", "scripted")
        if stream:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
        self.end_headers()
        # logged before the bytes go out: the agent may look as soon as it has them
        self.server.log.append((self.path, dict(self.headers), raw, b"".join(chunks)))
        for c in chunks:
            if stream:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                self.wfile.flush()
                time.sleep(0.002)
            else:
                self.wfile.write(c)
        if stream:
            self.wfile.flush()
            time.sleep(self.server.linger)
            self.wfile.write(b"0\r\n\r\n")


def serve(capture=False, port=0):
    s = Upstream(("127.0.0.1", port), capture)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


def start_recorder(upstream, name, extra=()):
    pf = os.path.join(work, name + ".port")
    err = open(os.path.join(work, name + ".err"), "w")
    p = subprocess.Popen([AR, "record", "--upstream", upstream, "--listen", "127.0.0.1:0", "--port-file", pf,
                          "-o", os.path.join(work, name + ".jsonl"), "--log", os.path.join(work, name + ".log")] + list(extra),
                         stderr=err)
    procs.append(p)
    for _ in range(200):
        if os.path.exists(pf) and open(pf).read().strip():
            return p, int(open(pf).read())
        time.sleep(0.02)
    raise SystemExit("recorder %s did not start: %s" % (name, open(os.path.join(work, name + ".err")).read()))


def post(port, path, body, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Content-Type": "application/json", "Authorization": AUTH, "x-api-key": XKEY}
    h.update(headers or {})
    c.request("POST", path, json.dumps(body), h)
    r = c.getresponse()
    chunks = []
    while True:
        b = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
        if not b:
            break
        chunks.append(b)
    c.close()
    return r.status, dict(r.getheaders()), b"".join(chunks), len(chunks)


# ---- the scripted agent -------------------------------------------------------------------------
def openai_agent(port):
    """A growing OpenAI conversation; returns the request bodies it sent."""
    sent = []
    tools = [{"type": "function", "function": {"name": "bash", "description": "run a command",
                                               "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}]
    msgs = [{"role": "system", "content": "You are a coding agent in a C repository."},
            {"role": "user", "content": "The tests fail; my token is " + SECRET + " if you need the API."}]
    for step in range(6):
        body = {"model": "gpt-test", "messages": msgs, "tools": tools, "stream": step % 2 == 0, "max_tokens": 64}
        if step % 2 == 0:
            body["stream_options"] = {"include_usage": True}
        st, hdr, raw, pieces = post(port, "/v1/chat/completions", body)
        sent.append((json.loads(json.dumps(body)), st, raw, pieces))
        if step % 2 == 0:
            text, calls = "", {}
            for line in raw.decode().split("\n"):
                if line.startswith("data: {"):
                    d = json.loads(line[6:])
                    for ch in d.get("choices", []):
                        dl = ch.get("delta", {})
                        text += dl.get("content") or ""
                        for tc in dl.get("tool_calls", []):
                            c = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
                            c["id"] = tc.get("id") or c["id"]
                            c["name"] = tc.get("function", {}).get("name") or c["name"]
                            c["arguments"] += tc.get("function", {}).get("arguments", "")
            m = {"role": "assistant", "content": text or None}
            if calls:
                m["tool_calls"] = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                                   for _, c in sorted(calls.items())]
        else:
            m = json.loads(raw)["choices"][0]["message"]
        msgs = msgs + [m]
        if m.get("tool_calls"):
            for tc in m["tool_calls"]:
                msgs.append({"role": "tool", "tool_call_id": tc["id"], "content": "ran %s: 12 passed" % tc["function"]["arguments"]})
        else:
            msgs.append({"role": "user", "content": "Good. Next step %d, please." % step})
        if step == 3:
            # compaction: the agent rewrites its history into a summary
            msgs = [msgs[0], {"role": "user", "content": "Summary of the work so far: tests pass. Continue."}]
    return sent


def anthropic_agent(port):
    sent = []
    tools = [{"name": "bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
    system = [{"type": "text", "text": "You are Claude, a coding agent.", "cache_control": {"type": "ephemeral"}}]
    msgs = [{"role": "user", "content": "List the files, please."}]
    for step in range(4):
        body = {"model": "claude-test", "max_tokens": 64, "system": system, "tools": tools, "messages": msgs, "stream": step % 2 == 0}
        st, hdr, raw, pieces = post(port, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
        sent.append((json.loads(json.dumps(body)), st, raw, pieces))
        blocks = []
        if step % 2 == 0:
            cur = {}
            for chunk in raw.decode().split("\n\n"):
                m = re.search(r"^data: (.*)$", chunk, re.M)
                if not m:
                    continue
                d = json.loads(m.group(1))
                if d["type"] == "content_block_start":
                    cur[d["index"]] = dict(d["content_block"], _json="")
                elif d["type"] == "content_block_delta":
                    dl = d["delta"]
                    b = cur[d["index"]]
                    if dl["type"] == "text_delta":
                        b["text"] += dl["text"]
                    elif dl["type"] == "thinking_delta":
                        b["thinking"] += dl["thinking"]
                    elif dl["type"] == "input_json_delta":
                        b["_json"] += dl["partial_json"]
            for i in sorted(cur):
                b = cur[i]
                if b["type"] == "tool_use":
                    b["input"] = json.loads(b["_json"] or "{}")
                b.pop("_json")
                blocks.append(b)
        else:
            blocks = json.loads(raw)["content"]
        msgs = msgs + [{"role": "assistant", "content": blocks}]
        uses = [b for b in blocks if b["type"] == "tool_use"]
        if uses:
            msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": b["id"],
                                                      "content": [{"type": "text", "text": "a.c b.c"}]} for b in uses]
                         + [{"type": "text", "text": "Count them too."}]})
        else:
            msgs.append({"role": "user", "content": "Thanks, now step %d." % step})
    return sent


# ---- concurrent subagents: a main conversation and two subagents, interleaved ----------------
MAIN_SYS = "You are the main agent. Delegate with Task."
SUB_SYS = "You are a subagent. Use bash, then report."
MAIN_TOOLS = [{"type": "function", "function": {"name": "Task", "parameters": {"type": "object"}}},
              {"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
SUB_TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
SUB_TURNS = 4


def answer_multi(path, req, k):
    """The scripted model of the subagent test: decides from the conversation alone."""
    msgs = req["messages"]
    if msgs[0]["content"] == MAIN_SYS:
        if msgs[-1]["role"] == "user" and len(msgs) == 2:
            return "", [("task_a", "Task", json.dumps({"prompt": "review ring.c"})),
                        ("task_b", "Task", json.dumps({"prompt": "callers of ring_push"}))]
        return "Main answer after %d messages." % len(msgs), []
    name = msgs[1]["content"]
    a = sum(1 for m in msgs if m["role"] == "assistant")
    if a < SUB_TURNS - 1:
        return "", [("sub_%s_%d" % (name[:6].replace(" ", "_"), a), "bash", json.dumps({"command": "grep -n %d" % a}))]
    return "Report on %s." % name, []


def chat(port, msgs, tools, stream):
    st, _, raw, _ = post(port, "/v1/chat/completions", {"model": "m", "messages": msgs, "tools": tools, "stream": stream,
                                                        "stream_options": {"include_usage": True}} if stream else
                         {"model": "m", "messages": msgs, "tools": tools})
    if st != 200:
        raise RuntimeError("status %d" % st)
    if not stream:
        m = json.loads(raw)["choices"][0]["message"]
        return m.get("content") or "", [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls") or []]
    text, calls = "", {}
    for l in raw.decode().split("\n"):
        if not l.startswith("data: {"):
            continue
        ch = json.loads(l[6:])["choices"]
        d = ch[0].get("delta", {}) if ch else {}
        text += d.get("content") or ""
        for tc in d.get("tool_calls") or []:
            c = calls.setdefault(tc["index"], ["", "", ""])
            c[0] = tc.get("id") or c[0]
            c[1] = tc["function"].get("name") or c[1]
            c[2] += tc["function"].get("arguments") or ""
    return text, [tuple(calls[i]) for i in sorted(calls)]


def asst(text, calls):
    m = {"role": "assistant", "content": text or None}
    if calls:
        m["tool_calls"] = [{"id": c, "type": "function", "function": {"name": n, "arguments": a}} for c, n, a in calls]
    return m


def subagent(port, task, turns, sent, gate):
    """One subagent conversation: its requests go to sent[task] (in order)."""
    msgs = [{"role": "system", "content": SUB_SYS}, {"role": "user", "content": task}]
    for k in range(turns):
        gate(k)
        sent.setdefault(task, []).append(json.loads(json.dumps(msgs)))
        text, calls = chat(port, msgs, SUB_TOOLS, stream=k % 2 == 0)
        msgs.append(asst(text, calls))
        if not calls:
            return text
        msgs += [{"role": "tool", "tool_call_id": c, "content": "out of %s" % c} for c, _, _ in calls]
    return None


def run_multi(port, sub_turns, finish=True):
    """Main turn 0 issues two Task calls; two subagent threads run interleaved (a barrier per
    turn makes both send their k-th request before either sends its k+1-th); then main goes on
    with their reports. Returns {conversation: [messages of each request]}."""
    sent = {}
    main = [{"role": "system", "content": MAIN_SYS}, {"role": "user", "content": "Review ring.c and find its callers."}]
    sent["main"] = [json.loads(json.dumps(main))]
    text, calls = chat(port, main, MAIN_TOOLS, stream=True)
    main.append(asst(text, calls))
    bar = threading.Barrier(2)
    reports = {}

    def gate(k):
        bar.wait(timeout=10)

    def one(task):
        reports[task] = subagent(port, task, sub_turns, sent, gate)

    ths = [threading.Thread(target=one, args=(json.loads(a)["prompt"],)) for _, _, a in calls]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if not finish:
        return sent
    main += [{"role": "tool", "tool_call_id": c, "content": reports[json.loads(a)["prompt"]]} for c, _, a in calls]
    for k in range(2):
        sent["main"].append(json.loads(json.dumps(main)))
        text, calls = chat(port, main, MAIN_TOOLS, stream=k == 0)
        main += [asst(text, calls), {"role": "user", "content": "And then step %d?" % k}]
    return sent


def materialise(path):
    """FORMAT.md section 7 in Python: {session id: (session line, [normalised prompts])}."""
    out, cur = {}, None
    for l in open(path):
        o = json.loads(l)
        if o["type"] == "session":
            cur = o["id"]
            out[cur] = (o, [], [], [None])
            continue
        ses, prompts, hist, prev = out[cur]
        if o["i"] > 0 and prev[0] is not None:
            r = prev[0]
            hist.append(("assistant", r.get("content") or "", [(c["id"], c["name"], c["arguments"]) for c in r.get("tool_calls") or []], None))
        if "keep" in o:
            del hist[o["keep"]:]
        for m in o["append"]:
            hist.append((m["role"], m.get("content") or "", [(c["id"], c["name"], c["arguments"]) for c in m.get("tool_calls") or []],
                         m.get("tool_call_id")))
        prompts.append((ses.get("system"), list(hist)))
        prev[0] = o.get("response")
    return out


# ---- normalisation (the trace's message model, as reqdiff.h documents it) ----------------------
def norm_openai(body):
    out = []
    msgs = body["messages"]
    system = None
    for i, m in enumerate(msgs):
        c = m.get("content")
        if isinstance(c, list):
            c = "\n".join(p.get("text", "") for p in c if p.get("type") in ("text", None))
        if m["role"] in ("system", "developer") and i == 0:
            system = c
            continue
        calls = [(t["id"], t["function"]["name"], t["function"]["arguments"]) for t in m.get("tool_calls") or []]
        out.append((m["role"], c or "", calls, m.get("tool_call_id")))
    return system, out


def cj(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def norm_anthropic(body):
    s = body.get("system")
    if isinstance(s, list):
        s = "\n".join(b["text"] for b in s if b.get("type") == "text")
    out = []
    for m in body["messages"]:
        c = m["content"]
        if isinstance(c, str):
            out.append((m["role"], c, [], None))
            continue
        texts = [b["text"] for b in c if b["type"] == "text"]
        if m["role"] == "assistant":
            calls = [(b["id"], b["name"], cj(b["input"])) for b in c if b["type"] == "tool_use"]
            out.append(("assistant", "\n".join(texts), calls, None))
        else:
            for b in c:
                if b["type"] == "tool_result":
                    tc = b["content"] if isinstance(b["content"], str) else "\n".join(p["text"] for p in b["content"])
                    out.append(("tool", tc, [], b["tool_use_id"]))
            if texts or not any(b["type"] == "tool_result" for b in c):
                out.append(("user", "\n".join(texts), [], None))
    return s, out


NONCE = re.compile(r"^\[\w+ [0-9a-f]{16}\] ")


def norm_replayed(body):
    s, msgs = norm_openai(body)
    if s is not None:
        s = NONCE.sub("", s, count=1)
    return s, msgs


def redacted(s):
    return s.replace(SECRET, "[REDACTED:github]" + "*" * (len(SECRET) - len("[REDACTED:github]")))


def redact_norm(n):
    s, msgs = n
    return s, [(r, redacted(c), calls, t) for r, c, calls, t in msgs]


def validate(path):
    p = subprocess.run([AR, "trace", "validate", path], capture_output=True, text=True)
    return p.returncode == 0, p.stdout + p.stderr


def stop(p, sig):
    p.send_signal(sig)
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        return -1


try:
    # ---- 1. OpenAI and Anthropic sessions through the recorder to the scripted upstream ---------
    up = serve()
    rec, port = start_recorder("http://127.0.0.1:%d" % up.server_address[1], "main")
    oa = openai_agent(port)
    an = anthropic_agent(port)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/v1/models", headers={"Authorization": AUTH})
    r = c.getresponse()
    ok(r.status == 200 and b"scripted" in r.read(), "GET /v1/models is passed through")
    c.close()
    rc = stop(rec, signal.SIGINT)
    ok(rc == 130, "SIGINT: exit 130 (got %s)" % rc)

    posts = [e for e in up.log if e[0] != "/v1/models"]
    agent = oa + an
    ok(len(posts) == len(agent) == 10, "upstream saw every call (%d of %d)" % (len(posts), len(agent)))
    ok(all(a[1] == 200 for a in agent), "every call answered 200")
    ok(all(a[2] == p[3] for a, p in zip(agent, posts)), "the agent received byte-identical bodies")
    ok(all(a[3] > 3 for a, b in zip(agent, range(10)) if a[0].get("stream")),
       "streams arrived in pieces (%s reads)" % [a[3] for a in agent if a[0].get("stream")])
    ok(all(json.loads(p[2]) == a[0] for a, p in zip(agent, posts)), "the upstream got the bodies the agent sent")
    ok(all(p[1].get("Authorization") == AUTH and p[1].get("x-api-key") == XKEY for p in posts),
       "credentials were forwarded upstream")
    ok(all(p[1].get("anthropic-version") == "2023-06-01" for p in posts if p[0] == "/v1/messages"),
       "other headers were forwarded upstream")

    trace = os.path.join(work, "main.jsonl")
    log = os.path.join(work, "main.log")
    good, msg = validate(trace)
    ok(good, "the recorded trace validates: " + msg.strip())
    for f in (trace, log, os.path.join(work, "main.err")):
        data = open(f).read()
        ok(AUTH.split()[1] not in data and XKEY not in data, "no credential in %s" % os.path.basename(f))
        ok(SECRET not in data, "the secret in a message is redacted in %s" % os.path.basename(f))
    lines = [json.loads(l) for l in open(log)]
    ok(len(lines) == 10 and all(l["v"] == 1 and l["api"] in ("openai-chat", "anthropic-messages") for l in lines),
       "the request log has one v1 line per call")
    ok(all((l["ttft_ms"] is not None) == bool(l["request"].get("stream")) for l in lines), "ttft_ms only for streams")
    ok(lines[0]["response"]["tool_calls"][0]["function"]["name"] == "bash" and lines[1]["response"]["tool_calls"] is None
       and lines[0]["response"]["usage"]["prompt_tokens"] == 100,
       "the log keeps tool calls and usage as reported")
    ok(lines[6]["response"]["reasoning_chars"] == len("let me think"), "anthropic thinking counted in reasoning_chars")
    items = [json.loads(l) for l in open(trace)]
    sessions = [i for i in items if i["type"] == "session"]
    turns = [i for i in items if i["type"] == "turn"]
    ok(len(sessions) == 2 and len(turns) == 10, "2 sessions (OpenAI, Anthropic), 10 turns (%d, %d)" % (len(sessions), len(turns)))
    ok([t.get("keep") for t in turns[:6]] == [None, None, None, None, 0, None],
       "keep only where the agent compacted its history (%s)" % [t.get("keep") for t in turns[:6]])
    ok(all(len(t["append"]) <= 3 for t in turns[1:4]), "turns append only the new messages")
    ok(turns[6]["recorded"]["prompt_tokens"] == 100 + 60 + 300 and turns[6]["recorded"]["cached_tokens"] == 300,
       "anthropic usage normalised (prompt = input + cache read)")

    # ---- 2. the trace replays to the prompts the agent sent ------------------------------------
    cap = serve(capture=True)
    db = os.path.join(work, "replay.db")
    p = subprocess.run([AR, "run", trace, "--backend", "openai:http://127.0.0.1:%d" % cap.server_address[1],
                        "--model", "m", "--repeats", "1", "--warmup", "0", "--cold", "none", "--db", db, "-q"],
                       capture_output=True, text=True, timeout=120)
    ok(p.returncode == 0, "replay of the recorded trace ran (rc %d) %s" % (p.returncode, p.stderr[-400:]))
    replayed = [norm_replayed(json.loads(e[2])) for e in cap.log if e[0] == "/v1/chat/completions"]
    want = [redact_norm(norm_openai(a[0])) for a in oa] + [redact_norm(norm_anthropic(a[0])) for a in an]
    ok(len(replayed) == len(want), "replay sent %d requests, the agent %d" % (len(replayed), len(want)))
    same = [r == w for r, w in zip(replayed, want)]
    ok(all(same), "replayed prompts equal the agent's prompts (%s)" % same)
    if not all(same):
        i = same.index(False)
        print("  replayed:", replayed[i], "\n  agent:   ", want[i])
    ok(all(json.loads(e[2]).get("tools") for e in cap.log if e[0] == "/v1/chat/completions"), "replay sends the recorded tools")

    # ---- 3. upstream refused -> 502, then served ----------------------------------------------
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    rec, port = start_recorder("http://127.0.0.1:%d" % dead, "refused")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    st, hdr, raw, _ = post(port, "/v1/chat/completions", body)
    err = json.loads(raw) if raw.startswith(b"{") else {}
    ok(st == 502 and err.get("error", {}).get("type") == "upstream_unreachable", "refused upstream: 502 with a JSON error (%d %s)" % (st, raw[:120]))
    up2 = serve(port=dead)
    st2, _, raw2, _ = post(port, "/v1/chat/completions", body)
    ok(st2 == 200 and raw2 == up2.log[-1][3], "the recorder serves the next request once the upstream is up")
    rc = stop(rec, signal.SIGTERM)
    ok(rc == 0, "SIGTERM: exit 0 (got %s)" % rc)
    good, msg = validate(os.path.join(work, "refused.jsonl"))
    rt = [json.loads(l) for l in open(os.path.join(work, "refused.jsonl"))]
    ok(good and "response" not in rt[1] and rt[1]["recorded"]["status"] == 502 and rt[2]["append"] == [] and "response" in rt[2],
       "the refused call is a failed turn, its retry appends nothing: " + msg.strip())
    up2.shutdown()

    # ---- 4. SIGKILL leaves a valid trace ------------------------------------------------------
    rec, port = start_recorder("http://127.0.0.1:%d" % up.server_address[1], "killed", ["--no-redact"])
    msgs = [{"role": "user", "content": "one"}]
    for k in range(3):
        st, _, raw, _ = post(port, "/v1/chat/completions", {"model": "m", "messages": msgs, "stream": k != 1})
        msgs = msgs + [{"role": "assistant", "content": "answer %d" % k}, {"role": "user", "content": "more %d" % k}]
    rec.kill()
    rec.wait()
    good, msg = validate(os.path.join(work, "killed.jsonl"))
    n = sum(1 for l in open(os.path.join(work, "killed.jsonl")) if '"type":"turn"' in l)
    ok(good and n == 3, "SIGKILL: the trace is valid with its 3 turns: " + msg.strip())

    # ---- 4b. stopped when the agent has its whole answer, before the stream's closing chunk -----
    lup = serve()
    lup.linger = 1.0
    rec, port = start_recorder("http://127.0.0.1:%d" % lup.server_address[1], "linger", ["--no-redact"])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/v1/chat/completions", json.dumps({"model": "m", "stream": True,
                                                          "messages": [{"role": "user", "content": "one"}]}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    got = b""
    while b"[DONE]" not in got:
        b = r.read1(65536)
        if not b:
            break
        got += b
    t0 = time.time()
    rc = stop(rec, signal.SIGTERM)  # as an agent's harness does once the agent has its answer
    took = time.time() - t0
    c.close()
    path = os.path.join(work, "linger.jsonl")
    good, msg = validate(path) if os.path.exists(path) else (False, "no trace written")
    n = sum(1 for l in open(path) if '"type":"turn"' in l) if os.path.exists(path) else 0
    ok(rc == 0 and good and n == 1, "stopped after [DONE], before the closing chunk: the call is recorded (%s, %d turns) %s"
       % (rc, n, msg.strip()))
    ok(took < 4, "... and the stop waits no longer than the stream's end (%.1f s)" % took)
    lup.shutdown()

    # ---- 5b. concurrent subagents: one parent and two interleaved children ------------------
    mup = serve()
    mup.answerer = answer_multi
    rec, port = start_recorder("http://127.0.0.1:%d" % mup.server_address[1], "multi")
    sent = run_multi(port, SUB_TURNS)
    rc = stop(rec, signal.SIGTERM)
    path = os.path.join(work, "multi.jsonl")
    good, msg = validate(path)
    ok(rc == 0 and good, "subagents: the trace validates (%s) %s" % (rc, msg.strip()))
    mat = materialise(path)
    ses = {k: v[0] for k, v in mat.items()}
    roots = [k for k, v in ses.items() if "parent" not in v]
    kids = [k for k, v in ses.items() if "parent" in v]
    ok(len(ses) == 3 and len(roots) == 1 and len(kids) == 2, "subagents: 3 sessions, 1 parent, 2 children (%s)" % list(ses))
    ok(all(ses[k]["parent"] == roots[0] and ses[k]["spawned_at_turn"] == 0 for k in kids),
       "subagents: children name the parent and spawned_at_turn 0")
    order = [json.loads(l)["id"] for l in open(path) if '"type":"session"' in l]
    ok(order[0] == roots[0], "subagents: the parent comes first in the file")
    # which session is which conversation: by the first user message
    by_first = {v[0]["system"] + "|" + v[1][0][1][0][1]: k for k, v in mat.items()}
    good = True
    for conv, reqs in sent.items():
        first = [m for m in reqs[0] if m["role"] == "user"][0]["content"]
        sid = by_first.get(reqs[0][0]["content"] + "|" + first)
        want = [norm_openai({"messages": r}) for r in reqs]
        got = mat[sid][1] if sid else None
        if got != want:
            good = False
            print("  %s: %d prompts sent, %s materialised" % (conv, len(want), len(got) if got else None))
    ok(good and sum(len(v) for v in sent.values()) == 3 + 2 * SUB_TURNS,
       "subagents: each session materialises exactly the prompts its conversation sent")
    log = [json.loads(l) for l in open(os.path.join(work, "multi.log"))]
    ok(len(log) == 3 + 2 * SUB_TURNS and len({e["session"] for e in log}) == 3
       and all(e.get("parent") == roots[0] and e.get("spawned_at_turn") == 0 for e in log
               if e["session"] in kids and e["request"]["messages"][-1]["role"] == "user"),
       "subagents: the log names each call's session (and a child's parent on its first call)")
    # interleaved for real: a child's turns are not all together in the log
    seq = [e["session"] for e in log]
    ok(any(seq[i] != seq[i + 1] and seq[i] in kids and seq[i + 1] in kids for i in range(len(seq) - 1)),
       "subagents: the children's calls interleaved (%s)" % [s_[-2:] for s_ in seq])
    err = open(os.path.join(work, "multi.err")).read()
    ok("3 sessions (2 subagents)" in err, "subagents: the summary counts them: " + "".join(l for l in err.splitlines() if "sessions" in l)[:200])

    # SIGKILL while the children run (the parent awaits their results): a valid trace
    rec, port = start_recorder("http://127.0.0.1:%d" % mup.server_address[1], "multikill")
    run_multi(port, 2, finish=False)
    rec.kill()
    rec.wait()
    path = os.path.join(work, "multikill.jsonl")
    good, msg = validate(path)
    mat = materialise(path)
    ok(good and sorted(len(v[1]) for v in mat.values()) == [1, 2, 2]
       and sum(1 for v in mat.values() if v[0].get("parent")) == 2,
       "subagents: SIGKILL mid-way leaves a valid trace with every answered turn (%s) %s"
       % (sorted(len(v[1]) for v in mat.values()), msg.strip()))
    ok(not [f for f in os.listdir(work) if ".tmp." in f], "subagents: no temporary file left by the rewrites")

    # ---- 5c. bytes that are not UTF-8, from the agent and from the server ---------------------
    bup = serve()
    bup.answerer = lambda path, req, n: ("na\u00efve RAW answer", [])
    bup.raw = b"\xe9\xff"
    rec, port = start_recorder("http://127.0.0.1:%d" % bup.server_address[1], "bytes", ["--no-redact"])
    first = b'{"role":"user","content":"caf\xe9 \xff"}'
    for body in (b'{"model":"m","messages":[' + first + b'],"stream":false}',
                 b'{"model":"m","messages":[' + first + b',{"role":"assistant","content":"x"},'
                 b'{"role":"user","content":"again"}],"stream":true}'):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        got = r.read()
        c.close()
        ok(r.status == 200 and b"\xe9\xff" in got, "bytes not UTF-8: the answer reaches the agent as sent (%d)" % r.status)
    rc = stop(rec, signal.SIGTERM)
    path = os.path.join(work, "bytes.jsonl")
    good, msg = validate(path)
    text = open(path, "rb").read().decode("utf-8")  # raises if the trace is not UTF-8
    ok(rc == 0 and good and "caf\ufffd \ufffd" in text and "na\u00efve \ufffd\ufffd answer" in text,
       "bytes not UTF-8: the trace validates, each bad byte is U+FFFD (%s) %s" % (rc, msg.strip()))
    log = [json.loads(l.decode("utf-8")) for l in open(os.path.join(work, "bytes.log"), "rb")]
    ok(len(log) == 2 and log[0]["request"]["messages"][0]["content"] == "caf\ufffd \ufffd",
       "bytes not UTF-8: the request log is UTF-8 too")
    err = open(os.path.join(work, "bytes.err")).read()
    ok("8 bytes in bodies were not UTF-8" in err, "bytes not UTF-8: the summary counts them: " + err.strip()[-300:])
    bup.shutdown()

    # ---- 5. through the recorder to `agentreplay sim serve` ------------------------------------
    pf = os.path.join(work, "sim.port")
    sim = subprocess.Popen([AR, "sim", "serve", "--profile", "model=qwen3-8b,quant=q4_k_m,hw=rtx-4090,engine=llama-server,ctx=8k",
                            "--port", "0", "--port-file", pf, "--time-scale", "50", "-q"], stderr=subprocess.DEVNULL)
    procs.append(sim)
    for _ in range(200):
        if os.path.exists(pf) and open(pf).read().strip():
            break
        time.sleep(0.02)
    rec, port = start_recorder("http://127.0.0.1:%s" % open(pf).read().strip(), "viasim")
    msgs = [{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": "Fix the test."}]
    texts = []
    for k in range(3):
        st, hdr, raw, _ = post(port, "/v1/chat/completions", {"model": "m", "messages": msgs, "max_tokens": 8, "stream": True,
                                                               "stream_options": {"include_usage": True}})
        t = "".join((json.loads(l[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                    for l in raw.decode().split("\n") if l.startswith("data: {"))
        texts.append(t)
        msgs = msgs + [{"role": "assistant", "content": t}, {"role": "user", "content": "next %d" % k}]
    stop(rec, signal.SIGINT)
    good, msg = validate(os.path.join(work, "viasim.jsonl"))
    tt = [json.loads(l) for l in open(os.path.join(work, "viasim.jsonl"))][1:]
    ok(good and [t["response"]["content"] for t in tt] == texts and all(len(t["append"]) == 1 for t in tt)
       and all(t["recorded"]["output_tokens"] == 8 for t in tt),
       "sim serve: streamed answers recorded, each turn appends only the new user message")
    # ---- 6. bad input: exit 2 with a message naming the problem -------------------------------
    bad = os.path.join(work, "bad.rules")
    open(bad, "w").write("# mine\nmine  ok[a-z]+\nbroken  (unclosed\n")
    for args, want in (
            (["--upstream", "http://127.0.0.1:1", "-o", os.path.join(work, "x.jsonl"), "--redact-rules", bad],
             bad + ":3: bad pattern for 'broken' at offset 9: missing closing parenthesis"),
            (["--upstream", "ftp://h", "-o", os.path.join(work, "x.jsonl")], "--upstream 'ftp://h' is not an http(s) URL"),
            (["--upstream", "http://h"], "record needs --upstream URL and -o FILE"),
            (["--upstream", "http://h", "-o", os.path.join(work, "x.jsonl"), "--listen", "127.0.0.1:99999"], "PORT 0..65535"),
            (["--upstream", "http://h", "-o", os.path.join(work, "nodir", "x.jsonl"), "--listen", "127.0.0.1:0"], "cannot create")):
        p = subprocess.run([AR, "record"] + args, capture_output=True, text=True, timeout=20)
        ok(p.returncode == 2 and want in p.stderr, "bad input exits 2: %s (%d: %s)" % (want, p.returncode, p.stderr.strip()[:200]))
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()

if fails:
    print("%d failed (files in %s)" % (fails, work))
    sys.exit(1)
import shutil
shutil.rmtree(work)
print("all ok")
