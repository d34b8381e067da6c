#!/usr/bin/env bash
# Real tier: recounts a sample of the estimator's calibration corpus with the
# real tokenizers and checks the committed counts (tests/data/tokcal/
# counts.tsv, which tests/unit/test_tokest.c holds the estimator to) are
# what the tokenizers really say. Every 5th sample, to keep it under a minute.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data="$here/../data/tokcal"
files=$(awk -F'\t' 'NR > 1 && NR % 5 == 2 {print $1}' "$data/counts.tsv")
cd "$data"
# shellcheck disable=SC2086
"$here/tokcount.sh" $files > /tmp/ar-tokcal.$$
if ! diff <(awk -F'\t' 'NR > 1 && NR % 5 == 2' counts.tsv) /tmp/ar-tokcal.$$; then
  echo "committed counts differ from the real tokenizers (rows above)"; rm -f /tmp/ar-tokcal.$$; exit 1
fi
echo "$(wc -l < /tmp/ar-tokcal.$$) samples: committed counts match llama-tokenize (Llama-3, Qwen2) and o200k"
rm -f /tmp/ar-tokcal.$$
