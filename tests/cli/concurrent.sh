#!/usr/bin/env bash
# Concurrent use, as several users or jobs on one machine do it: processes compiling the same
# model at once into one empty JIT cache all succeed with equal outputs and leave the cache
# whole; a checkpoint read while a training run rewrites it is always a complete checkpoint.
# Usage: concurrent.sh STAG MODELS_DIR
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
model=$models/mlp.stag

# Four compilations of one model race to store the same cache entries.
for i in 1 2 3 4; do
  STAG_JIT_CACHE=$tmp/cache "$stag" run "$model" --seed 5 --threads 1 --out-dir "$tmp/out$i" > "$tmp/run$i.log" 2>&1 &
done
for i in 1 2 3 4; do wait -n || fail "a concurrent compilation failed: $(cat "$tmp"/run*.log)"; done
for i in 2 3 4; do
  for f in logits loss; do cmp -s "$tmp/out1/$f.npy" "$tmp/out$i/$f.npy" || fail "run $i computed another $f"; done
done
ls "$tmp/cache" | grep -q '\.tmp$' && fail "a temporary file was left in the cache"
STAG_JIT_CACHE=$tmp/cache "$stag" run "$model" --seed 5 --threads 1 --out-dir "$tmp/warm" > "$tmp/warm.log" 2>&1 \
  || { cat "$tmp/warm.log"; fail "the run after the race failed"; }
grep -qE "([0-9]+) of \1 parts? from the JIT cache" "$tmp/warm.log" \
  || { cat "$tmp/warm.log"; fail "the entries the racing runs stored are not whole"; }
cmp -s "$tmp/out1/logits.npy" "$tmp/warm/logits.npy" || fail "the cached code computes other logits"

# A reader loads the checkpoint while training rewrites it after every step.
ckpt=$tmp/live.safetensors
STAG_JIT_CACHE=$tmp/cache "$stag" train "$model" --max-steps 400 --batch 16 --threads 1 \
  --no-save --no-test --checkpoint "$ckpt" --checkpoint-every 1 > "$tmp/train.log" 2>&1 &
trainer=$!
reads=0
while kill -0 "$trainer" 2>/dev/null; do
  if [ -f "$ckpt" ]; then
    STAG_JIT_CACHE=$tmp/cache "$stag" run "$model" --weights "$ckpt" --threads 1 > "$tmp/read.log" 2>&1 \
      || { cat "$tmp/read.log"; fail "a checkpoint read during training was not whole (read $((reads + 1)))"; }
    reads=$((reads + 1))
  fi
done
wait "$trainer" || { cat "$tmp/train.log"; fail "the training run failed"; }
[ "$reads" -ge 3 ] || fail "only $reads reads overlapped the training run"
ls "$tmp" | grep -q '^\.' && fail "a temporary checkpoint file was left: $(ls -a "$tmp")"
echo "ok: 4 racing compilations, $reads checkpoint reads during training"
