#!/usr/bin/env bash
# Training an imported ONNX model as a PyTorch user would (onnx/make_fixtures.py exported the
# models): a CNN fine-tunes on Fashion-MNIST from its initializers and its loss falls; `stag eval`
# of the checkpoint repeats the run's test scores; --freeze keeps ONNX-named parameters bit for
# bit; --init-from takes an ONNX file's initializers by name into an ONNX model and into a stag
# model; a resumed run starts from its checkpoint; a built trainer starts from the initializers;
# the flags' errors.
# Usage: onnx_train.sh STAG TESTS_DIR   (needs the dataset-fashion-mnist package)
set -u
stag=$1 tests=$2
source "$tests/cli/run_lib.sh"
onnx=$tests/cli/onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
loss=(--loss cross_entropy:scores:label)
train=(train "$onnx/classifier.onnx" "${loss[@]}" --data fashion-mnist --batch 64 --threads 2 --no-save)

# Whether the bytes of tensor $2 of checkpoint $1 occur in file $3: a frozen parameter's f32
# values are the raw_data PyTorch wrote into the ONNX file.
bytes_in() {
  python3 - "$@" <<'EOF'
import json, struct, sys
ckpt, name, other = sys.argv[1:]
b = open(ckpt, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
start, end = json.loads(b[8:8 + n])[name]["data_offsets"]
sys.exit(0 if b[8 + n + start:8 + n + end] in open(other, "rb").read() else 1)
EOF
}
# The mean of a log's step losses $2..$3.
mean_loss() { steps "$1" | sed -n "$2,$3p" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' | awk '{ s += $1 } END { print s / NR }'; }

# Fine-tuning from the initializers, --freeze by ONNX name: conv keeps the exported bytes.
"$stag" "${train[@]}" --max-steps 40 --freeze 'conv.*' --checkpoint a.st --log a.jsonl >a.out 2>&1 || { cat a.out; fail "training failed"; }
grep -q "onnx: input image f32\[64,1,28,28\] takes the examples of fashion-mnist, input label i64\[64\] their labels" a.out ||
  { cat a.out; fail "the run does not say which input is the data and which the label"; }
grep -q "initialised 6 of 6 parameters from $onnx/classifier.onnx" a.out || { cat a.out; fail "not started from the initializers"; }
first=$(mean_loss a.jsonl 1 5) last=$(mean_loss a.jsonl 36 40)
awk -v f="$first" -v l="$last" 'BEGIN { exit !(f > 2.2 && l < f - 0.3) }' || { cat a.out; fail "the loss did not fall: $first -> $last"; }
for p in conv.weight conv.bias; do bytes_in a.st $p "$onnx/classifier.onnx" || fail "frozen $p changed"; done
for p in fc1.weight fc2.weight; do bytes_in a.st $p "$onnx/classifier.onnx" && fail "$p did not train"; done
test_line=$(grep '^test:' a.out) || { cat a.out; fail "no test scores"; }

# Resumed from that checkpoint: its weights, not the initializers again (nor a line saying so).
"$stag" "${train[@]}" --max-steps 42 --no-test --freeze 'conv.*' --resume a.st >r.out 2>&1 || { cat r.out; fail "resuming failed"; }
grep -q "initialised" r.out && { cat r.out; fail "a resumed run says it took the initializers"; }
grep -q "resum" r.out || { cat r.out; fail "the resumed run does not say it resumed"; }

# A trainer built from the ONNX model starts from its initializers, built in: the same test
# scores as stag train's run from the file (a step at lr 1e-30 changes no weight).
"$stag" build "$onnx/classifier.onnx" "${loss[@]}" --batch 64 -o trainer >t.out 2>&1 || { cat t.out; fail "stag build of the ONNX model failed"; }
./trainer --data fashion-mnist --threads 2 --no-save --max-steps 1 --lr 1e-30 >t.out 2>&1 || { cat t.out; fail "the built trainer failed"; }
grep -q "initialised 6 of 6 parameters from the built-in initializers" t.out || { cat t.out; fail "the trainer did not start from the initializers"; }
"$stag" "${train[@]}" --max-steps 1 --lr 1e-30 >o1.out 2>&1 || { cat o1.out; fail "stag train of one step failed"; }
[ "$(grep '^test:' t.out)" = "$(grep '^test:' o1.out)" ] || { grep '^test:' t.out o1.out; fail "the built trainer scores differently"; }

# `stag eval` of the checkpoint: the same test scores.
"$stag" eval "$onnx/classifier.onnx" "${loss[@]}" --batch 64 --weights a.st >e.out 2>&1 || { cat e.out; fail "stag eval failed"; }
want=$(echo "$test_line" | sed 's/^test: //')
grep -q "10000 examples: $want" e.out || { echo "train: $test_line"; cat e.out; fail "stag eval does not repeat the run's test scores"; }

# --init-from an ONNX file: conv and fc1 by name, the head (another name) left; frozen conv is
# the file's.
"$stag" "${train[@]}" --max-steps 5 --no-test --freeze 'conv.*' --init-from "$onnx/pretrained.onnx" --checkpoint b.st >b.out 2>&1 ||
  { cat b.out; fail "--init-from an ONNX file failed"; }
grep -q "initialised 4 of 6 parameters from $onnx/pretrained.onnx; kept their initial values: fc2.weight, fc2.bias; not in the model, unused: head.bias, head.weight" b.out ||
  { cat b.out; fail "--init-from does not say what it took and left"; }
bytes_in b.st conv.weight "$onnx/pretrained.onnx" || fail "conv.weight is not pretrained.onnx's"

# Into a stag model of the same network: the same test scores as the ONNX model (a step of
# SGD at lr 1e-30 changes no weight).
same=(--data fashion-mnist --batch 64 --threads 2 --no-save --max-steps 1 --optimizer sgd --lr 1e-30)
"$stag" train "$onnx/classifier.stag" "${same[@]}" --init-from "$onnx/classifier.onnx" >s.out 2>&1 || { cat s.out; fail "stag model from ONNX failed"; }
grep -q "initialised 6 of 6 parameters from $onnx/classifier.onnx" s.out || { cat s.out; fail "the stag model did not take the weights"; }
"$stag" train "$onnx/classifier.onnx" "${loss[@]}" "${same[@]}" >o.out 2>&1 || { cat o.out; fail "the ONNX model failed"; }
[ "$(grep '^test:' s.out)" = "$(grep '^test:' o.out)" ] || { grep '^test:' s.out o.out; fail "the stag model scores differently"; }

# Errors: each names what is missing or wrong, exit 1 or 2, nothing trained.
expect() {  # expect STATUS TEXT ARGS...
  local status=$1 text=$2
  shift 2
  "$stag" "$@" >err.out 2>&1
  local got=$?
  [ $got -eq "$status" ] && grep -qF -- "$text" err.out || { cat err.out; fail "stag $*: exit $got, want $status and '$text'"; }
}
expect 2 "classifier.onnx has no loss: give --loss KIND:OUTPUT:LABEL, as --loss cross_entropy:scores:y" \
  train "$onnx/classifier.onnx" --batch 64 --data fashion-mnist
expect 2 "classifier.onnx names no data set: give --data" train "$onnx/classifier.onnx" --batch 64 "${loss[@]}"
expect 2 "has no loss" eval "$onnx/classifier.onnx" --batch 64 --weights a.st
expect 1 "the model has no output 'logits'; its outputs: 'scores'" \
  train "$onnx/classifier.onnx" --batch 64 --data fashion-mnist --loss cross_entropy:logits:label
expect 1 "the label 'image' must be a new input" train "$onnx/classifier.onnx" --batch 64 --data fashion-mnist --loss cross_entropy:scores:image
expect 1 "--init-from $tests/onnx/pytorch/mlp.onnx: parameter 'fc1.weight' is f32[32,784] there, but f32[32,392] in model" \
  "${train[@]}" --max-steps 1 --init-from "$tests/onnx/pytorch/mlp.onnx"
expect 1 "no parameter of model classifier is there by name" "${train[@]}" --max-steps 1 --init-from "$tests/onnx/pytorch/resblock.onnx"
expect 1 "--freeze 'bn*' matches no parameter of classifier (its parameters: conv.weight, conv.bias" "${train[@]}" --freeze 'bn*'
expect 1 "--batch 64: the model's batch was fixed at export ('x' is f32[4,1,28,28])" \
  train "$tests/onnx/pytorch/mlp.onnx" --batch 64 --data fashion-mnist --loss cross_entropy:logits:y
expect 2 "classifier.onnx has no loss: give --loss KIND:OUTPUT:LABEL" build "$onnx/classifier.onnx" --batch 64 -o trainer
echo "onnx_train: loss $first -> $last in 40 steps, $want; 1 passed, 0 failed"
