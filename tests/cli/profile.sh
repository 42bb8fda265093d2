#!/usr/bin/env bash
# `--profile` as documented: `stag run` and `stag step` print a table per function with the
# matmul kernels and their exact static flop counts, the shares of the function's time add up
# to about 100%, the trace file is written, and the outputs are bit for bit those of a run
# without profiling (the instrumentation only brackets kernel calls). Timings are not checked.
# Usage: profile.sh STAG MODELS_DIR
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
model=$models/mlp.stag
batch=$(awk '$1 == "batch" { print $2; exit }' "$model")
[ -n "$batch" ] || fail "no batch in $model"
# fc1's product plus its fused epilogue: the bias add (relu is a select: no flop).
fc1_flops=$((2 * batch * 784 * 512 + batch * 512))

# Rows of the table of function $2 in file $1: from its heading to the next blank or heading.
table() { awk -v f="$2" '/^profile of / { on = ($3 == f ":"); next } on && /^  / && !/^  kernel / { print }' "$1"; }
# The shares (%) of a table's rows: the fifth field from the end.
percent_sum() { table "$1" "$2" | awk '{ s += $(NF - 4) } END { printf "%.2f", s }'; }
check_sum() {
  local sum
  sum=$(percent_sum "$1" "$2")
  awk -v s="$sum" 'BEGIN { exit !(s >= 90 && s <= 100.5) }' || { cat "$1"; fail "$2: the shares add up to $sum%, not about 100%"; }
}

"$stag" run "$model" --seed 3 --repeat 3 --save-inputs "$tmp/in" --out-dir "$tmp/plain" > "$tmp/plain.out" || fail "stag run failed"
"$stag" run "$model" --seed 3 --repeat 3 --out-dir "$tmp/prof" --profile --profile-out "$tmp/trace.json" > "$tmp/run.out" \
  || { cat "$tmp/run.out"; fail "stag run --profile failed"; }
grep -q "^profile of forward: 3 calls, " "$tmp/run.out" || { cat "$tmp/run.out"; fail "no forward table for 3 calls"; }
matmuls=$(table "$tmp/run.out" forward | grep -cE '^  k[0-9]+_matmul ')
[ "$matmuls" = 3 ] || { cat "$tmp/run.out"; fail "expected the MLP's 3 matmul kernels, found $matmuls"; }
# The first matmul (lowest kernel number) is fc1: x[B,784] times fc1.weight[512,784] transposed.
first=$(table "$tmp/run.out" forward | awk '$1 ~ /^k[0-9]+_matmul$/ { n = substr($1, 2) + 0; print n, $(NF - 2) }' | sort -n | head -1 | awk '{ print $2 }')
[ "$first" = "$fc1_flops" ] || { cat "$tmp/run.out"; fail "fc1's matmul: $first flops a call, want 2*$batch*784*512 + $batch*512 = $fc1_flops"; }
check_sum "$tmp/run.out" forward
grep -q '"traceEvents"' "$tmp/trace.json" || fail "--profile-out wrote no trace"
for f in logits loss; do
  cmp -s "$tmp/plain/$f.npy" "$tmp/prof/$f.npy" || fail "$f differs with --profile"
done

# A short table sums the rest on one line, and the shares still add up.
"$stag" run "$model" --seed 3 --profile --profile-top 2 > "$tmp/top.out" || fail "stag run --profile-top failed"
[ "$(table "$tmp/top.out" forward | wc -l)" = 3 ] || { cat "$tmp/top.out"; fail "--profile-top 2: expected 2 rows and the rest"; }
table "$tmp/top.out" forward | tail -1 | grep -qE '^  \([0-9]+ more kernels\) ' || { cat "$tmp/top.out"; fail "no line for the rest"; }
check_sum "$tmp/top.out" forward

feed=(--input "x=$tmp/in/x.npy" --input "y=$tmp/in/y.npy" --steps 3 --seed 3)
"$stag" step "$model" "${feed[@]}" -o "$tmp/plain.safetensors" > /dev/null || fail "stag step failed"
"$stag" step "$model" "${feed[@]}" -o "$tmp/prof.safetensors" --profile > "$tmp/step.out" || { cat "$tmp/step.out"; fail "stag step --profile failed"; }
grep -q "^profile of train_step: 3 calls, " "$tmp/step.out" || { cat "$tmp/step.out"; fail "no train_step table for 3 calls"; }
grep -q "^profile of init" "$tmp/step.out" && fail "init was profiled"
table "$tmp/step.out" train_step | grep -qE '^  k[0-9]+_matmul ' || { cat "$tmp/step.out"; fail "no matmul in the train step's table"; }
step_fc1=$(table "$tmp/step.out" train_step | awk '$1 ~ /^k[0-9]+_matmul$/ { n = substr($1, 2) + 0; print n, $(NF - 2) }' | sort -n | head -1 | awk '{ print $2 }')
[ "$step_fc1" = "$fc1_flops" ] || { cat "$tmp/step.out"; fail "the train step's first matmul: $step_fc1 flops, want $fc1_flops"; }
check_sum "$tmp/step.out" train_step
cmp -s "$tmp/plain.safetensors" "$tmp/prof.safetensors" || fail "stag step --profile changed the parameters"

echo "profile: forward and train_step tables, fc1 $fc1_flops flops a call, shares $(percent_sum "$tmp/run.out" forward)% and $(percent_sum "$tmp/step.out" train_step)%; outputs bit-identical; 1 passed, 0 failed"
