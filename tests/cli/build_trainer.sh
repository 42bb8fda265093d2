#!/usr/bin/env bash
# `stag build` writes a standalone trainer that needs no LLVM and reproduces `stag train`'s
# loss sequence for the same seed and thread count.
# Usage: build_trainer.sh STAG MODELS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
settings=(--epochs 1 --max-steps 40 --validation 0.02 --no-test --seed 5 --threads 2)

"$stag" build "$models/mlp.stag" -o "$tmp/trainer" >"$tmp/build.out" 2>&1 || { cat "$tmp/build.out"; fail "stag build failed"; }
if ldd "$tmp/trainer" | grep -qi llvm; then ldd "$tmp/trainer"; fail "the trainer links LLVM"; fi
"$tmp/trainer" "${settings[@]}" --log "$tmp/aot.jsonl" >"$tmp/aot.out" 2>&1 || { cat "$tmp/aot.out"; fail "the trainer failed"; }
"$stag" train "$models/mlp.stag" "${settings[@]}" --log "$tmp/jit.jsonl" >"$tmp/jit.out" 2>&1 || { cat "$tmp/jit.out"; fail "stag train failed"; }
grep '"event":"step"' "$tmp/aot.jsonl" > "$tmp/aot.steps"
grep '"event":"step"' "$tmp/jit.jsonl" > "$tmp/jit.steps"
[ "$(wc -l < "$tmp/aot.steps")" -eq 40 ] || fail "expected 40 steps"
cmp -s "$tmp/aot.steps" "$tmp/jit.steps" || { diff "$tmp/aot.steps" "$tmp/jit.steps" | head; fail "the loss sequences differ"; }
"$tmp/trainer" --epochs 0 >"$tmp/bad.out" 2>&1 && fail "a bad flag was accepted"
echo "build_trainer: 40 losses equal bit for bit; no LLVM in the trainer; 1 passed, 0 failed"
