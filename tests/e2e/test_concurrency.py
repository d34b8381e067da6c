#!/usr/bin/env python3
"""End-to-end: `agentreplay run --concurrency N` against the fault-injecting
server and against `agentreplay sim serve`.

- 50 sessions on ar-faultsrv: every (session, repeat) has all its turns, in
  order, each sent after the previous one ended; requests overlap (in_flight
  > 1); each session's prompt_tokens equal the single-session run's (the
  histories are independent); the rows in the store carry sent_ns/in_flight.
- arrival stagger and pace: never early against the schedule.
- arrival trace: a session's first turn keeps its recorded t.
- sim serve (one prefill queue): sessions that arrive together queue, so
  their first-turn TTFTs spread out over several prefill times.
- usage errors exit 2.

Usage: test_concurrency.py AGENTREPLAY AR_FAULTSRV
"""
import json, os, sqlite3, subprocess, sys, tempfile, time

AR, FS = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="ar-e2e-conc-")
failures = []
procs = []


def check(name, cond, msg=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {msg}"))
    if not cond:
        failures.append(name)


def start(cmd, pf):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    for _ in range(500):
        if os.path.exists(pf) and open(pf).read().strip():
            break
        time.sleep(0.01)
    return f"http://127.0.0.1:{open(pf).read().strip()}"


def write_trace(path, sessions, turns, t_gap=0.0, t_first=None):
    with open(path, "w") as f:
        for s in range(sessions):
            f.write(json.dumps({"type": "session", "format": "agentreplay-trace/1", "id": f"s{s}",
                                "system": f"You are agent number {s}. " + "x" * (40 * s)}) + "\n")
            for i in range(turns):
                t = (t_first[s] if t_first else 0) + i * t_gap
                f.write(json.dumps({"type": "turn", "i": i, "t": t,
                                    "append": [{"role": "user", "content": f"step {i} of session {s}: " + "y" * (25 * i + 7 * s)}],
                                    "response": {"content": f"done {i}", "output_tokens": 3}}) + "\n")


def run(url, trace, *args, db=None, kind="openai", json_out=True):
    db = db or os.path.join(work, "c.db")
    if os.path.exists(db):
        os.unlink(db)
    cmd = [AR, "run", trace, "--backend", f"{kind}:{url}", "--db", db, "--quiet", "--repeats", "1",
           "--warmup", "0", "--cold", "none"] + (["--json"] if json_out else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout) if json_out and p.stdout.strip().startswith("{") else None
    return p.returncode, out, p.stdout, p.stderr


try:
    fs = start([FS, "--port", "0", "--port-file", os.path.join(work, "fp"), "--ttft-ms", "20", "--itl-ms", "2"],
               os.path.join(work, "fp"))
    trace = os.path.join(work, "t.jsonl")
    write_trace(trace, 3, 4)

    # single-session reference
    rc, out, _, err = run(fs, trace)
    check("single: rc 0", rc == 0, err)
    single = {(r["session"], r["turn"]): r["prompt_tokens"] for r in out["configs"][0]["requests"]}
    check("single: in_flight 1", all(r["in_flight"] == 1 for r in out["configs"][0]["requests"]))
    check("single: nothing scheduled (due_ns null)", all(r["due_ns"] is None for r in out["configs"][0]["requests"]))

    db = os.path.join(work, "c50.db")
    rc, out, _, err = run(fs, trace, "--concurrency", "50", db=db)
    check("c50: rc 0", rc == 0, err)
    check("c50: note about copies", "replayed 17 times" in err, err)
    rs = out["configs"][0]["requests"]
    check("c50: 51 sessions x 4 turns", len(rs) == 51 * 4, len(rs))
    by = {}
    for r in rs:
        by.setdefault((r["session"], r["repeat"]), []).append(r)
    check("c50: 51 (session, repeat)", len(by) == 51, sorted(by))
    complete = in_order = True
    for k, v in by.items():
        v.sort(key=lambda r: r["sent_ns"])
        if [r["turn"] for r in v] != [0, 1, 2, 3]:
            complete = False
        for a, b in zip(v, v[1:]):
            if b["sent_ns"] < a["sent_ns"] + a["e2e_ms"] * 1e6 - 1e6:
                in_order = False
    check("c50: every session has turns 0..3", complete)
    check("c50: each turn sent after the previous ended", in_order)
    # due: arrival (0 for all at once) for turn 0, the previous answer's end for the others;
    # a request is never sent before it was due
    due_ok = all(r["due_ns"] is not None and r["sent_ns"] >= r["due_ns"] for r in rs)
    check("c50: every request has a due time at or before its send", due_ok,
          [(r["session"], r["turn"], r["due_ns"], r["sent_ns"]) for r in rs if r["due_ns"] is None or
           r["sent_ns"] < r["due_ns"]][:4])
    follow = all(abs(b["due_ns"] - (a["sent_ns"] + a["e2e_ms"] * 1e6)) < 2e6 for v in by.values() for a, b in zip(v, v[1:]))
    check("c50: a turn is due when the previous answer ended", follow,
          [(a["sent_ns"] + a["e2e_ms"] * 1e6, b["due_ns"]) for v in by.values() for a, b in zip(v, v[1:])][:4])
    lag = (out["configs"][0].get("concurrency") or {}).get("send_lag_ms") or {}
    check("c50: json send lag p50 <= p99 <= max", lag.get("p50") is not None and
          0 <= lag["p50"] <= lag["p99"] <= lag["max"], lag)
    check("c50: all ok", all(r["outcome"] == "ok" for r in rs), {r["outcome"] for r in rs})
    mx = max(r["in_flight"] for r in rs)
    check("c50: in_flight rises above 1 (to most of 50)", mx >= 25, mx)
    check("c50: in_flight never above 50", mx <= 50, mx)
    same = all(r["prompt_tokens"] == single[(r["session"], r["turn"])] for r in rs)
    check("c50: prompt_tokens per session equal the single-session run", same,
          [(r["session"], r["turn"], r["prompt_tokens"], single[(r["session"], r["turn"])]) for r in rs][:6])
    conc = out["configs"][0].get("concurrency") or {}
    check("c50: json summary by in_flight", sum(b["requests"] for b in conc.get("by_in_flight", [])) == len(rs), conc)
    check("c50: json per-session totals", len(conc.get("sessions", [])) == 51 and
          all(s["requests"] == 4 for s in conc["sessions"]), conc.get("sessions", [])[:2])
    con = sqlite3.connect(db)
    n, nf, mxf = con.execute("SELECT count(*), count(sent_ns), max(in_flight) FROM requests").fetchone()
    check("c50: store rows with sent_ns and in_flight", n == 204 and nf == 204 and mxf == mx, (n, nf, mxf))
    con.close()
    rc, _, txt, err = run(fs, trace, "--concurrency", "50", json_out=False)
    check("c50: human summary", rc == 0 and "TTFT p99" in txt and "cache hit" in txt and "51 sessions" in txt and
          "sent behind schedule" in txt, txt[-800:])

    # arrival stagger + pace: never early
    paced = os.path.join(work, "p.jsonl")
    write_trace(paced, 1, 3, t_gap=0.1)
    rc, out, _, err = run(fs, paced, "--concurrency", "4", "--arrival", "stagger:50ms", "--pace", "1")
    check("stagger: rc 0", rc == 0, err)
    rs = out["configs"][0]["requests"]
    firsts = sorted(r["sent_ns"] for r in rs if r["turn"] == 0)
    check("stagger: session i starts at or after i x 50 ms", all(t >= i * 50e6 for i, t in enumerate(firsts)), firsts)
    check("stagger: not all at once", firsts[-1] - firsts[0] >= 140e6, firsts)
    start0 = {r["repeat"]: r["sent_ns"] for r in rs if r["turn"] == 0}
    # the schedule counts from the session's scheduled start (i x 50 ms, in order of the first
    # sends), not from when its first request happened to be written (later on a busy machine)
    order = sorted(start0, key=lambda k: start0[k])
    sched = {k: i * 50e6 for i, k in enumerate(order)}
    check("pace: turn k at or after the session's scheduled start + k x 100 ms",
          all(r["sent_ns"] >= sched[r["repeat"]] + r["turn"] * 100e6 - 1e6 for r in rs),
          [(r["repeat"], r["turn"], r["sent_ns"]) for r in rs])
    # due is the schedule itself: session i's turn 0 at i x 50 ms, turn k 100 ms later each
    # (the answers, ~40 ms, end before the next paced time), from when the schedule began
    # (the first session's due time: after the start-up checks)
    t0 = min(r["due_ns"] for r in rs)
    check("pace: due_ns is the scheduled time", all(abs(r["due_ns"] - t0 - (sched[r["repeat"]] + r["turn"] * 100e6)) < 1e6
                                                  for r in rs),
          [(r["repeat"], r["turn"], r["due_ns"] - t0, sched[r["repeat"]] + r["turn"] * 100e6) for r in rs])

    # poisson: reproducible with a seed
    rc1, o1, _, _ = run(fs, trace, "--concurrency", "3", "--arrival", "poisson:40")
    check("poisson: rc 0", rc1 == 0)

    # arrival trace (Mooncake-style): first turn t is the arrival
    mc = os.path.join(work, "m.jsonl")
    write_trace(mc, 3, 1, t_first=[0.0, 0.15, 0.3])
    rc, out, _, err = run(fs, mc, "--concurrency", "3", "--arrival", "trace")
    check("trace arrival: rc 0", rc == 0, err)
    sent = {r["session"]: r["sent_ns"] for r in out["configs"][0]["requests"] if r["repeat"] == 0}
    check("trace arrival: each session at or after its recorded t",
          sent["s1"] >= 150e6 and sent["s2"] >= 300e6 and sent["s2"] - sent["s0"] >= 290e6, sent)

    # usage errors
    for bad, what in ((["--concurrency", "0"], "concurrency 0"), (["--arrival", "sometimes"], "arrival"),
                      (["--pace", "-1"], "pace"), (["--arrival", "poisson:0"], "poisson 0")):
        rc, _, _, err = run(fs, trace, *bad)
        check(f"usage: {what} exits 2", rc == 2, (rc, err))
    p = subprocess.run([AR, "run", "--concurrency", "4", "--db", os.path.join(work, "s.db"), "-q"],
                       capture_output=True, text=True)
    check("usage: --concurrency with the in-process sim exits 2", p.returncode == 2 and "sim serve" in p.stderr,
          (p.returncode, p.stderr))

    # sim serve: one prefill queue, so sessions that arrive together wait
    sp = os.path.join(work, "sp")
    sim = start([AR, "sim", "serve", "--port", "0", "--port-file", sp, "--time-scale", "200",
                 "--profile", "hw=cpu-2core,model=qwen3-8b,quant=q4_k_m,engine=llama-server"], sp)
    one = os.path.join(work, "one.jsonl")
    write_trace(one, 1, 2)
    rc, out, _, err = run(sim, one, "--concurrency", "6")
    check("sim serve: rc 0", rc == 0, err)
    t0 = sorted(r["ttft_ms"] for r in out["configs"][0]["requests"] if r["turn"] == 0)
    check("sim serve: 6 first turns", len(t0) == 6, t0)
    check("sim serve: queueing shows in TTFT (last first-turn TTFT > 3 x the first)", t0[-1] > 3 * t0[0], t0)
    print("sim serve first-turn TTFTs (ms):", t0)
    fl = [r["in_flight"] for r in out["configs"][0]["requests"] if r["turn"] == 0]
    check("sim serve: they were in flight together", max(fl) >= 4, fl)
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
