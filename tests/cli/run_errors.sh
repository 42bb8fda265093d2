#!/usr/bin/env bash
# `stag run` and `stag compile` as a user meets them: each mistake gives one clear message
# and the documented exit status (1: bad model or data, 2: bad command line or missing file).
# Usage: run_errors.sh STAG TESTS_DIR
set -u
stag=$1 tests=$2
model=$tests/golden/ir/mlp.ir
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/expect_lib.sh"

# Files to feed: outputs of a good run have known names, types and shapes.
"$stag" run "$model" --seed 1 --out-dir "$tmp/good" >/dev/null || { echo "FAIL: the good run failed"; exit 1; }
"$stag" run "$tests/golden/ir/ok_sources.ir" --out-dir "$tmp/other" >/dev/null 2>&1 || true

expect 1 "model mlp has no input 'xx' (did you mean 'x'?); its inputs: x, y" -- run "$model" --input "xx=$tmp/good/logits.npy"
expect 1 "input 'x' must be f32[64,784], the file holds f32[64,512]" -- run "$model" --input "x=$tmp/good/logits.npy"
expect 1 "input 'y' must be i64[64], the file holds f32[]" -- run "$model" --input "y=$tmp/good/loss.npy"
expect 2 "--input takes NAME=FILE.npy, got 'x'" -- run "$model" --input x
expect 2 "input 'x' is given twice" -- run "$model" --input "x=$tmp/good/logits.npy" --input "x=$tmp/good/logits.npy"
expect 2 "cannot open '$tmp/none.npy'" -- run "$model" --input "x=$tmp/none.npy"
expect 2 "cannot open '$tmp/none.safetensors'" -- run "$model" --weights "$tmp/none.safetensors"
printf 'not a safetensors file' > "$tmp/bad.safetensors"
expect 1 "bad.safetensors" -- run "$model" --weights "$tmp/bad.safetensors"
printf '\x93NUMPY garbage' > "$tmp/bad.npy"
expect 1 "bad.npy" -- run "$model" --input "x=$tmp/bad.npy"
expect 2 "The following argument was not expected: --bogus" -- run "$model" --bogus
expect 2 "cannot open '$tmp/missing.stag'" -- run "$tmp/missing.stag"
expect 2 "--output is required" -- compile "$model"
expect 2 "--threads: Value 0 not in range" -- run "$model" --threads 0
expect 1 "embedding %e: index 7 is out of range [0, 4)" -- run "$tests/cli/bad_index.ir"
# A scan nested in a scan's body compiles to a loop inside a loop: tanh applied 2 x 3 times
# to 0.5, the inner carry starting again from the outer one at every outer step.
scan=$tests/cli/scan_nested.ir
if "$stag" run "$scan" 2>&1 | grep -qF "mean 0.351992" && "$stag" ir "$scan" --stage kernels 2>&1 | grep -qF "loop t1 in 3 steps" &&
  "$stag" compile "$scan" --output "$tmp/scan.o" >/dev/null 2>&1; then pass=$((pass + 1)); else
  echo "FAIL: the nested scan of scan_nested.ir does not compile to tanh^6(0.5) = 0.351992 in a loop inside a loop"; fail=$((fail + 1))
fi
# A scan with a loss: its training step compiles, the backward a reversed loop.
if "$stag" ir "$tests/cli/scan_loss.ir" --step --stage kernels 2>&1 | grep -qF "loop t in reversed 5 steps"; then pass=$((pass + 1)); else
  echo "FAIL: the training step of scan_loss.ir has no reversed loop of 5 steps"; fail=$((fail + 1))
fi

