#!/usr/bin/env bash
# A diverging run (SGD at lr 1e8): a step whose loss or gradients are not finite is not applied.
# By default the run stops with exit 1 naming the step and the first such gradient, and its
# checkpoint holds only finite values; --on-nonfinite skip (or on_nonfinite = "skip" in the train
# section) goes on and logs the skipped steps; resuming the stop's checkpoint with skip repeats
# the skipping run bit for bit. Built trainers do the same.
# Usage: train_nonfinite.sh STAG MODELS_DIR TESTS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 models=$2 tests=$3
source "$tests/cli/run_lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
run=(train "$models/mlp.stag" --lr 1e8 --optimizer sgd --validation 0.02 --no-test --seed 3 --threads 2)
# od prints a NaN or an infinity as nan or inf.
finite() { ! tensors "$1" | od -An -v -t f4 | grep -qiE 'nan|inf'; }

"$stag" "${run[@]}" --max-steps 100 --run-dir stop >stop.out 2>&1
rc=$?
[ $rc -eq 1 ] || { cat stop.out; fail "the diverging run exited with $rc, not 1"; }
grep -qE '^stag: error: step [0-9]+: the loss is (nan|-nan|inf|-inf); first non-finite gradient: fc[123]\.(weight|bias); the step was not applied; checkpoint: stop/last.safetensors' stop.out ||
  { cat stop.out; fail "the error does not name the step and the gradient"; }
bad=$(grep -o 'error: step [0-9]*' stop.out | grep -o '[0-9]*$')
[ -f stop/last.safetensors ] || fail "no checkpoint after the stop"
finite stop/last.safetensors || fail "the checkpoint holds a NaN or an infinity"
[ "$(steps stop/log.jsonl | wc -l)" -eq $((bad - 1)) ] || fail "the log does not end at step $((bad - 1)) before the bad one"
grep -q "\"event\":\"skipped\",\"step\":$bad," stop/log.jsonl || fail "the log does not record skipped step $bad"

"$stag" "${run[@]}" --max-steps 40 --on-nonfinite skip --run-dir skip >skip.out 2>&1 || { cat skip.out; fail "the skipping run failed"; }
grep -q "stag: warning: step $bad: the loss is .*; first non-finite gradient: .*; the step was skipped (1 so far)" skip.out ||
  { cat skip.out; fail "no warning for the first skipped step"; }
[ "$(grep -c 'stag: warning' skip.out)" -le 10 ] || fail "the warnings are not rate-limited"
skipped=$(grep -c '"event":"skipped"' skip/log.jsonl)
[ "$skipped" -ge 2 ] || fail "only $skipped steps were skipped"
grep '"event":"epoch"' skip/log.jsonl | grep -q "\"skipped_steps\":$skipped" || fail "the epoch record does not count $skipped skipped steps"
finite skip/last.safetensors || fail "the skipping run's checkpoint holds a NaN or an infinity"

# The stop's checkpoint resumed with skip: the same steps, the same parameters, bit for bit.
"$stag" "${run[@]}" --max-steps 40 --on-nonfinite skip --resume stop >resume.out 2>&1 || { cat resume.out; fail "resuming the stop failed"; }
same_tensors stop/last.safetensors skip/last.safetensors || fail "resuming the stop with skip differs from the skipping run"

# The train section's setting, and its check.
sed 's/epochs = 10/epochs = 10\n    on_nonfinite = "skip"/' "$models/mlp.stag" > section.stag
"$stag" train section.stag --lr 1e8 --optimizer sgd --validation 0.02 --no-test --seed 3 --threads 2 --max-steps 40 --run-dir section >section.out 2>&1 ||
  { cat section.out; fail "on_nonfinite = \"skip\" did not skip"; }
same_tensors section/last.safetensors skip/last.safetensors || fail "the train section's skip differs from --on-nonfinite skip"
sed 's/epochs = 10/epochs = 10\n    on_nonfinite = "ignore"/' "$models/mlp.stag" > bad.stag
"$stag" train bad.stag --max-steps 1 --no-save >bad.out 2>&1 && fail "on_nonfinite = \"ignore\" was accepted"
grep -q 'bad.stag:[0-9]*:[0-9]*: .*on_nonfinite must be "stop" or "skip", got "ignore"' bad.out || { cat bad.out; fail "no located error for a bad on_nonfinite"; }
"$stag" "${run[@]}" --on-nonfinite ignore --no-save >flag.out 2>&1 && fail "--on-nonfinite ignore was accepted"

# A built trainer shares the loop and the flag.
"$stag" build "$models/mlp.stag" --optimizer sgd -o trainer >build.out 2>&1 || { cat build.out; fail "stag build failed"; }
./trainer --lr 1e8 --validation 0.02 --no-test --seed 3 --threads 2 --max-steps 40 --run-dir built >built.out 2>&1 &&
  fail "the built trainer went on past a non-finite step"
grep -q "step $bad: the loss is .*; first non-finite gradient: .*; the step was not applied" built.out ||
  { cat built.out; fail "the built trainer does not name the step and the gradient"; }
./trainer --lr 1e8 --validation 0.02 --no-test --seed 3 --threads 2 --max-steps 40 --run-dir built-skip --on-nonfinite skip >built-skip.out 2>&1 ||
  { cat built-skip.out; fail "the built trainer's skipping run failed"; }
same_tensors built-skip/last.safetensors skip/last.safetensors || fail "the built trainer skips differently from stag train"
echo "PASS: step $bad stopped; $skipped of 40 steps skipped"
