#!/usr/bin/env bash
# Training settings that change what a run does: --no-shuffle, --min-delta, monitoring a model's
# own metric (which needs --monitor-mode), and the schedule of a train section.
# Usage: train_settings.sh STAG MODELS_DIR TESTS_DIR
set -u
stag=$1 tests=$3
source "$tests/cli/run_lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
awk 'BEGIN { print "a,b,c,d,label"; for (i = 0; i < 240; i++) { c = i % 3; n = (i * 37 % 11) / 20;
     printf "%.3f,%.3f,%.3f,%.3f,%d\n", (c==0)*3+n, (c==1)*3-n, (c==2)*3+n/2, n, (i % 7 == 0) ? (c + 1) % 3 : c } }' > data.csv
# Batch 4 divides the 60 validation rows, so the metric's mean over full batches covers them all.
cat > hits.stag <<'MODEL'
model hits {
  batch 4
  input x: f32[B, 4]
  input y: i64[B]
  layer fc = Linear(4, 3)
  forward {
    logits = fc(x)
    output logits
    loss = cross_entropy(logits, y)
    metric hits = accuracy(logits, y)
  }
  train {
    optimizer = adam(lr=0.05)
    schedule = restarts(t_0=10, t_mult=2)
    l1 = 0.001
    epochs = 3
  }
}
MODEL
run=(train hits.stag --data data.csv --validation 0.25 --threads 2 --seed 5)
json() { grep '"event":"epoch"' "$1/log.jsonl" | head -1 | grep -o "\"$2\":[-0-9.e]*" | cut -d: -f2; }

# The model's own metric: an error without a direction, then watched, printed and logged.
"$stag" "${run[@]}" --monitor val_hits --run-dir m0 >m0.out 2>&1 && fail "--monitor val_hits without a mode ran"
grep -q "val_hits is the model's own metric: say which way it improves with --monitor-mode max or min" m0.out ||
  { cat m0.out; fail "no clear error for a metric without a direction"; }
"$stag" "${run[@]}" --monitor val_nothing --run-dir m1 >m1.out 2>&1 && fail "--monitor val_nothing ran"
grep -q "val_nothing: not a validation measure of this model; expected one of: val_loss, .*val_hits" m1.out ||
  { cat m1.out; fail "no clear error for an unknown monitor"; }
"$stag" "${run[@]}" --monitor val_hits --monitor-mode max --run-dir m2 >m2.out 2>&1 || { cat m2.out; fail "monitoring val_hits failed"; }
grep -q "val_hits [0-9.]*" m2.out || { cat m2.out; fail "the epoch line lacks val_hits"; }
hits=$(json m2 val_hits) acc=$(json m2 val_accuracy)
[ -n "$hits" ] && awk -v h="$hits" -v a="$acc" 'BEGIN { exit !(h - a < 1e-6 && a - h < 1e-6) }' ||
  fail "val_hits ($hits) is not the validation accuracy ($acc)"
grep -q "best.safetensors (epoch [0-9]*, val_hits" m2.out || { cat m2.out; fail "the best epoch is not by val_hits"; }

# --min-delta: no later epoch improves the loss by 1000, so early stopping ends after epoch 2.
"$stag" "${run[@]}" --early-stopping 1 --min-delta 1000 --run-dir d1 >d1.out 2>&1 || { cat d1.out; fail "--min-delta failed"; }
grep -q "(early stop: best epoch 1)" d1.out || { cat d1.out; fail "--min-delta 1000 did not stop at epoch 2"; }
"$stag" "${run[@]}" --early-stopping 1 --run-dir d0 >d0.out 2>&1 || { cat d0.out; fail "early stopping failed"; }
grep -q "(early stop: best epoch 1)" d0.out && { cat d0.out; fail "without --min-delta epoch 2 did not improve on epoch 1"; }

# --no-shuffle: the same seed in the file's order takes other steps; run.json says so.
"$stag" "${run[@]}" --no-shuffle --run-dir s1 >s1.out 2>&1 || { cat s1.out; fail "--no-shuffle failed"; }
grep -q "2 threads, in the data's order" s1.out || { cat s1.out; fail "the first line does not say --no-shuffle"; }
grep -q '"shuffle": 0' s1/run.json || { cat s1/run.json; fail "run.json does not record --no-shuffle"; }
cmp -s <(steps s1/log.jsonl) <(steps d0/log.jsonl) && fail "--no-shuffle took the shuffled run's steps"
"$stag" "${run[@]}" --no-shuffle --run-dir s2 >s2.out 2>&1 || { cat s2.out; fail "the second --no-shuffle run failed"; }
cmp -s <(steps s1/log.jsonl) <(steps s2/log.jsonl) || fail "two --no-shuffle runs differ"

# The train section's schedule reaches the run as the --schedule spelling.
grep -q '"schedule": "restarts:10:2:0.0"' d0/run.json || { cat d0/run.json; fail "run.json lacks the file's schedule"; }
"$stag" "${run[@]}" --schedule plateau:0:0.5 --monitor val_accuracy --run-dir p1 >p1.out 2>&1 || { cat p1.out; fail "plateau failed"; }
# bf16 products (--precision bf16, or the train section's precision): every product of the step
# in bf16, a run that repeats itself bit for bit and learns as f32 does, but takes other steps.
"$stag" ir hits.stag --step --stage optimized --precision bf16 >ir16.txt 2>&1 || { cat ir16.txt; fail "stag ir --precision bf16 failed"; }
[ "$(grep -c ' = matmul(' ir16.txt)" -ge 2 ] || { cat ir16.txt; fail "the step has too few products"; }
grep ' = matmul(' ir16.txt | grep -qv 'precision="bf16"' && { cat ir16.txt; fail "a product of the step is not bf16"; }
"$stag" ir hits.stag --step --stage optimized 2>&1 | grep -q 'precision=' && fail "an f32 step has a precision attribute"
sed 's/    epochs = 3/    epochs = 3\n    precision = "bf16"/' hits.stag > hits16.stag
"$stag" ir hits16.stag --step --stage optimized 2>&1 | grep ' = matmul(' | grep -qv 'precision="bf16"' && fail "the train section's precision is not the step's"
"$stag" ir hits16.stag --step --stage optimized --precision f32 2>&1 | grep -q 'precision="bf16"' && fail "--precision f32 does not override the file"
"$stag" "${run[@]}" --precision bf16 --run-dir b1 >b1.out 2>&1 || { cat b1.out; fail "--precision bf16 failed"; }
"$stag" "${run[@]}" --precision bf16 --run-dir b2 >b2.out 2>&1 || { cat b2.out; fail "the second bf16 run failed"; }
cmp -s <(steps b1/log.jsonl) <(steps b2/log.jsonl) || fail "two bf16 runs differ"
cmp -s <(steps b1/log.jsonl) <(steps d0/log.jsonl) && fail "the bf16 run took the f32 run's steps"
python3 - "$(json b1 val_loss)" "$(json d0 val_loss)" <<'PY' || fail "bf16 and f32 validation losses after an epoch differ by more than 5%"
import sys
a, b = float(sys.argv[1]), float(sys.argv[2])
sys.exit(0 if abs(a - b) <= 0.05 * abs(b) else 1)
PY
"$stag" "${run[@]}" --precision f16 --run-dir b3 >b3.out 2>&1 && fail "--precision f16 ran"
grep -q "precision" b3.out || { cat b3.out; fail "no clear error for --precision f16"; }
echo "PASS"
