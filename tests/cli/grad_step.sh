#!/usr/bin/env bash
# `stag grad` and `stag step` as documented: the loss `stag grad` writes is the forward loss of
# `stag run` on the same weights and inputs, every trainable parameter has its gradient, and
# `stag step` lowers the loss on its batch and writes parameters and optimizer state.
# Usage: grad_step.sh STAG MODELS_DIR
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
model=$models/lenet5.stag

"$stag" run "$model" --batch 8 --seed 4 --save-inputs "$tmp/in" --out-dir "$tmp/out" > "$tmp/run.out" || fail "stag run failed"
"$stag" step "$model" --batch 8 --steps 1 --lr 1e-9 --seed 4 --input "x=$tmp/in/x.npy" --input "y=$tmp/in/y.npy" -o "$tmp/w.safetensors" > /dev/null \
  || fail "stag step failed"
"$stag" grad "$model" --batch 8 --weights "$tmp/w.safetensors" --input "x=$tmp/in/x.npy" --input "y=$tmp/in/y.npy" -o "$tmp/g.safetensors" > "$tmp/grad.out" \
  || { cat "$tmp/grad.out"; fail "stag grad failed"; }
grep -q "wrote the loss and 10 gradients" "$tmp/grad.out" || { cat "$tmp/grad.out"; fail "expected the gradients of LeNet-5's 10 parameters"; }
# stag run's loss on freshly initialised weights vs stag grad's on weights one 1e-9 step away.
run_loss=$(grep -E '^  loss ' "$tmp/run.out" | awk '{print $4}')
grad_loss=$(grep '^loss ' "$tmp/grad.out" | awk '{print $2}')
awk -v a="$run_loss" -v b="$grad_loss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4 * (a < 0 ? -a : a)) }' \
  || fail "stag grad's loss $grad_loss differs from stag run's $run_loss"
"$stag" step "$model" --batch 8 --steps 20 --seed 4 --input "x=$tmp/in/x.npy" --input "y=$tmp/in/y.npy" -o "$tmp/s.safetensors" > "$tmp/step.out" \
  || fail "stag step failed"
first=$(grep '^step 1 loss' "$tmp/step.out" | awk '{print $4}')
last=$(grep '^step 20 loss' "$tmp/step.out" | awk '{print $4}')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }' || { cat "$tmp/step.out"; fail "20 steps did not halve the loss"; }
"$stag" grad "$model" --batch 8 --input "x=$tmp/in/y.npy" --input "y=$tmp/in/y.npy" -o "$tmp/bad.safetensors" 2> "$tmp/bad.err" && fail "a wrong input was accepted"
grep -q "input 'x' must be f32\[8,1,28,28\], the file holds i64\[8\]" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "unclear error for a wrong input"; }
# Weights of another model (same names, other shapes) are refused, not fed to compiled code.
"$stag" step "$models/mlp.stag" --batch 8 --steps 1 --input "x=$tmp/in/x.npy" --input "y=$tmp/in/y.npy" -o "$tmp/mlp.safetensors" > /dev/null \
  || fail "stag step on the MLP failed"
"$stag" step "$model" --batch 8 --weights "$tmp/mlp.safetensors" --input "x=$tmp/in/x.npy" --input "y=$tmp/in/y.npy" -o "$tmp/x.safetensors" 2> "$tmp/bad.err" \
  && fail "another model's weights were accepted"
grep -q "parameter 'fc1.bias' is f32\[512\] in the file, the model needs f32\[120\]" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "unclear error for wrong weights"; }
# A diverging step is not applied, and says so; the parameters written stay finite.
"$stag" step "$model" --batch 8 --steps 6 --lr 1e30 --optimizer sgd --seed 4 --input "x=$tmp/in/x.npy" --input "y=$tmp/in/y.npy" \
  -o "$tmp/d.safetensors" > "$tmp/diverge.out" || fail "stag step at lr 1e30 failed"
grep -q "^step [0-9] was not applied: the loss or a gradient is not finite" "$tmp/diverge.out" || { cat "$tmp/diverge.out"; fail "no step was reported not applied"; }
n=$(od -An -t u8 -N 8 "$tmp/d.safetensors" | tr -d ' ')
tail -c +$((9 + n)) "$tmp/d.safetensors" | od -An -v -t f4 | grep -qiE 'nan|inf' && fail "stag step wrote a NaN or an infinity"
echo "grad_step: loss $grad_loss = $run_loss; 20 steps: $first -> $last; 1 passed, 0 failed"
