#!/usr/bin/env bash
# A training run killed with SIGKILL mid-epoch and resumed from its last checkpoint ends with
# the same parameters, bit for bit, as an uninterrupted run, and repeats its losses exactly.
# Usage: train_resume.sh STAG MODELS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
cd "$tmp"  # run folders (runs/MODEL-N) go here
trap 'kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=
common=(train "$models/mlp.stag" --epochs 1 --max-steps 400 --checkpoint-every 100 --validation 0.02 --no-test
        --seed 3 --threads 2)
fail() { echo "FAIL: $*"; exit 1; }

"$stag" "${common[@]}" --checkpoint "$tmp/a.ckpt" --log "$tmp/a.jsonl" >"$tmp/a.out" 2>&1 || { cat "$tmp/a.out"; fail "the uninterrupted run failed"; }

"$stag" "${common[@]}" --checkpoint "$tmp/b.ckpt" --log "$tmp/b.jsonl" >"$tmp/b.out" 2>&1 &
pid=$!
# Kill it once it is past step 150: between two checkpoints, mid-epoch.
for _ in $(seq 2000); do
  n=$(grep -c '"event":"step"' "$tmp/b.jsonl" 2>/dev/null)
  [ "${n:-0}" -ge 150 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
kill -9 $pid 2>/dev/null || fail "the run ended before it could be killed"
wait $pid 2>/dev/null
[ -f "$tmp/b.ckpt" ] || fail "no checkpoint survived the kill"
ls "$tmp" | grep -q '\.tmp' && fail "a temporary file was left behind"
"$stag" "${common[@]}" --checkpoint "$tmp/b.ckpt" --log "$tmp/b.jsonl" --resume "$tmp/b.ckpt" >"$tmp/c.out" 2>&1 || { cat "$tmp/c.out"; fail "the resumed run failed"; }
grep -q "resumed from" "$tmp/c.out" || fail "the run did not say it resumed"

cmp -s "$tmp/a.ckpt" "$tmp/b.ckpt" || fail "the final checkpoints differ"
# The losses of steps 301..400, which the resumed run computed again in any case (it resumed
# from a checkpoint at step 300 or earlier) and logged last.
grep '"event":"step"' "$tmp/a.jsonl" | tail -100 > "$tmp/a.steps"
grep '"event":"step"' "$tmp/b.jsonl" | tail -100 > "$tmp/b.steps"
cmp -s "$tmp/a.steps" "$tmp/b.steps" || { diff "$tmp/a.steps" "$tmp/b.steps" | head; fail "the losses after resuming differ"; }
[ "$(wc -l < "$tmp/a.steps")" -eq 100 ] || fail "expected 100 logged steps"

"$stag" eval "$models/mlp.stag" --weights "$tmp/a.ckpt" >"$tmp/e.out" 2>&1 || { cat "$tmp/e.out"; fail "stag eval failed"; }
grep -q "10000 examples" "$tmp/e.out" || fail "stag eval did not score the test set"
echo "train_resume: killed at $(grep -c '"event":"step"' "$tmp/b.jsonl") logged steps; resumed; 1 passed, 0 failed"