# Memory as a user error: a model bigger than the machine fails before allocating, naming what
# needs the memory and how much there is; STAG_MEMORY_AVAILABLE (bytes) fakes the amount.
big=$tests/cli/big_linear.stag mlp=$tests/../models/mlp.stag
needs_big="model big needs 80.0 GB (parameters 80.0 GB, optimizer state 0 bytes, workspace 192 bytes, inputs and outputs 9.6 MB); "
expect 1 "$needs_big" -- run "$big"
expect 1 " GB are available" -- run "$big"
expect 1 "$needs_big" -- bench "$big"
expect 1 "model big needs 320.0 GB (parameters 80.0 GB, optimizer state 160.0 GB, workspace 80.0 GB, inputs and outputs 9.6 MB); " -- train "$big"
expect 1 "model mlp needs 6.7 TB (parameters 2.1 MB, optimizer state 0 bytes, workspace 3.3 TB, inputs and outputs 3.4 TB); " -- run "$mlp" --batch 1073741824
needs_mlp="model mlp needs 1.9 MB (parameters 1.6 MB, optimizer state 0 bytes, workspace 576 bytes, inputs and outputs 332.3 KB); 1.8 MB are available"
STAG_MEMORY_AVAILABLE=1800000 expect 1 "$needs_mlp" -- run "$model"
STAG_MEMORY_AVAILABLE=1950000 "$stag" run "$model" >/dev/null 2>&1 && pass=$((pass + 1)) || { echo "FAIL: mlp.ir does not run in 1.95 MB"; fail=$((fail + 1)); }
"$stag" run "$mlp" --save-inputs "$tmp/in" >/dev/null || { echo "FAIL: mlp.stag does not run"; fail=$((fail + 1)); }
needs_step="model mlp needs 8.9 MB (parameters 2.1 MB, optimizer state 4.3 MB, workspace 2.3 MB, inputs and outputs 203.8 KB); 8.0 MB are available"
STAG_MEMORY_AVAILABLE=8000000 expect 1 "$needs_step" -- step "$mlp" --input "x=$tmp/in/x.npy" "y=$tmp/in/y.npy" -o "$tmp/w.safetensors"
STAG_MEMORY_AVAILABLE=8000000 expect 1 "$needs_step" -- train "$mlp" --epochs 1
STAG_MEMORY_AVAILABLE=12k expect 1 "STAG_MEMORY_AVAILABLE must be a number of bytes, got '12k'" -- run "$model"
[ -f "$tmp/w.safetensors" ] && { echo "FAIL: step wrote parameters it could not compute"; fail=$((fail + 1)); }
# The kernel IR shows the same figures without allocating anything.
expect_out() {
  local text=$1; shift 2
  if "$stag" "$@" 2>"$tmp/err" | grep -qF -- "$text"; then pass=$((pass + 1)); else
    echo "FAIL: stag $* does not print: $text"; cat "$tmp/err"; fail=$((fail + 1))
  fi
}
expect_out "  memory peak 192 bytes (workspace), parameters 80.0 GB, optimizer state 0 bytes, inputs and outputs 9.6 MB: 80.0 GB in all" -- ir "$big" --stage kernels
expect_out "  memory peak 80.0 GB (workspace), parameters 80.0 GB, optimizer state 160.0 GB, inputs and outputs 9.6 MB: 320.0 GB in all" -- ir "$big" --stage kernels --step
expect_out "  memory peak 2.3 MB (workspace), parameters 2.1 MB, optimizer state 4.3 MB, inputs and outputs 203.8 KB: 8.9 MB in all" -- ir "$mlp" --stage kernels --step
# A standalone trainer checks the same before it allocates.
"$stag" build "$mlp" -o "$tmp/trainer" >/dev/null || { echo "FAIL: stag build"; fail=$((fail + 1)); }
STAG_MEMORY_AVAILABLE=8000000 "$tmp/trainer" --epochs 1 >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -qF "error: $needs_step" "$tmp/err"; then pass=$((pass + 1)); else
  echo "FAIL: the built trainer -> exit $rc (want 1), stderr:"; cat "$tmp/err"; fail=$((fail + 1))
fi

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
