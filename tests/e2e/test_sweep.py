#!/usr/bin/env python3
"""End-to-end: `agentreplay sweep` owning its servers on 127.0.0.1.

One matrix, six configs, each failing (or not) in a known way:
  sim / llama-3.1-70b   sim serve, mlx-lm on 64 GB: OOM (abort) at turn 2 (sim predict says so)
  sim / qwen3-32b       OOM at turn 8
  sim / gemma-3-27b     survives all 10 turns
  crashy / llama-...    ar-faultsrv killed (SIGKILL) mid-stream in its 3rd request: crash at turn 2
  never / llama-...     a server that never answers its health URL: start failure (timeout)
  collide / llama-...   a fixed port something else already listens on: start failure, nothing started
Checks: each failure point (turn, class, evidence), that the sweep went on, that no
server process or port outlives it, that --resume after kill -9 of the sweep ends with
no missing or duplicated rows, that a changed config is refused, and that four shards
run in parallel and merged with `db merge` equal one unsharded run.

Usage: test_sweep.py AGENTREPLAY AR_FAULTSRV
"""
import json, os, signal, socket, sqlite3, subprocess, sys, tempfile, time

AR, FS = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
work = tempfile.mkdtemp(prefix="ar-sweep-")
env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


# something that listens on a port the "collide" backend insists on
blocker = socket.socket()
blocker.bind(("127.0.0.1", 0))
blocker.listen(1)
BUSY = blocker.getsockname()[1]

SIM = "--time-scale", "100000"
CONFIG = f"""
# e2e sweep: see tests/e2e/test_sweep.py
backends:
  sim:
    adapter: openai
    command: [{AR}, sim, serve, --port, "{{port}}", --profile, "{{profile}}", --time-scale, "100000", --load-time, "1"]
    health: /health
    start_timeout: 20s
    grace: 3s
  crashy:
    adapter: openai
    command: [{FS}, --port, "{{port}}", --flavor, llama, --ttft-ms, "1", --itl-ms, "0.01", --fault, "kill_after@3:5"]
    health: /health
    start_timeout: 20s
  never:
    adapter: openai
    command: [sleep, "30"]
    health: /health
    start_timeout: 1s
    grace: 1s
  collide:
    adapter: openai
    command: [{AR}, sim, serve, --port, "{{port}}"]
    port: {BUSY}
models:
  - {{name: llama-3.1-70b, profile: "model=llama-3.1-70b,quant=mlx-4bit,hw=m3-max-64g,engine=mlx-lm"}}
  - {{name: qwen3-32b, profile: "model=qwen3-32b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm"}}
  - {{name: gemma-3-27b, profile: "model=gemma-3-27b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm"}}
matrix:
  ctx: [131072]
exclude:
  - {{backend: [crashy, never, collide], model: [qwen3-32b, gemma-3-27b]}}
traces: ["gen:style=claude-code,depth=64k,turns=10,seed=1"]
measure: {{repeats: 1, warmup: 0, cold: none, until_fail: true, bisect: BISECT}}
"""


def write_config(name, bisect="false", extra=""):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(CONFIG.replace("BISECT", bisect) + extra)
    return path


def sweep(cfg, db, *args, timeout=120):
    return subprocess.run([AR, "sweep", cfg, "--db", db, "--json", "--quiet"] + list(args), env=env,
                          capture_output=True, text=True, timeout=timeout)


def configs(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, key, name, status, failure_json FROM configs"
                       " WHERE key IS NOT NULL AND status != 'superseded'").fetchall()
    con.close()
    return {r[1]: {"id": r[0], "name": r[2], "status": r[3], "failure": json.loads(r[4]) if r[4] else None}
            for r in rows}


def request_set(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT c.key, r.session, r.turn, r.repeat, r.cache, r.outcome FROM requests r"
                       " JOIN configs c ON c.id = r.config_id WHERE c.status != 'superseded'").fetchall()
    con.close()
    return rows


def pids_started(db):
    con = sqlite3.connect(db)
    ev = con.execute("SELECT kind, detail FROM events WHERE kind IN ('started', 'stopped')").fetchall()
    con.close()
    return ev


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def listening(port):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def no_leftovers(db, what, unstopped=0):
    ev = pids_started(db)
    started = [json.loads(d) for k, d in ev if k == "started"]
    stopped = [json.loads(d) for k, d in ev if k == "stopped"]
    # a sweep killed with -9 cannot write its "stopped" event: its server dies by PR_SET_PDEATHSIG
    check(len(started) == len(stopped) + unstopped, f"{what}: {len(started)} servers started, {len(stopped)} stopped")
    for s in started:
        check(not alive(s["pid"]), f"{what}: server pid {s['pid']} ({s['argv'][0]}) outlived the sweep")
        check(not listening(s["port"]), f"{what}: port {s['port']} still listens after the sweep")
    for s in stopped:
        check(s["port_free"], f"{what}: a stop found its port still busy: {s}")
    # nothing of ours left as a child of anyone: no process runs a command from this test's config
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        # (other tests may run servers of their own meanwhile: only those on our ports count)
        if (len(cmd) > 2 and cmd[0] in (AR.encode(), FS.encode()) and alive(pid)
                and any(str(s["port"]).encode() in cmd for s in started)):
            check(False, f"{what}: process {pid} {cmd[:4]} outlived the sweep")


