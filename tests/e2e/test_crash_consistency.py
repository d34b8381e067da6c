#!/usr/bin/env python3
"""Crash consistency of the results store under `agentreplay sweep`.

A sweep of sim-serve configs (one survives every turn, one runs out of memory at a
known turn; warm and cold requests, two repeats) is first run to completion once: its
rows are the reference. Then, on one store, the sweep is started and killed with
SIGKILL at 50 points spread over its run time (before the first request, between and
during requests, while a row is committed, while servers start and stop), each time
followed by `--resume`, which is killed again. After every kill:
  - the store opens and `PRAGMA integrity_check` is ok;
  - no (config key, session, turn, repeat, cache) appears twice among live configs;
  - every stored row is complete (outcome, ttft or an error class);
  - no server the sweep started outlives it (their ports are closed).
A final `--resume` must end with exactly the reference rows: none missing, none
duplicated, same outcomes. Then SIGTERM and SIGINT mid-run: the sweep finishes the
row in flight, stops its servers, exits 130, and `--resume` completes the same rows.

Usage: test_crash_consistency.py AGENTREPLAY [KILLS]
"""
import json, os, random, signal, socket, sqlite3, subprocess, sys, tempfile, time

AR = os.path.abspath(sys.argv[1])
KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
work = tempfile.mkdtemp(prefix="ar-crash-")
env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))
failures = []
rng = random.Random(20261129)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


CONFIG = f"""
name: "{{model}}"
backends:
  sim:
    adapter: openai
    command: [{AR}, sim, serve, --port, "{{port}}", --profile, "{{profile}}", --time-scale, "4000", --load-time, "1"]
    health: /health
    start_timeout: 20s
    grace: 3s
models:
  - {{name: qwen3-32b, profile: "model=qwen3-32b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm"}}
  - {{name: gemma-3-27b, profile: "model=gemma-3-27b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm"}}
traces: ["gen:style=codex,depth=64k,turns=10,seed=7"]
measure: {{repeats: 2, warmup: 0, cold: tiers, until_fail: true, bisect: false}}
"""
cfg = os.path.join(work, "crash.yaml")
with open(cfg, "w") as f:
    f.write(CONFIG)

ROWS = ("SELECT c.key, r.session, r.turn, r.repeat, r.cache, r.outcome FROM requests r"
        " JOIN configs c ON c.id = r.config_id WHERE c.status != 'superseded'")


