#!/usr/bin/env python3
"""End-to-end test of the memory sampler against `agentreplay sim serve --rss-scale`.

sim serve really allocates rss_scale bytes per modelled byte of KV, so the server's measured growth
must match the profile's KV bytes per token x rss_scale; the mlx-lm engine grows its KV with the
sequence until the (small, test) machine's memory is exhausted and then the process aborts, so the
projected OOM depth can be checked against the depth where it really exits. The server runs under a
wrapper shell that also starts a child holding a known 64 MiB: the sampler must sum the tree.

Usage: test_mem_sim.py AGENTREPLAY            (about 10 s)
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

AR = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
HW = os.path.join(HERE, "..", "data", "sim", "hw-mem-16g.yaml")
SPEC = f"model=llama-3.1-8b,quant=q4_k_m,hw={HW},engine=mlx-lm,kv=f16"
RSS_SCALE = 0.01
BALLAST_CHILD = 64 << 20
fails = 0
# An ASan build of the sim server holds more than the bytes it allocates (shadow memory, the freed-chunk
# quarantine): its RSS per modelled byte is not rss_scale, so the figures that compare with the profile
# are only checked against a normal build; the rest (tree, crash, store, attach) runs under ASan too.
ASAN = "libasan" in subprocess.run(["ldd", AR], capture_output=True, text=True).stdout


def check(what, cond, detail="", exact=False):
    global fails
    if exact and ASAN:
        print("skip " + what + " (ASan build)")
        return
    print(("ok   " if cond else "FAIL ") + what + ("" if cond else f": {detail}"))
    if not cond:
        fails += 1


def rss_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_port(path, proc):
    for _ in range(200):
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return int(open(path).read())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("server did not start")


with tempfile.TemporaryDirectory() as work:
    trace = os.path.join(work, "t.jsonl")
    subprocess.run([AR, "gen", "--depth", "80k", "--turns", "20", "--seed", "3", "-q", "-o", trace], check=True)
    pred = json.loads(subprocess.run([AR, "sim", "predict", "--profile", SPEC, trace, "--json"], check=True,
                                     capture_output=True, text=True).stdout)["configs"][0]
    prof = pred["profile"]
    kv_tok = prof["kv_bytes_per_token"]
    # the depth where the modelled sequence stops fitting: the process aborts there
    oom_depth = (prof["budget_bytes"] - prof["load_bytes"]) / kv_tok
    check("the profile runs out of memory inside the trace", pred["failure"] and pred["failure"]["class"] == "oom",
          pred["failure"])

    # ---- the tree: sh -> (sim serve, python holding 64 MiB) ----
    port_file = os.path.join(work, "port")
    ready = os.path.join(work, "ballast.ready")
    child = ("import time,os\nb = bytes([1]) * %d\nopen(%r,'w').close()\ntime.sleep(600)\n" % (BALLAST_CHILD, ready))
    script = (f'"$0" sim serve --profile "{SPEC}" --port 0 --port-file "{port_file}" --time-scale 100 '
              f'--rss-scale {RSS_SCALE} 2>"{work}/srv.err" & s=$!; '
              f'/usr/bin/python3 -c "$1" & c=$!; wait $s; st=$?; kill $c; echo $st > "{work}/srv.status"; wait')
    wrapper = subprocess.Popen(["/bin/sh", "-c", script, AR, child], start_new_session=True)
    try:
        port = wait_port(port_file, wrapper)
        for _ in range(200):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        db = os.path.join(work, "m.db")
        # the budget the sim's machine has, in the bytes the ballast really allocates, on top of what the
        # tree holds before any request
        tree_start = 0
        for pid in [wrapper.pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(wrapper.pid)],
                                                                      capture_output=True, text=True).stdout.split()]:
            tree_start += rss_of(pid)
        budget = int(tree_start + RSS_SCALE * (prof["budget_bytes"] - prof["load_bytes"]))
        r = subprocess.run([AR, "run", trace, "--backend", f"openai:http://127.0.0.1:{port}", "--db", db,
                            "--repeats", "1", "--warmup", "0", "--cold", "none", "--until-fail", "--json",
                            "--server-pid", str(wrapper.pid), "--mem-interval", "20ms", "--mem-budget", str(budget)],
                           capture_output=True, text=True, timeout=120)
        check("run exits 0 (the failure point is a result)", r.returncode == 0, r.stderr[-2000:])
        out = json.loads(r.stdout)
        cfg = out["configs"][0]
        mem = cfg["memory"]
        print(f"     measured {mem.get('bytes_per_token')} B/token (expected {kv_tok * RSS_SCALE}), "
              f"projected OOM {mem.get('projected_oom_tokens')} tokens turn {mem.get('projected_oom_turn')} "
              f"(real exit at {oom_depth:.0f} tokens, turn {pred['failure']['turn']}), r2 {mem.get('r2')}")
        check("source is the tree's RSS", mem.get("source") == "rss", mem)
        slope = mem.get("bytes_per_token") or 0
        check("slope within 10% of the profile's bytes per token x rss_scale",
              abs(slope - kv_tok * RSS_SCALE) <= 0.10 * kv_tok * RSS_SCALE, slope, exact=True)
        proj = mem.get("projected_oom_tokens") or 0
        check("projected OOM depth within 10% of where the server really exits",
              abs(proj - oom_depth) <= 0.10 * oom_depth, (proj, oom_depth), exact=True)
        # the turn comes from the session's average growth per turn (2.5k here) while the real session
        # jumps 10k at the failing turn: the projection may be a few turns late, never before the last ok turn
        pt, ft = mem.get("projected_oom_turn"), pred["failure"]["turn"]
        check("projected OOM turn after the last ok turn and within 4 of the real one",
              pt is not None and ft <= pt <= ft + 4, (pt, ft), exact=True)
        fail = cfg["failure"] or {}
        check("the failing turn is the one the model predicts", fail.get("turn") == pred["failure"]["turn"], fail)
        check("the failure is a crash of the server process",
              fail.get("class") == "crash" and f"server process {wrapper.pid} exited" in fail.get("evidence", ""),
              fail)
        for _ in range(100):
            if os.path.exists(f"{work}/srv.status"):
                break
            time.sleep(0.05)
        st = open(f"{work}/srv.status").read().strip() if os.path.exists(f"{work}/srv.status") else "?"
        check("the sim server really exited with its OOM abort (134)", st == "134", st)
        reqs = [q for q in cfg["requests"] if q["outcome"] == "ok"]
        check("every ok request has a peak and end RSS", reqs and all(
            q["mem_peak_bytes"] and q["mem_end_bytes"] for q in reqs), reqs[:1])
        check("GPU columns are empty on a machine without NVML",
              all(q["gpu_peak_bytes"] is None for q in cfg["requests"]) or mem.get("gpu") != "none", mem.get("gpu"))
        con = sqlite3.connect(db)
        n, procs = con.execute("select count(*), max(procs) from mem_samples where rss_bytes > 0").fetchone()
        # while the server ran (after it dies the wrapper kills the child)
        min_rss = con.execute("select min(rss_bytes) from mem_samples where procs = 3").fetchone()[0] or 0
        check("the timeline is stored (>= 50 samples)", n >= 50, n)
        check("the tree is sh + sim serve + the child (3 processes)", procs == 3, procs)
        check("tree RSS includes the child's 64 MiB", min_rss >= BALLAST_CHILD, min_rss)
        stored = json.loads(con.execute("select mem_json from configs").fetchone()[0])
        check("configs.mem_json holds the model", set(stored) == {
            "source", "baseline_bytes", "bytes_per_token", "budget_bytes", "projected_oom_tokens",
            "projected_oom_turn", "points", "r2"} and stored["budget_bytes"] == budget, stored)
        con.close()
    finally:
        try:
            os.killpg(wrapper.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wrapper.wait()

    # ---- attach by port: the PID listening on the URL's port is found ----
    small = os.path.join(work, "s.jsonl")
    subprocess.run([AR, "gen", "--depth", "24k", "--turns", "3", "-q", "-o", small], check=True)
    srv = subprocess.Popen([AR, "sim", "serve", "--profile", SPEC, "--port", "0", "--port-file", port_file + "2",
                            "--time-scale", "1000"], stderr=subprocess.DEVNULL)
    try:
        port = wait_port(port_file + "2", srv)
        db2 = os.path.join(work, "m2.db")
        r = subprocess.run([AR, "run", small, "--backend", f"openai:http://127.0.0.1:{port}", "--db", db2,
                            "--repeats", "1", "--warmup", "0", "--cold", "none", "--json"],
                           capture_output=True, text=True, timeout=60)
        check("attach: run exits 0", r.returncode == 0, r.stderr[-1000:])
        con = sqlite3.connect(db2)
        params = json.loads(con.execute("select params_json from configs").fetchone()[0])
        check("attach: the listener's PID is the server sampled", params.get("server_pid") == srv.pid, params)
        n = con.execute("select count(*) from mem_samples").fetchone()[0]
        check("attach: samples stored", n > 0, n)
        con.close()
        # a PID that does not exist is a usage error, before anything is sent
        r = subprocess.run([AR, "run", small, "--backend", f"openai:http://127.0.0.1:{port}", "--db", db2,
                            "--server-pid", "2147483646"], capture_output=True, text=True, timeout=60)
        check("a missing --server-pid is exit 2 naming it", r.returncode == 2 and "2147483646" in r.stderr,
              (r.returncode, r.stderr))
    finally:
        srv.kill()
        srv.wait()

print("FAILED" if fails else "all ok")
sys.exit(1 if fails else 0)
