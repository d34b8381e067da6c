#!/usr/bin/env python3
"""Real tier (issue 6): `agentreplay sweep` owning real llama-server processes
under a cgroup v1 memory limit (tests/real/in-memcg.sh).

One sweep, two configs of the tiny random-weight model (-c 16384, f32 KV,
--no-mmap so the weights are anonymous memory that counts against the limit
whatever the page cache holds):
  tiny-296M  dies mid-session: SIGKILL from the kernel's OOM killer, no log line
  tiny-1G    completes every request
The trace (tests/real/make-deep-trace.py 16000 3): prompts of ~130, ~9.8k and
~9.8k tokens, replayed with `cold: every`: the warm pass (turns 0-2) and then
the cold pass, each cold request under a fresh nonce, so the server saves the
slot's previous prompt to its host-RAM prompt cache when the next cold request
arrives (llama-server `prompt_save`, ~4 KiB per token at f32):
  cold turn 0 saves the warm session (~9.8k tokens, ~38 MiB)
  cold turn 1 saves cold turn 0 (~130 tokens, <1 MiB)
  cold turn 2 saves cold turn 1 (~9.8k tokens, ~38 MiB)
Measured (memory.usage_in_bytes of the 1G group, sampled every 0.25 s): ~230 MiB
after the warm pass, at most 276 MiB until cold turn 2 arrives, 316 MiB once it
has saved. A 296M limit is 20 MiB from either side: the server must die when cold
turn 2 arrives, not before and not after (one prompt state of margin each way).

Checks: the failure point (turn 2, cold, class oom, evidence naming signal 9 and
the cgroup's oom_kill count), the five requests before it ok and nothing after
it, the sweep went on to the 1G config which is ok, no llama-server outlives the
sweep and no port stays open, and the cgroups (one per server start) are removed.

prlimit --as is no use for this here: with the same server and trace, 700 and
720 MiB fail the very first request (bad_alloc) and 740-856 MiB never fail: the
first request's address-space peak, not the session's growth, decides.

Usage: real_sweep_oom.py AGENTREPLAY   (exit 77: no writable cgroup v1 memory controller)
"""
import glob, json, os, shutil, socket, sqlite3, subprocess, sys, tempfile, time

AR = os.path.abspath(sys.argv[1])
HERE = os.path.dirname(os.path.abspath(__file__))
WRAP = os.path.join(HERE, "in-memcg.sh")
TAG = f"ar-realsweep-{os.getpid()}"
LIMIT_FAIL, LIMIT_OK = "296M", "1G"
failures = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def groups():
    """Our cgroups: the wrapper names them TAG.PID under the caller's memory cgroup."""
    found = []
    for line in open("/proc/mounts"):
        dev, mnt, fstype, opts = line.split()[:4]
        if fstype == "cgroup" and "memory" in opts.split(","):
            found += glob.glob(os.path.join(mnt, "**", TAG + ".*"), recursive=True)
    return sorted(found)


def remove_groups():
    for g in groups():
        for _ in range(50):  # a killed process leaves its group a moment later
            try:
                os.rmdir(g)
                break
            except OSError:
                time.sleep(0.1)


env_llama = dict(line.split("=", 1) for line in subprocess.run(
    [os.path.join(HERE, "setup-llama.sh"), "--quiet"], capture_output=True, text=True, check=True).stdout.split())
SERVER, MODEL = env_llama["LLAMA_SERVER"], env_llama["LLAMA_MODEL_TINY"]

# can this machine limit a process's memory at all?
probe = subprocess.run([WRAP, "64M", "--", "true"], env=dict(os.environ, IN_MEMCG_TAG=TAG),
                       capture_output=True, text=True)
remove_groups()
if probe.returncode == 77:
    print("skip: " + probe.stderr.strip())
    sys.exit(77)
if probe.returncode != 0:
    print(f"in-memcg.sh failed ({probe.returncode}): {probe.stderr}")
    sys.exit(1)

