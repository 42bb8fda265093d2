#!/usr/bin/env bash
# Training on CSV data with k-fold cross-validation and early stopping, then `stag predict`:
# three well separated classes must be learnt, and every fold must validate on other rows.
# Usage: train_tabular.sh STAG TESTS_DIR
set -u
stag=$1 tests=$2
tmp=$(mktemp -d)
cd "$tmp"  # run folders (runs/MODEL-N) go here
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# 240 rows: class c has feature c near 3, the others near 0 (a deterministic pseudo-noise).
awk 'BEGIN { print "a,b,c,d,label"; for (i = 0; i < 240; i++) { c = i % 3; n = (i * 37 % 11) / 20;
     printf "%.3f,%.3f,%.3f,%.3f,%d\n", (c==0)*3+n, (c==1)*3-n, (c==2)*3+n/2, n, c } }' > "$tmp/data.csv"
for fold in 0 3; do
  "$stag" train "$tests/cli/tabular.stag" --data "$tmp/data.csv" --folds 4 --fold $fold --early-stopping 3 \
      --checkpoint "$tmp/w$fold.ckpt" --log "$tmp/log$fold.jsonl" > "$tmp/out$fold" 2>&1 || { cat "$tmp/out$fold"; fail "fold $fold failed"; }
  grep -q "180 train / 60 validation examples" "$tmp/out$fold" || { cat "$tmp/out$fold"; fail "fold $fold: wrong split"; }
  acc=$(grep '"event":"epoch"' "$tmp/log$fold.jsonl" | tail -1 | sed 's/.*"val_accuracy":\([0-9.e-]*\).*/\1/')
  awk -v a="$acc" 'BEGIN { exit !(a >= 0.95) }' || { cat "$tmp/out$fold"; fail "fold $fold: validation accuracy $acc"; }
done
"$stag" predict "$tests/cli/tabular.stag" --weights "$tmp/w0.ckpt" --data "$tmp/data.csv" --out-dir "$tmp/pred" > "$tmp/pred.out" 2>&1 \
  || { cat "$tmp/pred.out"; fail "stag predict failed"; }
grep -q "predictions.npy (i64\[240\]) and probabilities.npy (f32\[240,3\])" "$tmp/pred.out" || { cat "$tmp/pred.out"; fail "unexpected predictions"; }
"$stag" train "$tests/cli/tabular.stag" --data "$tmp/data.csv" --folds 4 --fold 4 > "$tmp/bad" 2>&1 && fail "a fold out of range was accepted"
grep -q -- "--fold 4 is not one of the 4 folds" "$tmp/bad" || { cat "$tmp/bad"; fail "unclear error for a bad fold"; }
"$stag" train "$tests/cli/tabular.stag" --data "$tmp/missing.csv" > "$tmp/bad" 2>&1 && fail "a missing CSV was accepted"
grep -q "missing.csv: cannot open" "$tmp/bad" || { cat "$tmp/bad"; fail "the error does not name the missing CSV"; }
printf 'a,b,c,d,label\n1,2,3\n' > "$tmp/ragged.csv"
"$stag" train "$tests/cli/tabular.stag" --data "$tmp/ragged.csv" > "$tmp/bad" 2>&1 && fail "a ragged CSV was accepted"
grep -q "ragged.csv:2" "$tmp/bad" || { cat "$tmp/bad"; fail "the CSV error does not name the line"; }
# Transfer learning: start from a checkpoint, train only the bias.
"$stag" train "$tests/cli/tabular.stag" --data "$tmp/data.csv" --init-from "$tmp/w0.ckpt" --freeze 'fc.weight' --epochs 1 \
    --normalize --checkpoint "$tmp/t.ckpt" > "$tmp/t.out" 2>&1 || { cat "$tmp/t.out"; fail "fine-tuning failed"; }
grep -q "initialised 2 of" "$tmp/t.out" || { cat "$tmp/t.out"; fail "--init-from took the wrong parameters"; }
"$stag" train "$tests/cli/tabular.stag" --data "$tmp/data.csv" --freeze 'fc.*' > "$tmp/bad" 2>&1 && fail "training with everything frozen was accepted"
grep -q "there are no trainable parameters to optimize" "$tmp/bad" || { cat "$tmp/bad"; fail "unclear error when everything is frozen"; }
"$stag" train "$tests/cli/tabular.stag" --data "$tmp/data.csv" --freeze 'conv*' > "$tmp/bad" 2>&1 && fail "a pattern matching nothing was accepted"
grep -q -- "--freeze 'conv\*' matches no parameter of tabular" "$tmp/bad" || { cat "$tmp/bad"; fail "unclear error for an unmatched --freeze"; }
# A damaged checkpoint is a clear error naming the file, for eval and for resume.
head -c 100 "$tmp/w0.ckpt" > "$tmp/cut.ckpt"
"$stag" eval "$tests/cli/tabular.stag" --weights "$tmp/cut.ckpt" --data "$tmp/data.csv" > "$tmp/bad" 2>&1 && fail "a truncated checkpoint was accepted"
grep -q "cut.ckpt" "$tmp/bad" || { cat "$tmp/bad"; fail "the error does not name the checkpoint"; }
"$stag" train "$tests/cli/tabular.stag" --data "$tmp/data.csv" --resume "$tmp/cut.ckpt" > "$tmp/bad" 2>&1 && fail "resuming from a truncated checkpoint was accepted"
grep -q "cut.ckpt" "$tmp/bad" || { cat "$tmp/bad"; fail "the resume error does not name the checkpoint"; }
echo "train_tabular: folds 0 and 3 learnt; predictions written; 1 passed, 0 failed"
