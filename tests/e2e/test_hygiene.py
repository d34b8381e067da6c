#!/usr/bin/env python3
"""Resource hygiene: nothing outlives a command but what the user asked for.

Every command that writes (gen, import, run, report, sweep, db merge, record) runs in an
empty working folder with TMPDIR pointing at an empty folder of its own:
  - afterwards TMPDIR is empty and the working folder holds exactly the named outputs
    (the store with its -wal/-shm while open is fine; no *.tmp, no half-written files);
  - a server started by `sweep` inherits no descriptor of ours: while it runs, none of its
    open files is the store, a trace or the sweep config (only its log on stdout/stderr);
  - no process started by any of them is left running afterwards (checked by the working
    folder's path in every process's command line and by the servers' ports).

Usage: test_hygiene.py AGENTREPLAY
"""
import json, os, signal, socket, sqlite3, subprocess, sys, tempfile, time, urllib.request

AR = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
root = tempfile.mkdtemp(prefix="ar-hygiene-")
wd, tmp = os.path.join(root, "wd"), os.path.join(root, "tmp")
os.makedirs(wd), os.makedirs(tmp)
env = dict(os.environ, TMPDIR=tmp, XDG_CACHE_HOME=os.path.join(wd, "cache"))
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def ar(*args, want=0, timeout=300):
    p = subprocess.run([AR, *args], cwd=wd, env=env, capture_output=True, text=True, timeout=timeout)
    ok = p.returncode == want
    check(ok, f"agentreplay {' '.join(args[:2])}: exit {p.returncode} (want {want})" + ("" if ok else f": {p.stderr[-300:]}"))
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, up=True, secs=20):
    end = time.time() + secs
    while time.time() < end:
        s = socket.socket()
        s.settimeout(0.2)
        ok = s.connect_ex(("127.0.0.1", port)) == 0
        s.close()
        if ok == up:
            return True
        time.sleep(0.05)
    return False


def our_processes():
    """Processes (other than this script) whose command line mentions our folder."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if root in cmd:
            found.append(f"{pid}: {cmd[:120]}")
    return found


# ---- the commands -----------------------------------------------------------------------------
ar("gen", "--depth", "32k", "--turns", "6", "--style", "codex", "-o", "s.jsonl.zst")
weka = sorted(os.listdir(os.path.join(SRC, "tests", "data", "import", "weka")))
weka = [w for w in weka if w.endswith(".json")][0]
ar("import", "auto", os.path.join(SRC, "tests", "data", "import", "weka", weka), "-o", "w.jsonl")
ar("import", "auto", os.path.join(SRC, "traces", "examples", "small-session.jsonl"), "-o", "bad.jsonl", want=2)
ar("run", "--quiet", "--db", "a.db", "--repeats", "1", "s.jsonl.zst")
ar("report", "a.db", "--format", "html", "-o", "a.html")
ar("report", "a.db", "--format", "csv", "-o", os.path.join(wd, "nodir", "a.csv"), want=2)

# sim serve + run over HTTP + record in front of it
port = free_port()
srv = subprocess.Popen([AR, "sim", "serve", "--port", str(port), "--time-scale", "200"], cwd=wd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
check(wait_port(port), "sim serve listens")
ar("run", "--quiet", "--backend", f"openai:http://127.0.0.1:{port}", "--db", "b.db", "--repeats", "1",
   "--warmup", "0", os.path.join(SRC, "traces", "examples", "small-session.jsonl"))
rport = free_port()
rec = subprocess.Popen([AR, "record", "--upstream", f"http://127.0.0.1:{port}", "--listen", f"127.0.0.1:{rport}",
                        "-o", "rec.jsonl", "--log", "rec.log.jsonl"], cwd=wd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
check(wait_port(rport), "record listens")
body = json.dumps({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hello there"}]}).encode()
try:
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{rport}/v1/chat/completions", body,
                                                       {"Content-Type": "application/json"}), timeout=30) as r:
        check(r.status == 200, "a request through the recorder")
except OSError as e:
    check(False, f"a request through the recorder: {e}")
rec.send_signal(signal.SIGTERM)
rec.wait(timeout=30)
check(rec.returncode == 0, f"record exits 0 on SIGTERM (got {rec.returncode})")
srv.send_signal(signal.SIGTERM)
srv.wait(timeout=30)

# a sweep: while its server runs, look at the server's descriptors
cfg = os.path.join(wd, "sweep.yaml")
with open(cfg, "w") as f:
    f.write(f"""
