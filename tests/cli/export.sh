#!/usr/bin/env bash
# `stag export` as a user meets it: a checkpoint's weights exported and run back to the same
# outputs bit for bit, and each mistake one clear message with the documented exit status
# (1: a model ONNX cannot express, 2: a file that cannot be read or written).
# Usage: export.sh STAG MODELS_DIR
set -u
stag=$1 models=$2
mlp=$models/mlp.stag
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/expect_lib.sh"
check() { if "$@"; then pass=$((pass + 1)); else echo "FAIL: $*"; fail=$((fail + 1)); fi; }

# A trained step's weights: exported, then run from the ONNX file on the same input.
"$stag" run "$mlp" --batch 4 --save-inputs "$tmp/in" >/dev/null || { echo "FAIL: mlp.stag does not run"; exit 1; }
"$stag" step "$mlp" --batch 4 --input "x=$tmp/in/x.npy" "y=$tmp/in/y.npy" -o "$tmp/w.safetensors" >/dev/null || { echo "FAIL: step"; exit 1; }
check "$stag" export "$mlp" --batch 4 --weights "$tmp/w.safetensors" -o "$tmp/mlp.onnx" >/dev/null
check "$stag" run "$mlp" --batch 4 --weights "$tmp/w.safetensors" --input "x=$tmp/in/x.npy" --out-dir "$tmp/a" >/dev/null
check "$stag" run "$tmp/mlp.onnx" --input "x=$tmp/in/x.npy" --out-dir "$tmp/b" >/dev/null
check cmp -s "$tmp/a/logits.npy" "$tmp/b/logits.npy"
check test ! -e "$tmp/b/loss.npy"  # loss and metrics stay behind: they read the labels

expect 2 "cannot open '$tmp/missing.stag'" -- export "$tmp/missing.stag" -o "$tmp/x.onnx"
expect 2 "cannot write '$tmp/no/such/dir/x.onnx'" -- export "$mlp" -o "$tmp/no/such/dir/x.onnx"
expect 2 "cannot write '$tmp'" -- export "$mlp" -o "$tmp"
expect 2 "--output is required" -- export "$mlp"
expect 2 "cannot open '$tmp/none.safetensors'" -- export "$mlp" -o "$tmp/x.onnx" --weights "$tmp/none.safetensors"
expect 1 "w.safetensors: does not fit model lenet5:" -- export "$models/lenet5.stag" -o "$tmp/x.onnx" --weights "$tmp/w.safetensors"
expect 1 "graph lstm_lm cannot be exported to ONNX: no ONNX mapping for scan (node %" -- export "$models/lstm_lm.stag" -o "$tmp/x.onnx"
check test ! -e "$tmp/x.onnx"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
