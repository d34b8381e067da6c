#!/usr/bin/env bash
# Disk full while writing a trace or the store (issue: reliability). A file-size limit
# (RLIMIT_FSIZE via prlimit) makes writes fail with EFBIG part way, as a full disk does with
# ENOSPC: the tool must say which file and why, exit non-zero, leave no half-written trace, and
# keep every request row it had committed readable (integrity_check ok, rows complete).
# Usage: disk-full.sh AGENTREPLAY      (needs prlimit and python3; ~3 s)
set -u
AR=${1:?usage: disk-full.sh AGENTREPLAY}
command -v prlimit > /dev/null || { echo "prlimit missing: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# ---- a trace that does not fit: no partial file, no temp file ---------------------------------
prlimit --fsize=200000 "$AR" gen --depth 128k -o deep.jsonl > out.txt 2> err.txt
rc=$?
check "gen: exit 2 on a full disk (got $rc)" [ "$rc" -eq 2 ]
check "gen: the error names the file and the cause" grep -q "cannot write 'deep.jsonl': File too large" err.txt
check "gen: nothing half-written is left" [ -z "$(ls -A | grep -v -e '^out.txt$' -e '^err.txt$')" ]
rm -f out.txt err.txt

# ---- the store fills up mid-run: committed rows stay readable -----------------------------------
"$AR" gen --depth 32k --turns 10 -o s.jsonl 2> /dev/null || { bad "gen s.jsonl"; exit 1; }
"$AR" run --quiet --db full.db s.jsonl > /dev/null 2>&1 || { bad "unlimited run"; exit 1; }
want=$(python3 -c "import sqlite3; print(sqlite3.connect('full.db').execute('select count(*) from requests').fetchone()[0])")
for lim in 60000 100000 160000; do
  rm -f r.db r.db-wal r.db-shm
  prlimit --fsize=$lim "$AR" run --quiet --db r.db s.jsonl > /dev/null 2> err.txt
  rc=$?
  check "run (limit $lim): non-zero exit (got $rc)" [ "$rc" -ne 0 ]
  check "run (limit $lim): the error names the store and the cause" grep -q "store 'r.db'.*File too large" err.txt
  res=$(python3 - << 'PY'
import sqlite3
c = sqlite3.connect("r.db")
ic = c.execute("pragma integrity_check").fetchone()[0]
n = c.execute("select count(*) from requests").fetchone()[0]
bad = c.execute("select count(*) from requests where outcome is null or ttft_ms is null or session is null").fetchone()[0]
print(ic, n, bad)
PY
)
  read -r ic n incomplete <<< "$res"
  check "run (limit $lim): integrity_check ok ($ic)" [ "$ic" = ok ]
  check "run (limit $lim): some rows were committed and kept ($n of $want)" [ "$n" -gt 0 ] && [ "$n" -lt "$want" ]
  check "run (limit $lim): every kept row is complete" [ "$incomplete" -eq 0 ]
done
[ "$fails" -eq 0 ] && echo "all ok" || echo "$fails failed"
exit $((fails > 0))
