#!/usr/bin/env python3
"""The HTML report in a real browser (headless Debian chromium).

For each store (the fixed one with hostile strings, an empty one, one of
100k requests) it writes the report, loads it from file:// with ?selftest
(the page's own hook: it clicks a column header twice, types into the
filter box, and checks the rendered rows), and asserts here, on the DOM
chromium dumps and on its log: every self-test check passed, no console
error, no element or alert from the injected <script>/<img onerror> (they
must show as text), and the table is paginated (at most 100 rows in the
DOM). Screenshots go to OUTDIR. Exit 77 (skip) when chromium is missing.

usage: report_browser.py AGENTREPLAY MKSTORE SRCDIR OUTDIR [--big]
  --big: only the store of 100k requests (tests/data/report/big.sql)
"""
import os
import re
import shutil
import subprocess
import sys
import time

CHECKS = ["sort-ascending", "sort-descending", "filter-hides-rows", "filter-cleared", "no-script-errors",
          "no-alert-called", "no-injected-elements"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run_page(browser, html, outdir, name, want_rows):
    url = "file://" + os.path.abspath(html) + "?selftest"
    prof = os.path.join(outdir, "profile-" + name)
    t0 = time.monotonic()
    p = subprocess.run([browser] + FLAGS + ["--user-data-dir=" + prof, "--enable-logging=stderr", "--v=0",
                                           "--virtual-time-budget=20000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    dom, log = p.stdout, p.stderr
    with open(os.path.join(outdir, name + ".dom.html"), "w") as f:
        f.write(dom)
    with open(os.path.join(outdir, name + ".chromium.log"), "w") as f:
        f.write(log)
    m = re.search(r'<pre id="ar-selftest">(.*?)</pre>', dom, re.S)
    if not m:
        fail("%s: the page's self-test did not run (no #ar-selftest); chromium exit %d" % (name, p.returncode))
    lines = m.group(1).splitlines()
    print("%s: %s" % (name, "; ".join(lines)))
    if any(line.startswith("FAIL") for line in lines):
        fail("%s: a self-test check failed" % name)
    passed = {line.split()[1].rstrip(":") for line in lines if line.startswith("PASS")}
    need = CHECKS if want_rows >= 2 else CHECKS[4:]
    missing = [c for c in need if c not in passed]
    if missing:
        fail("%s: checks missing: %s" % (name, missing))
    # console errors and uncaught exceptions, as chromium logs them
    bad = [l for l in log.splitlines() if "CONSOLE" in l and ("Uncaught" in l or "Error" in l or ":ERROR:" in l)]
    bad += [l for l in log.splitlines() if "Refused to" in l]
    if bad:
        fail("%s: console errors:\n%s" % (name, "\n".join(bad[:10])))
    # the injected markup is text, never elements
    if re.search(r"<img\b", dom, re.I):
        fail("%s: an <img> element reached the DOM" % name)
    scripts = re.findall(r"<script\b", dom, re.I)
    if len(scripts) != 3:
        fail("%s: %d <script> elements in the DOM, want 3 (ours)" % (name, len(scripts)))
    body_rows = re.search(r'<tbody id="ar-tbody">(.*?)</tbody>', dom, re.S)
    nrows = len(re.findall(r"<tr>", body_rows.group(1))) if body_rows else -1
    if nrows != min(want_rows, 100):
        fail("%s: %d table rows in the DOM, want %d (pages of 100)" % (name, nrows, min(want_rows, 100)))
    shot = os.path.join(outdir, name + ".png")
    subprocess.run([browser] + FLAGS + ["--user-data-dir=" + prof, "--hide-scrollbars", "--window-size=1280,2400",
                                       "--screenshot=" + shot, "file://" + os.path.abspath(html)],
                   capture_output=True, timeout=300)
    if not os.path.exists(shot) or os.path.getsize(shot) < 1000:
        fail("%s: no screenshot" % name)
    shutil.rmtree(prof, ignore_errors=True)
    return dom, wall


def main():
    if len(sys.argv) < 5:
        print(__doc__)
        return 2
    ar, mkstore, src, outdir = sys.argv[1:5]
    big = "--big" in sys.argv[5:]
    browser = chromium()
    if not browser:
        print("SKIP: no chromium (CI installs Debian's chromium)")
        return 77
    os.makedirs(outdir, exist_ok=True)
    data = os.path.join(src, "tests", "data", "report")
    cases = [("fixed", [os.path.join(data, "basic.sql")], 51), ("empty", [], 0)]
    if big:
        cases = [("big", [os.path.join(data, "big.sql")], 100000)]
    for name, sql, rows in cases:
        db = os.path.join(outdir, name + ".db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        subprocess.run([mkstore, db] + sql, check=True)
        html = os.path.join(outdir, name + ".html")
        t0 = time.monotonic()
        subprocess.run([ar, "report", db, "--format", "html", "-o", html], check=True)
        gen = time.monotonic() - t0
        dom, wall = run_page(browser, html, outdir, name, rows)
        print("%s: %d requests, page %.1f MB, written in %.2f s, chromium load+selftest %.1f s wall"
              % (name, rows, os.path.getsize(html) / 1e6, gen, wall))
        if name == "fixed":
            for s in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;"):
                if s not in dom:
                    fail("fixed: the hostile string %r is not shown as text" % s)
            for chart in ("chart-ttft", "chart-coldwarm", "chart-decode", "chart-mem"):
                if 'id="%s"' % chart not in dom:
                    fail("fixed: chart %s missing" % chart)
    print("ok: screenshots in " + outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