K70 = "backend=sim,model=llama-3.1-70b,ctx=131072"
K32 = "backend=sim,model=qwen3-32b,ctx=131072"
KG = "backend=sim,model=gemma-3-27b,ctx=131072"
KCRASH = "backend=crashy,model=llama-3.1-70b,ctx=131072"
KNEVER = "backend=never,model=llama-3.1-70b,ctx=131072"
KCOLL = "backend=collide,model=llama-3.1-70b,ctx=131072"

# ---- the matrix, with bisect ------------------------------------------------------
cfg = write_config("sweep.yaml", bisect="true")
db = os.path.join(work, "full.db")
t0 = time.monotonic()
r = sweep(cfg, db)
print(f"full sweep: {time.monotonic() - t0:.1f} s, exit {r.returncode}", flush=True)
check(r.returncode == 0, f"sweep exit {r.returncode}: {r.stderr}")
out = json.loads(r.stdout) if r.stdout.strip() else {"configs": []}
check(len(out["configs"]) == 6, f"--json lists {len(out['configs'])} configs, want 6")
c = configs(db)
check(set(c) == {K70, K32, KG, KCRASH, KNEVER, KCOLL}, f"config keys: {sorted(c)}")
f = c[K70]["failure"] or {}
check(c[K70]["status"] == "failed" and f.get("turn") == 2 and f.get("class") == "oom",
      f"70b: want oom at turn 2, got {c[K70]['status']} {f}")
check("Insufficient Memory" in f.get("evidence", ""), f"70b: evidence from the server log: {f.get('evidence')}")
check("signal 6" in f.get("exit", ""), f"70b: server exit status recorded: {f.get('exit')}")
b = f.get("bisect", {})
check(b.get("reproduced") is True and b.get("fail_tokens", 0) - b.get("ok_tokens", 0) <= 2048
      and 20531 <= b.get("ok_tokens", 0) < b.get("fail_tokens", 0) <= 38383,
      f"70b: bisect narrows the failing depth to 2k between the last ok (20531) and the failing (38383) turn: {b}")
f = c[K32]["failure"] or {}
check(c[K32]["status"] == "failed" and f.get("turn") == 8 and f.get("class") == "oom",
      f"32b: want oom at turn 8, got {c[K32]['status']} {f}")
check(c[KG]["status"] == "ok" and c[KG]["failure"] is None, f"gemma: want ok, got {c[KG]}")
f = c[KCRASH]["failure"] or {}
check(c[KCRASH]["status"] == "failed" and f.get("turn") == 2 and f.get("class") == "crash",
      f"crashy: want crash at turn 2, got {c[KCRASH]['status']} {f}")
check("signal 9" in f.get("evidence", "") and "signal 9" in f.get("exit", ""),
      f"crashy: evidence names the SIGKILL: {f}")
f = c[KNEVER]["failure"] or {}
check(c[KNEVER]["status"] == "start_failed" and f.get("phase") == "start" and f.get("class") == "timeout"
      and "not ready after 1 s" in f.get("message", ""), f"never: want a start timeout, got {c[KNEVER]}")
f = c[KCOLL]["failure"] or {}
check(c[KCOLL]["status"] == "start_failed" and "already in use" in f.get("message", ""),
      f"collide: want a start failure naming the busy port, got {c[KCOLL]}")
nreq = {k: v for k, v in ((cfg_["key"], len(cfg_["requests"])) for cfg_ in out["configs"])}
check(nreq.get(KG) == 10 and nreq.get(K70) == 3 and nreq.get(K32) == 9 and nreq.get(KCRASH) == 3
      and nreq.get(KNEVER) == 0, f"requests per config: {nreq}")
no_leftovers(db, "full sweep")

# ---- the same store again: refused without --resume; a changed config is refused ------
r = sweep(cfg, db)
check(r.returncode == 2 and "--resume" in r.stderr, f"rerun without --resume: exit {r.returncode} {r.stderr}")
changed = write_config("sweep.yaml", bisect="true", extra="# changed\n")
r = sweep(changed, db, "--resume")
check(r.returncode == 2 and "different config" in r.stderr, f"changed config: exit {r.returncode} {r.stderr}")
cfg = write_config("sweep.yaml", bisect="true")
r = sweep(cfg, db, "--resume")
check(r.returncode == 0 and len(configs(db)) == 6, f"resume of a complete sweep: exit {r.returncode} {r.stderr}")
check(len(request_set(db)) == 25, f"resume of a complete sweep added rows: {len(request_set(db))}")

