#!/usr/bin/env python3
"""A minimal asyncio streaming client (stdlib only), the kind most LLM
benchmark tools are: one asyncio task per session, one kept-alive HTTP/1.1
connection each, OpenAI chat completions with stream=true, the first-token
time stamped when a chunk with non-empty content is parsed.

Each session sends TURNS requests one after the other. Prints one JSON line
per request: session, turn, prompt_tokens (from the usage chunk), ttft_ns
(first content chunk - request written), itl_ns (gaps between content
chunks), t_sent_ns (time.monotonic_ns, CLOCK_MONOTONIC).

Usage: aio_client.py HOST PORT SESSIONS TURNS MAX_TOKENS SYSTEM_PAD
  session s sends system "bench session s" + "s" * (SYSTEM_PAD * s) and a user
  message of 4*turn+1 bytes: prompt lengths differ per (session, turn), so a
  server log can be matched to requests by prompt_tokens.
"""
import asyncio, json, sys, time

HOST, PORT, SESSIONS, TURNS, MAXTOK, PAD = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:7])


async def read_chunk(r):
    line = await r.readline()
    n = int(line.strip() or b"0", 16)
    data = await r.readexactly(n) if n else b""
    await r.readline()
    return data


async def session(s, out):
    r, w = await asyncio.open_connection(HOST, PORT)
    try:
        for t in range(TURNS):
            body = json.dumps({"model": "m", "stream": True, "stream_options": {"include_usage": True},
                               "max_tokens": MAXTOK,
                               "messages": [{"role": "system", "content": f"bench session {s}" + "s" * (PAD * s)},
                                            {"role": "user", "content": "q" * (4 * t + 1)}]}).encode()
            w.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await w.drain()
            t_sent = time.monotonic_ns()
            while (await r.readline()) not in (b"\r\n", b""):
                pass  # headers (chunked SSE)
            buf, times, usage = b"", [], None
            while True:
                data = await read_chunk(r)
                now = time.monotonic_ns()
                if not data:
                    break
                buf += data
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                        continue
                    j = json.loads(ev[6:])
                    if j.get("usage"):
                        usage = j["usage"]
                    for c in j.get("choices") or []:
                        if (c.get("delta") or {}).get("content"):
                            times.append(now)
            out.append({"session": s, "turn": t, "prompt_tokens": usage and usage["prompt_tokens"],
                        "t_sent_ns": t_sent, "ttft_ns": times[0] - t_sent if times else None,
                        "itl_ns": [b - a for a, b in zip(times, times[1:])]})
    finally:
        w.close()


async def main():
    out = []
    await asyncio.gather(*(session(s, out) for s in range(SESSIONS)))
    for o in out:
        print(json.dumps(o))


asyncio.run(main())
