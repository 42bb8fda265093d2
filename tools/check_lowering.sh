#!/usr/bin/env bash
# Prints the kernel IR of every catalog model and golden file into a folder, so that two
# builds' lowerings can be diffed: a refactoring of compiler/lower/ must leave it byte-identical.
# Each catalog model's training step too (its gradients' kernels and the fused updates), as
# `stag build` lowers it after the optimizer's passes.
#   tools/check_lowering.sh OUT_DIR [STAG]      then: diff -r BEFORE_DIR OUT_DIR
set -u
out=${1:?usage: check_lowering.sh OUT_DIR [STAG]}
stag=${2:-build/tools/stag}
cd "$(dirname "$0")/.."
mkdir -p "$out"

# One file per input: the kernel IR, or the exit status and message when it does not lower.
dump() {
  local name=$1
  shift
  local file="$out/$(echo "$name" | tr '/' '_').kernels"
  "$stag" ir "$@" --stage kernels >"$file" 2>"$file.err"
  local rc=$?
  [ $rc -eq 0 ] || echo "exit $rc" >>"$file.err"
  [ -s "$file.err" ] || rm -f "$file.err"
}

for m in models/*.stag; do dump "$m" "$m"; done
dump models/dcgan.stag.discriminator models/dcgan.stag --model discriminator
while IFS= read -r f; do dump "$f" "$f"; done < <(find tests/golden -name '*.ir' -o -name '*.stag' | sort)

# The training step's kernel IR, printed after the last pass (stderr; stdout has timings).
for m in models/*.stag; do
  file="$out/$(echo "$m" | tr '/' '_').train_step"
  "$stag" build "$m" -o "$out/trainer" --print-after plan-memory >/dev/null 2>"$file" || echo "exit $?" >>"$file"
  rm -f "$out/trainer"
done
ls "$out" | grep -vc '\.err$' | xargs echo "lowered:"
ls "$out" | grep -c '\.err$' | xargs echo "did not lower:"
