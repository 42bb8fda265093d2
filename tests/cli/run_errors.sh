#!/usr/bin/env bash
# `stag run` and `stag compile` as a user meets them: each mistake gives one clear message
# and the documented exit status (1: bad model or data, 2: bad command line or missing file).
# Usage: run_errors.sh STAG TESTS_DIR
set -u
stag=$1 tests=$2
model=$tests/golden/ir/mlp.ir
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# expect STATUS "TEXT" -- ARGS...: the command exits with STATUS and stderr contains TEXT.
expect() {
  local want=$1 text=$2; shift 3
  "$stag" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq "$want" ] && grep -qF -- "$text" "$tmp/err"; then pass=$((pass + 1)); else
    echo "FAIL: stag $* -> exit $rc (want $want), stderr:"; cat "$tmp/err"; echo "(wanted: $text)"; fail=$((fail + 1))
  fi
}

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
# Scan runs in the reference interpreter only: the compiled stages stop at the node.
scan=$tests/golden/ir/ok_scan.ir
expect 1 "error: scan: no compiled lowering yet" -- run "$scan"
expect 1 "error: scan: no compiled lowering yet" -- ir "$scan" --stage kernels
expect 1 "error: scan: no compiled lowering yet" -- compile "$scan" --output "$tmp/scan.o"
expect 1 "error: scan: no compiled lowering yet" -- ir "$tests/cli/scan_loss.ir" --step --stage kernels

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
