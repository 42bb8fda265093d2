#!/usr/bin/env bash
# A character language model end to end: training reports per-token validation (val_loss,
# val_ppl = exp(loss), val_bpc = loss / ln 2, accuracy; no macro-F1) and the bigram baseline, its
# checkpoint carries the vocabulary, and `stag sample` writes text from it: greedy and seeded
# draws repeat, and bad settings or a checkpoint without a vocabulary are errors (exit 1).
# Usage: sample.sh STAG MODELS_DIR   (needs the fortunes package)
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
model=$models/char_rnn.stag

# --checkpoint-every: a run cut short by --max-steps writes no epoch-end checkpoint.
"$stag" train "$model" --epochs 1 --max-steps 3 --checkpoint-every 3 --validation 0.02 --threads 2 --checkpoint "$tmp/lm.ckpt" \
  --log "$tmp/lm.jsonl" >"$tmp/train.out" 2>&1 || { cat "$tmp/train.out"; fail "training failed"; }
grep -q "baseline: a character bigram model (add-one smoothing) has val_loss [0-9.]*  val_ppl [0-9.]*  val_bpc" \
  "$tmp/train.out" || { cat "$tmp/train.out"; fail "no bigram baseline"; }
grep -q "val_loss [0-9.]*  val_ppl [0-9.]*  val_bpc [0-9.]*  val_accuracy" "$tmp/train.out" || { cat "$tmp/train.out"; fail "no per-token metrics"; }
grep -q "macro_f1\|val_auc" "$tmp/train.out" "$tmp/lm.jsonl" && fail "a language model reports macro-F1 or AUC"
# val_ppl = exp(val_loss) and val_bpc = val_loss / ln 2 in the log.
epoch=$(grep '"event":"epoch"' "$tmp/lm.jsonl")
field() { sed -E "s/.*\"$1\":([-0-9.e+]*).*/\\1/" <<<"$epoch"; }
awk -v l="$(field val_loss)" -v p="$(field val_ppl)" -v b="$(field val_bpc)" \
  'BEGIN { exit !(l > 0 && (exp(l) - p) ^ 2 < 1e-6 * p * p && (l / log(2) - b) ^ 2 < 1e-10) }' ||
  fail "val_ppl or val_bpc do not follow val_loss: $epoch"

sample() { "$stag" sample "$model" --weights "$tmp/lm.ckpt" --tokens 40 "$@" 2>/dev/null; }
a=$(sample --prompt "The " --temperature 0) || fail "greedy sampling failed"
b=$(sample --prompt "The " --temperature 0)
[ "$a" = "$b" ] || fail "greedy decoding differs between runs"
[[ "$a" == "The "* ]] || fail "the text does not start with the prompt: $a"
[ "${#a}" -ge 44 ] || fail "expected 40 tokens after the prompt: $a"
s1=$(sample --seed 7 --top-k 20 --top-p 0.9) || fail "seeded sampling failed"
s2=$(sample --seed 7 --top-k 20 --top-p 0.9)
s3=$(sample --seed 8 --top-k 20 --top-p 0.9)
[ "$s1" = "$s2" ] || fail "the same seed gave different text"
[ "$s1" != "$s3" ] || fail "two seeds gave the same 40 tokens"

expect_error() {
  local want=$1; shift
  "$stag" sample "$model" --tokens 5 "$@" >"$tmp/err.out" 2>&1
  local rc=$?
  [ $rc -eq 1 ] || { cat "$tmp/err.out"; fail "exit $rc, expected 1, for: $*"; }
  grep -q "$want" "$tmp/err.out" || { cat "$tmp/err.out"; fail "expected '$want' for: $*"; }
}
expect_error "not in the model's vocabulary" --weights "$tmp/lm.ckpt" --prompt $'caf\x01'
expect_error "is not in (0, 1]" --weights "$tmp/lm.ckpt" --top-p 0
expect_error "is not in (0, 1]" --weights "$tmp/lm.ckpt" --top-p 1.5
expect_error "is not in (0, 1]" --weights "$tmp/lm.ckpt" --top-p -0.5
expect_error "is not in (0, 1]" --weights "$tmp/lm.ckpt" --top-p nan
expect_error "is negative" --weights "$tmp/lm.ckpt" --temperature -1
# A safetensors file with no tensors and metadata without a vocabulary.
header='{"__metadata__":{"step":"1"}}'
printf '\x1d\x00\x00\x00\x00\x00\x00\x00%s' "$header" >"$tmp/novocab.safetensors"
expect_error "has no character vocabulary" --weights "$tmp/novocab.safetensors"
echo ok
