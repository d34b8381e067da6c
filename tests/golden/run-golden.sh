#!/usr/bin/env bash
# Runs one data-driven golden case (curl's testNNNN idea): a .test file with
# sections, each introduced by a line "--- NAME":
#   args      the command line after 'agentreplay'; the word INPUT stands for the input file
#   input     text of the input file (written as is, a final newline kept)
#   input-printf  a printf format whose output is the input (for bytes text cannot hold)
#   zstd      present: the input is compressed with zstd (input.zst); value "truncate N" cuts N bytes
#   store     present: INPUT is a results store made by $AR_MKSTORE (tests/tools/mkstore.c)
#             from the SQL files listed one a line (SRC allowed; none: an empty store)
#   store-sql SQL run on that store after the files
#   exit      expected exit code (default 0)
#   stdout    expected standard output, exactly
#   stderr    expected standard error, exactly (INPUT replaced by the input path)
#   validate  a file the command wrote (relative to its working directory) that
#             'agentreplay trace validate' must accept
#   (in args, stdout and stderr, SRC stands for the source tree's root)
# Usage: run-golden.sh AGENTREPLAY CASE.test SRCDIR
set -u
bin=$1 case=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# split the case into $work/sec.NAME files
awk -v dir="$work" '
  /^--- [a-z-]+$/ { name = $2; file = dir "/sec." name; printf "" > file; next }
  name != "" { print >> file }
' "$case"

sec() { [ -f "$work/sec.$1" ] && cat "$work/sec.$1"; }
has() { [ -f "$work/sec.$1" ]; }

input="$work/input.jsonl"
if has input; then cp "$work/sec.input" "$input"; fi
if has input-printf; then printf "$(tr -d '\n' < "$work/sec.input-printf")" > "$input"; fi
if has zstd; then
  zstd -q -f "$input" -o "$input.zst" || exit 1
  read -r what n < "$work/sec.zstd" || true
  if [ "${what:-}" = truncate ]; then
    size=$(stat -c %s "$input.zst")
    truncate -s $((size - n)) "$input.zst"
  fi
  input="$input.zst"
fi

if has store; then
  input="$work/store.db"
  sql=()
  while read -r f; do [ -n "$f" ] && sql+=("${f//SRC/$src}"); done < "$work/sec.store"
  if has store-sql; then sql+=("$work/sec.store-sql"); fi
  "${AR_MKSTORE:?AR_MKSTORE names tests/tools/mkstore}" "$input" "${sql[@]}" || exit 1
fi

args=$(sec args | head -n 1)
args=${args//INPUT/$input}
args=${args//SRC/$src}
want_exit=$(sec exit | head -n 1)
want_exit=${want_exit:-0}

# shellcheck disable=SC2086  # args are split on purpose
(cd "$work" && "$bin" $args > "$work/out" 2> "$work/err")
got_exit=$?

fail=0
if [ "$got_exit" != "$want_exit" ]; then
  echo "exit code: got $got_exit, want $want_exit"; fail=1
fi
for s in stdout stderr; do
  has $s || continue
  f=$([ $s = stdout ] && echo out || echo err)
  sed "s|INPUT|$input|g; s|SRC|$src|g" "$work/sec.$s" > "$work/want.$s"
  if ! cmp -s "$work/want.$s" "$work/$f"; then
    echo "$s differs (want, got):"; diff "$work/want.$s" "$work/$f"; fail=1
  fi
done
if has validate; then
  vf=$(sec validate | head -n 1)
  if ! (cd "$work" && "$bin" trace validate "$vf" > "$work/vout" 2>&1); then
    echo "trace validate $vf failed:"; cat "$work/vout"; fail=1
  fi
fi
[ $fail = 0 ] || { echo "case: $case"; echo "stderr was:"; cat "$work/err"; }
exit $fail