def sweep(db, *extra):
    return subprocess.Popen([AR, "sweep", cfg, "--db", db, "--quiet", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def rows(db):
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute(ROWS).fetchall())
    finally:
        con.close()


def servers(db):
    """(pid, port) of every server the sweep started (its `started` events)."""
    con = sqlite3.connect(db)
    try:
        det = [d for (d,) in con.execute("SELECT detail FROM events WHERE kind='started' ORDER BY id").fetchall() if d]
    except sqlite3.Error:
        det = []
    finally:
        con.close()
    out = []
    for d in det:
        try:
            j = json.loads(d)
            out.append((int(j["pid"]), int(j["port"])))
        except (ValueError, KeyError, TypeError):
            check(False, f"a started event without its pid and port: {d[:200]}")
    return out


def alive(pid, port):
    """The server process is still there (a zombie or a reused pid running something else
    does not count: ports and pids are reused by other tests running beside this one)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except (OSError, IndexError):
        return False
    return b"serve" in cmd and str(port).encode() in cmd


class EmptyStore(Exception):
    pass


SEEN = {}  # store -> number of started events already checked


def after_kill(db, label):
    if not os.path.exists(db):
        return
    con = sqlite3.connect(db)
    try:
        ic = con.execute("PRAGMA integrity_check").fetchone()[0]
        check(ic == "ok", f"{label}: integrity_check says {ic}")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and tables == 0:
            raise EmptyStore  # killed before the schema was created: nothing recorded yet
        check(version == SCHEMA, f"{label}: schema version {version}, not {SCHEMA} (a half-made store?)")
        dup = con.execute("SELECT count(*) FROM (SELECT c.key, r.session, r.turn, r.repeat, r.cache, count(*) n"
                          " FROM requests r JOIN configs c ON c.id = r.config_id WHERE c.status != 'superseded'"
                          " GROUP BY 1,2,3,4,5 HAVING n > 1)").fetchone()[0]
        check(dup == 0, f"{label}: {dup} duplicated request rows")
        bad = con.execute("SELECT count(*) FROM requests WHERE outcome IS NULL OR session IS NULL OR"
                          " (outcome = 'ok' AND ttft_ms IS NULL)").fetchone()[0]
        check(bad == 0, f"{label}: {bad} incomplete rows")
    except sqlite3.Error as e:
        check(False, f"{label}: store unreadable: {e}")
    except EmptyStore:
        pass
    finally:
        con.close()
    # servers die with the sweep (parent-death signal); give them a moment
    started = servers(db)
    new, SEEN[db] = started[SEEN.get(db, 0):], len(started)
    deadline = time.time() + 10
    left = [s for s in new if alive(*s)]
    while left and time.time() < deadline:
        time.sleep(0.05)
        left = [s for s in left if alive(*s)]
    check(not left, f"{label}: servers (pid, port) still running: {left}")


# ---- the reference: one uninterrupted sweep ---------------------------------------------------
ref_db = os.path.join(work, "ref.db")
t0 = time.time()
p = sweep(ref_db)
_, err = p.communicate(timeout=300)
T = time.time() - t0
check(p.returncode == 0, f"reference sweep exit {p.returncode}: {err.decode()[-400:]}")
ref = rows(ref_db)
con = sqlite3.connect(ref_db)
SCHEMA = con.execute("PRAGMA user_version").fetchone()[0]  # what a complete store has
con.close()
outcomes = sorted({r[5] for r in ref})
print(f"reference: {len(ref)} rows in {T:.2f} s, outcomes {outcomes}", flush=True)
check(len(ref) > 20 and "ok" in outcomes and "oom" in outcomes, f"reference rows {len(ref)} {outcomes}")

# ---- 50 SIGKILLs, each followed by --resume (killed again) -----------------------------------
# Kill points are spread over the run time (start-up, requests, commits, server stops). When a
# resumed sweep completes before its kill, its store must already equal the reference, and the
# next kills go to a fresh store.
stores = 0
db = None
kills = tries = 0
done = 0.0
while kills < KILLS and tries < KILLS * 6:
    if db is None:
        stores += 1
        db = os.path.join(work, f"crash{stores}.db")
    resume = os.path.exists(db)
    if resume:
        # a resume has only what is left after the first kill (about T - done); a kill point mostly inside it,
        # sometimes past its end, so that completed resumes are checked too
        delay = max(T - done, 0.1 * T) * rng.uniform(0.05, 1.1)
    else:
        delay = T * (kills + rng.random()) / KILLS
        done = delay
    p = sweep(db, "--resume") if resume else sweep(db)
    time.sleep(delay)
    tries += 1
    landed = p.poll() is None
    if landed:
        p.kill()  # the sweep only: its servers must die on their own
        kills += 1
    p.wait()
    p.stderr.close()
    after_kill(db, f"kill {kills} at {delay:.3f} s" if landed else f"completed run of store {stores}")
    if not landed:
        check(p.returncode == 0 and rows(db) == ref, f"store {stores} completed (exit {p.returncode}) with "
              f"{len(rows(db))} rows vs {len(ref)}")
        db = None
print(f"{kills} kills landed in {tries} runs over {stores} stores", flush=True)
check(kills == KILLS, f"only {kills} of {KILLS} kills landed")

if db is not None:
    p = sweep(db, "--resume")
    _, err = p.communicate(timeout=300)
    check(p.returncode == 0, f"final --resume exit {p.returncode}: {err.decode()[-400:]}")
    got = rows(db)
    missing = [r for r in ref if r not in got]
    extra = [r for r in got if r not in ref]
    check(len(got) == len(ref) and not missing and not extra,
          f"after resume: {len(got)} rows vs {len(ref)}; missing {missing[:3]}, unexpected {extra[:3]}")
    after_kill(db, "final")
    print(f"final resume: {len(got)} rows, lost {len(missing)}, duplicated {len(got) - len(set(got))}", flush=True)

# ---- SIGTERM / SIGINT: the row in flight is finished, servers stopped, 130 ---------------------
for sig in (signal.SIGTERM, signal.SIGINT):
    sdb = os.path.join(work, f"sig{int(sig)}.db")
    p = sweep(sdb)
    time.sleep(T * 0.5)
    t_sig = time.time()
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    took = time.time() - t_sig
    name = signal.Signals(sig).name
    check(p.returncode == 130, f"{name}: exit {p.returncode} (want 130): {err.decode()[-300:]}")
    check(took < 15, f"{name}: took {took:.1f} s to stop")
    after_kill(sdb, name)
    con = sqlite3.connect(sdb)
    st = [s for (s,) in con.execute("SELECT status FROM configs WHERE status != 'superseded'").fetchall()]
    con.close()
    check("interrupted" in st, f"{name}: config statuses {st}, expected one 'interrupted'")
    p = sweep(sdb, "--resume")
    _, err = p.communicate(timeout=300)
    got = rows(sdb)
    check(p.returncode == 0 and got == ref, f"{name}: resume exit {p.returncode}, {len(got)} rows vs {len(ref)}")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("all ok")