name: "{{model}}"
backends:
  sim:
    adapter: openai
    command: [{AR}, sim, serve, --port, "{{port}}", --profile, "{{profile}}", --time-scale, "20"]
    health: /health
    start_timeout: 20s
    grace: 3s
models:
  - {{name: gemma-3-27b, profile: "model=gemma-3-27b,quant=mlx-8bit,hw=m3-max-64g,engine=mlx-lm"}}
traces: ["{os.path.join(wd, 's.jsonl.zst')}"]
measure: {{repeats: 1, warmup: 0, cold: none}}
""")
# the sweep itself inherits a descriptor without close-on-exec (as from a careless parent
# shell or job runner): its server must not get it
marker = open(os.path.join(wd, "inherited.marker"), "w")
sw = subprocess.Popen([AR, "sweep", cfg, "--db", "s.db", "--quiet"], cwd=wd, env=env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(marker.fileno(),))
marker.close()
server = None
end = time.time() + 30
while time.time() < end and server is None:
    time.sleep(0.1)
    try:
        con = sqlite3.connect(os.path.join(wd, "s.db"))
        row = con.execute("SELECT detail FROM events WHERE kind='started'").fetchone()
        con.close()
        if row:
            server = json.loads(row[0])["pid"]
    except (sqlite3.Error, OSError, ValueError, KeyError):
        pass
check(server is not None, "the sweep started a server")
if server:
    time.sleep(0.3)
    links = {}
    for fd in os.listdir(f"/proc/{server}/fd"):
        try:
            links[int(fd)] = os.readlink(f"/proc/{server}/fd/{fd}")
        except OSError:
            pass
    leaked = {fd: l for fd, l in links.items()
              if l.startswith(wd) and not (fd in (1, 2) and "logs" in l) and "/cache/" not in l}
    check(not leaked, f"the server inherits none of the sweep's files, nor what the sweep inherited "
          f"(it has {len(links)} fds; leaked {leaked})")
    check(links.get(1) == links.get(2) and links.get(1, "").startswith(wd), f"server stdout/stderr go to its log: {links.get(1)}")
sw.send_signal(signal.SIGTERM)
sw.wait(timeout=60)
check(sw.returncode in (0, 130), f"sweep stops on SIGTERM (exit {sw.returncode})")
ar("sweep", cfg, "--db", "s.db", "--quiet", "--resume")
ar("db", "merge", "m.db", "s.db")

# ---- what is left ------------------------------------------------------------------------------
time.sleep(0.5)
left = our_processes()
check(not left, f"no process outlives the commands: {left}")
check(os.listdir(tmp) == [], f"TMPDIR is empty: {os.listdir(tmp)}")
expect = {"s.jsonl.zst", "w.jsonl", "a.db", "a.html", "b.db", "rec.jsonl", "rec.log.jsonl", "sweep.yaml", "s.db",
          "s.db.logs", "m.db", "cache", "inherited.marker"}
have = set(os.listdir(wd))
extra = {f for f in have - expect if not f.endswith(("-wal", "-shm"))}
check(not extra, f"the working folder holds only the named outputs: unexpected {sorted(extra)}")
check(not (expect - have) - {"cache"}, f"every named output exists: missing {sorted(expect - have - {'cache'})}")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("all ok")