work = tempfile.mkdtemp(prefix="ar-realsweep-")
try:
    subprocess.run([sys.executable, os.path.join(HERE, "make-deep-trace.py"), os.path.join(work, "trace.jsonl"),
                    "16000", "3", "8"], check=True)
    cfg = os.path.join(work, "oom.yaml")
    with open(cfg, "w") as f:
        f.write(f"""
# tests/real/real_sweep_oom.py: llama-server under a cgroup memory limit
name: "tiny-{{limit}}"
backends:
  llama:
    adapter: llama-server
    command: [{WRAP}, "{{limit}}", "--",
              {SERVER}, -m, "{{model_path}}", --host, 127.0.0.1, --port, "{{port}}",
              -c, "16384", -np, "1", -t, "2", --no-mmap, -ctk, f32, -ctv, f32, --metrics]
    env: {{IN_MEMCG_TAG: {TAG}}}
    health: /health
    start_timeout: 60s
    grace: 10s
models:
  - {{name: tiny, path: {MODEL}}}
matrix:
  limit: [{LIMIT_FAIL}, {LIMIT_OK}]
traces: [trace.jsonl]
measure: {{repeats: 1, warmup: 0, cold: every, until_fail: true, bisect: false,
          extra: {{grammar: "root ::= [a-z ]+"}}}}
""")
    db = os.path.join(work, "oom.db")
    t0 = time.time()
    p = subprocess.run([AR, "sweep", cfg, "--db", db, "--json", "--quiet"], capture_output=True, text=True,
                       timeout=540)
    print(f"sweep: exit {p.returncode} in {time.time() - t0:.0f} s")
    sys.stderr.write(p.stderr[-2000:])
    check(p.returncode in (0, 1), f"the sweep finished (exit {p.returncode})")
    out = json.loads(p.stdout)
    by = {c["name"]: c for c in out["configs"]}
    check(set(by) == {f"tiny-{LIMIT_FAIL}", f"tiny-{LIMIT_OK}"}, f"both configs in the results: {sorted(by)}")
    bad, good = by.get(f"tiny-{LIMIT_FAIL}", {}), by.get(f"tiny-{LIMIT_OK}", {})

    # the failing config
    f = bad.get("failure") or {}
    print("failure point:", json.dumps(f)[:1500])
    reqs = sorted(bad.get("requests", []), key=lambda r: (r["cache"] != "warm", r["turn"]))
    print("requests:", [(r["turn"], r["cache"], r["outcome"], r["prompt_tokens"]) for r in reqs])
    check(bad.get("status") == "failed", f"{LIMIT_FAIL}: status failed ({bad.get('status')})")
    check(f.get("turn") == 2 and f.get("phase") == "replay", f"{LIMIT_FAIL}: fails at turn 2 ({f.get('turn')})")
    check([(r["turn"], r["cache"], r["outcome"]) for r in reqs[:5]] ==
          [(0, "warm", "ok"), (1, "warm", "ok"), (2, "warm", "ok"), (0, "cold", "ok"), (1, "cold", "ok")],
          f"{LIMIT_FAIL}: the warm pass and cold turns 0-1 are ok")
    check(len(reqs) == 6 and reqs[5]["turn"] == 2 and reqs[5]["cache"] == "cold" and reqs[5]["outcome"] == "oom",
          f"{LIMIT_FAIL}: the last request is cold turn 2, outcome oom, and nothing was sent after it")
    check(f.get("class") == "oom", f"{LIMIT_FAIL}: class oom ({f.get('class')})")
    ev = f.get("evidence", "")
    check("signal 9" in ev and "OOM killer" in ev and TAG in ev and "oom_kill 0 -> 1" in ev,
          f"{LIMIT_FAIL}: the evidence names signal 9, the OOM killer, the cgroup and its oom_kill count")
    check(f.get("exit", "").startswith("signal 9"), f"{LIMIT_FAIL}: exit status signal 9 ({f.get('exit')})")
    log = bad.get("log_path") or ""
    check(os.path.exists(log), f"{LIMIT_FAIL}: the server log is kept ({log})")
    if os.path.exists(log):
        lines = open(log, errors="replace").read().splitlines()
        check(any(TAG in x and "limit 310378496" in x for x in lines), f"{LIMIT_FAIL}: the log says which cgroup and limit")
        print("log tail:", *lines[-3:], sep="\n  ")

    # the sweep went on
    good_reqs = good.get("requests", [])
    check(good.get("status") == "ok" and len(good_reqs) == 6 and all(r["outcome"] == "ok" for r in good_reqs),
          f"{LIMIT_OK}: the sweep went on and this config completed ({good.get('status')}, {len(good_reqs)} requests)")

    # no server or port outlives the sweep
    con = sqlite3.connect(db)
    ids = {n: i for i, n in con.execute("SELECT id, name FROM configs")}
    check(ids.get(f"tiny-{LIMIT_FAIL}", 99) < ids.get(f"tiny-{LIMIT_OK}", 0), "the failing config ran first")
    started = [json.loads(d) for (d,) in con.execute("SELECT detail FROM events WHERE kind='started'")]
    stopped = [json.loads(d) for (d,) in con.execute("SELECT detail FROM events WHERE kind='stopped'")]
    crashed = [d for (d,) in con.execute("SELECT detail FROM events WHERE kind='crashed'")]
    con.close()
    check(len(started) == 2 and len(stopped) == 2, f"two servers started and stopped ({len(started)}, {len(stopped)})")
    check(len(crashed) == 1 and "signal 9" in crashed[0], "one crashed event, by signal 9")
    check(all(s.get("port_free") for s in stopped), "every port free after its stop")
    for s in started:
        alive = os.path.exists(f"/proc/{s['pid']}") and open(f"/proc/{s['pid']}/stat").read().split(")")[-1].split()[0] != "Z"
        check(not alive, f"server pid {s['pid']} is gone")
        with socket.socket() as so:
            so.settimeout(1)
            check(so.connect_ex(("127.0.0.1", s["port"])) != 0, f"nothing listens on port {s['port']}")

    # the cgroups: one per server start; the killed one counted the OOM kill
    gs = groups()
    check(len(gs) == 2, f"one cgroup per server start ({len(gs)})")
    kills = sorted(int(l.split()[1]) for g in gs for l in open(os.path.join(g, "memory.oom_control"))
                   if l.startswith("oom_kill "))
    check(kills == [0, 1], f"oom_kill counters of the two groups: {kills}")
    # the completed session really needs more than the failing limit (so the
    # limit, not something else, is what stopped the other one)
    peak = {int(open(os.path.join(g, "memory.limit_in_bytes")).read()):
            int(open(os.path.join(g, "memory.max_usage_in_bytes")).read()) for g in gs}
    print("peak memory.usage per limit (MiB):", {k >> 20: round(v / 1048576, 1) for k, v in peak.items()})
    check(peak.get(1 << 30, 0) > 296 << 20, f"the {LIMIT_OK} session peaked above {LIMIT_FAIL}")
finally:
    remove_groups()
    check(not groups(), "the cgroups are removed")
    shutil.rmtree(work, ignore_errors=True)

print("real sweep oom:", "FAILED: " + "; ".join(failures) if failures else "ok")
sys.exit(1 if failures else 0)