# ---- four shards in parallel, merged, equal the unsharded run (bisect off) -----------
cfg = write_config("plain.yaml")
one = os.path.join(work, "one.db")
r = sweep(cfg, one)
check(r.returncode == 0, f"unsharded: exit {r.returncode} {r.stderr}")
procs = [subprocess.Popen([AR, "sweep", cfg, "--db", os.path.join(work, f"shard{i}.db"), "--quiet",
                           "--shard", f"{i}/4"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) for i in range(1, 5)]
for i, p in enumerate(procs, 1):
    _, err = p.communicate(timeout=120)
    check(p.returncode == 0, f"shard {i}/4: exit {p.returncode} {err}")
merged = os.path.join(work, "merged.db")
r = subprocess.run([AR, "db", "merge", merged] + [os.path.join(work, f"shard{i}.db") for i in range(1, 5)],
                   capture_output=True, text=True)
check(r.returncode == 0, f"db merge: exit {r.returncode} {r.stderr}")
per_shard = [len(configs(os.path.join(work, f"shard{i}.db"))) for i in range(1, 5)]
check(sorted(per_shard) == [1, 1, 2, 2], f"configs per shard: {per_shard}")
a, b = sorted(request_set(one)), sorted(request_set(merged))
check(a == b and len(a) == 25, f"merged shards differ from one run: {len(a)} vs {len(b)} rows; "
      f"{set(a) ^ set(b)}")
check({k: v["status"] for k, v in configs(one).items()} == {k: v["status"] for k, v in configs(merged).items()},
      "config statuses of merged shards differ from one run")
r = subprocess.run([AR, "db", "merge", os.path.join(work, "dup.db"), one, os.path.join(work, "shard1.db")],
                   capture_output=True, text=True)
check(r.returncode == 2 and "in both" in r.stderr and not os.path.exists(os.path.join(work, "dup.db")),
      f"merge of overlapping stores: exit {r.returncode} {r.stderr}")
r = subprocess.run([AR, "db", "merge", merged, one], capture_output=True, text=True)
check(r.returncode == 2 and "already exists" in r.stderr, f"merge onto an existing store: {r.stderr}")

# ---- kill -9 mid-sweep, then --resume ---------------------------------------------
slow = f"""
backends:
  sim:
    adapter: openai
    command: [{AR}, sim, serve, --port, "{{port}}", --profile, "model=gemma-3-27b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm", --time-scale, "1500"]
    health: /health
models: [gemma-3-27b]
matrix:
  n: [1, 2, 3]
traces: ["gen:style=claude-code,depth=64k,turns=10,seed=1"]
measure: {{repeats: 1, warmup: 0, cold: none}}
"""
scfg = os.path.join(work, "slow.yaml")
open(scfg, "w").write(slow)
sdb = os.path.join(work, "slow.db")
p = subprocess.Popen([AR, "sweep", scfg, "--db", sdb, "--quiet"], env=env, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 60
killed_mid = False
while time.monotonic() < deadline and p.poll() is None:
    try:
        con = sqlite3.connect(sdb)
        n = con.execute("SELECT count(*) FROM requests r JOIN configs c ON c.id = r.config_id"
                        " WHERE c.id = (SELECT max(id) FROM configs)").fetchone()[0]
        ncfg = con.execute("SELECT count(*) FROM configs").fetchone()[0]
        con.close()
    except sqlite3.Error:
        n = ncfg = 0
    if ncfg >= 2 and 2 <= n < 10:
        p.send_signal(signal.SIGKILL)
        killed_mid = True
        break
    time.sleep(0.02)
p.wait()
check(killed_mid, "the slow sweep ended before it could be killed in its second config")
time.sleep(0.3)  # PR_SET_PDEATHSIG: the orphaned server dies with its parent
for k, d in pids_started(sdb):
    if k == "started":
        s = json.loads(d)
        check(not alive(s["pid"]), f"kill -9: server pid {s['pid']} outlived the killed sweep")
before = configs(sdb)
partial = [k for k, v in before.items() if v["status"] == "running"]
check(len(partial) == 1, f"after kill -9 one config is partial: {before}")
r = subprocess.run([AR, "sweep", scfg, "--db", sdb, "--quiet", "--resume"], env=env, capture_output=True, text=True,
                   timeout=120)
check(r.returncode == 0, f"resume: exit {r.returncode} {r.stderr}")
after = configs(sdb)
check(len(after) == 3 and all(v["status"] == "ok" for v in after.values()), f"after resume: {after}")
for k, v in before.items():
    if v["status"] == "ok":
        check(after[k]["id"] == v["id"], f"resume reran the complete config {k}")
rows = request_set(sdb)
check(len(rows) == 30 and len(set(rows)) == 30, f"after resume: {len(rows)} rows, {len(set(rows))} distinct (want 30)")
con = sqlite3.connect(sdb)
sup = con.execute("SELECT count(*) FROM configs WHERE status='superseded'").fetchone()[0]
orphan = con.execute("SELECT count(*) FROM requests WHERE config_id IN"
                     " (SELECT id FROM configs WHERE status='superseded')").fetchone()[0]
con.close()
check(sup == 1 and orphan == 0, f"superseded configs {sup}, rows left under them {orphan}")
no_leftovers(sdb, "resumed sweep", unstopped=1)

blocker.close()
if failures:
    print(f"{len(failures)} check(s) failed; work dir {work}")
    sys.exit(1)
print("sweep e2e: all checks passed")
subprocess.run(["rm", "-rf", work])
