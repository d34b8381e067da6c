#!/usr/bin/env python3
"""--format json streams: its peak memory does not grow with the number of
requests. Writes stores of 10k and 100k requests (big.sql, cut), runs
`agentreplay report --format json` on each and compares the peak RSS of
the two runs (getrusage of the children): the 100k report may use at most
4 MiB more than the 10k one (holding ~90 bytes per request, as before,
costs 8 MiB more). Prints both figures and the output sizes.

usage: report_json_memory.py AGENTREPLAY MKSTORE SRCDIR WORKDIR"""
import os
import resource
import subprocess
import sys

ar, mk, src, work = sys.argv[1:5]
# under AddressSanitizer freed blocks sit in a quarantine that grows with
# the churn, not with what is held: turn it off (no effect without ASan)
os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0").lstrip(":")
os.makedirs(work, exist_ok=True)
big = open(os.path.join(src, "tests/data/report/big.sql")).read()
rss = {}
for n in (10000, 100000):
    sql = os.path.join(work, "big%d.sql" % n)
    db = os.path.join(work, "big%d.db" % n)
    with open(sql, "w") as f:
        f.write(big.replace("i < 99999", "i < %d" % (n - 1)))
    for p in (db, db + "-wal", db + "-shm"):
        if os.path.exists(p):
            os.remove(p)
    subprocess.run([mk, db, sql], check=True)
    out = os.path.join(work, "big%d.json" % n)
    subprocess.run([ar, "report", db, "--format", "json", "-o", out], check=True)
    # ru_maxrss of children is the largest so far: the 100k run comes last
    rss[n] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("%d requests: json %.1f MB, peak RSS so far %d KiB" % (n, os.path.getsize(out) / 1e6, rss[n]))
grow = rss[100000] - rss[10000]
print("growth from 10k to 100k requests: %d KiB" % grow)
if grow > 4096:
    print("FAIL: the json report's memory grows with the requests (%d KiB)" % grow)
    sys.exit(1)
