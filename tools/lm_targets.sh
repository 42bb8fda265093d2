#!/usr/bin/env bash
# Issue 15's language-model target, measured (not in CI: each training takes minutes): every
# catalog character model trains with its defaults, a bare `stag train models/NAME.stag`, and its
# last validation loss must be at least 0.5 nats a character under that of the corpus's character
# bigram model on the same split (the `baseline:` line training prints first). Prints a table;
# exits 1 when a model misses the margin or fails. The run folders stay in OUT for the curves
# (`stag plot OUT/NAME/log.jsonl`).
# Usage: tools/lm_targets.sh [MODEL...]   (default: char_rnn lstm_lm gru_lm gpt; needs fortunes)
# Environment: STAG (default build/tools/stag), OUT (default a new temporary folder).
set -u
TIMEFORMAT='%R %U %S'
root=$(cd "$(dirname "$0")/.." && pwd)
stag=${STAG:-$root/build/tools/stag}
out=${OUT:-$(mktemp -d -t lm_targets.XXXXXX)}
margin_needed=0.5
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(char_rnn lstm_lm gru_lm gpt)
mkdir -p "$out"

# The value of `key` on the last line of a training output holding it (progress lines end in \r).
last_value() { tr '\r' '\n' <"$2" | grep "$3" | tail -1 | sed -E "s/.* $1 ([-0-9.]+).*/\\1/"; }

minutes() { awk -v s="$1" 'BEGIN { printf "%d min %02d s", s / 60, s % 60 }'; }
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
row model "bigram val_loss" "model val_loss" margin "wall time (CPU time)" command
row --- --- --- --- --- ---
status=0
for name in "${models[@]}"; do
  file=$root/models/$name.stag
  # bash's `time`: the CPU time says how much of the wall time the training had when cores are shared.
  { time (cd "$out" && "$stag" train "$file" --run-dir "$name" >"$name.out" 2>&1); } 2>"$out/$name.time"
  rc=$?
  read -r wall user sys <"$out/$name.time"
  bigram=$(last_value val_loss "$out/$name.out" '^baseline: a character bigram')
  model=$(last_value val_loss "$out/$name.out" '^epoch .* val_loss')
  if [ $rc -ne 0 ] || [ -z "$bigram" ] || [ -z "$model" ]; then
    row "$name" "${bigram:--}" "${model:--}" "failed (exit $rc, see $out/$name.out)" "$(minutes "$wall")" "stag train models/$name.stag"
    status=1
    continue
  fi
  margin=$(awk -v b="$bigram" -v m="$model" 'BEGIN { printf "%.4f", b - m }')
  verdict=$(awk -v d="$margin" -v need="$margin_needed" 'BEGIN { print (d >= need ? "" : " (short of " need ")") }')
  [ -z "$verdict" ] || status=1
  row "$name" "$bigram" "$model" "$margin$verdict" "$(minutes "$wall") ($(minutes "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')"))" "stag train models/$name.stag"
done
echo "run folders and outputs: $out"
exit $status
