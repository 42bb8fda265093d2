#!/usr/bin/env bash
# The AOT program must need no LLVM, and must compute exactly what `stag run` computes (JIT)
# for the same model, seed, inputs and thread count.
# Usage: check.sh STAG RUNNER MODEL_FILE
set -euo pipefail
stag=$1 runner=$2 model=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ldd "$runner" | grep -qi llvm; then
  echo "FAIL: $runner links LLVM:"; ldd "$runner"; exit 1
fi
"$runner" "$tmp/aot" 7
args=()
for f in "$tmp"/aot/in_*.npy; do
  name=$(basename "$f" .npy); args+=(--input "${name#in_}=$f")
done
"$stag" run "$model" --seed 7 --threads 2 "${args[@]}" --out-dir "$tmp/jit"
n=0
for f in "$tmp"/jit/*.npy; do
  cmp "$f" "$tmp/aot/$(basename "$f")" || { echo "FAIL: $(basename "$f") differs between AOT and JIT"; exit 1; }
  n=$((n + 1))
done
[ $n -gt 0 ] || { echo "FAIL: no outputs"; exit 1; }
echo "AOT and JIT agree bit for bit on $n outputs; no LLVM in $(basename "$runner")"
