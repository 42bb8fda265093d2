#!/usr/bin/env bash
# `stag build` writes a standalone trainer that needs no LLVM and reproduces `stag train`'s
# loss sequence for the same seed and thread count, keeps a run folder as `stag train` does, and
# stops on SIGINT with a checkpoint.
# Usage: build_trainer.sh STAG MODELS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=
cd "$tmp"
fail() { echo "FAIL: $*"; exit 1; }
settings=(--epochs 1 --max-steps 40 --validation 0.02 --no-test --seed 5 --threads 2)

"$stag" build "$models/mlp.stag" -o "$tmp/trainer" >"$tmp/build.out" 2>&1 || { cat "$tmp/build.out"; fail "stag build failed"; }
if ldd "$tmp/trainer" | grep -qi 'llvm\|libmpi'; then ldd "$tmp/trainer"; fail "the trainer links LLVM or MPI"; fi
"$tmp/trainer" "${settings[@]}" --log "$tmp/aot.jsonl" >"$tmp/aot.out" 2>&1 || { cat "$tmp/aot.out"; fail "the trainer failed"; }
"$stag" train "$models/mlp.stag" "${settings[@]}" --log "$tmp/jit.jsonl" >"$tmp/jit.out" 2>&1 || { cat "$tmp/jit.out"; fail "stag train failed"; }
grep '"event":"step"' "$tmp/aot.jsonl" > "$tmp/aot.steps"
grep '"event":"step"' "$tmp/jit.jsonl" > "$tmp/jit.steps"
[ "$(wc -l < "$tmp/aot.steps")" -eq 40 ] || fail "expected 40 steps"
cmp -s "$tmp/aot.steps" "$tmp/jit.steps" || { diff "$tmp/aot.steps" "$tmp/jit.steps" | head; fail "the loss sequences differ"; }
"$tmp/trainer" --epochs 0 >"$tmp/bad.out" 2>&1 && fail "a bad flag was accepted"
# The trainer's run folder is runs/mlp-1, stag train's runs/mlp-2: the same final checkpoint.
grep -q '"model_hash_of": "manifest"' runs/mlp-1/run.json || fail "the trainer's run.json lacks the manifest's hash"
cmp -s runs/mlp-1/last.safetensors runs/mlp-2/last.safetensors || fail "the trainer's final checkpoint differs from stag train's"
"$tmp/trainer" --epochs 1 --max-steps 2000 --validation 0.02 --no-test --threads 2 --run-dir int >int.out 2>int.err &
pid=$!
for _ in $(seq 3000); do
  [ "$(grep -c '"event":"step"' int/log.jsonl 2>/dev/null)" -ge 20 ] 2>/dev/null && break
  sleep 0.01
done
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || { cat int.err; fail "the trainer's exit status after SIGINT: $rc, want 130"; }
grep -q "stopped by SIGINT after step [0-9]*; checkpoint: int/last.safetensors" int.err || { cat int.err; fail "the trainer did not say where it stopped"; }
echo "build_trainer: 40 losses and the final checkpoint equal bit for bit; no LLVM in the trainer; SIGINT saved; 1 passed, 0 failed"
