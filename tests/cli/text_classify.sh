#!/usr/bin/env bash
# Text classification end to end: the catalog BERT and the bag-of-words baseline train on the
# fortunes' topics with bare defaults (the fixed split, the majority-class baseline, test metrics
# and the confusion matrix by topic), the checkpoint carries the tokenizer that `stag eval` uses,
# a sentencepiece tokenizer trains and travels with its checkpoint, class-balanced sampling is a
# setting of the run, and a CSV file of text and labels trains too, while a row without text is an error (exit 1).
# Usage: text_classify.sh STAG MODELS_DIR   (needs the fortunes package)
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*"; exit 1; }
train() { "$stag" train "$@" --epochs 1 --max-steps 2 --threads 2 >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "stag train $* failed"; }; }
expect() { grep -q -- "$1" "$tmp/out" || { cat "$tmp/out"; fail "expected '$1'"; }; }

train "$models/bert.stag" --run-dir bert
expect "^text: [0-9]* texts in 39 classes ([0-9]* train / [0-9]* validation / 1460 test, split by a hash of the text), 64 tokens each, tokenizer words:2048"
expect "^baseline: the majority class (people) has test accuracy 0.0849  macro_f1 0.0040"
expect "^test: loss [0-9.]*  accuracy [0-9.]*  macro_f1 [0-9.]*"
expect "^computers "   # a row of the per-class table and of the confusion matrix, by topic
first=$(grep '^text:' "$tmp/out")

train "$models/bow_logreg.stag" --no-save
expect "^training bow_logreg on fortune-topics"
expect "^test: loss"
[ "$(grep '^text:' "$tmp/out")" = "$first" ] || fail "the split differs between runs or models"

# stag eval reads the tokenizer from the checkpoint; one without is an error.
"$stag" eval "$models/bert.stag" --weights bert --data fortune-topics >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "eval failed"; }
expect "^1460 examples: loss"
python3 - bert/last.safetensors notok.safetensors <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
header["__metadata__"] = {k: v for k, v in header["__metadata__"].items() if not k.startswith("tokenizer")}
text = json.dumps(header).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
"$stag" eval "$models/bert.stag" --weights notok.safetensors --data fortune-topics >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] || { cat "$tmp/out"; fail "exit $rc for a checkpoint without a tokenizer, expected 1"; }
expect "no word tokenizer"

# A subword tokenizer by flag: trained on the training split, saved in the checkpoint, used by eval.
train "$models/bow_logreg.stag" --tokenizer sentencepiece:1000 --run-dir sp
expect "tokenizer sentencepiece:1000$"
"$stag" eval "$models/bow_logreg.stag" --weights sp --data fortune-topics >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "eval with a sentencepiece checkpoint failed"; }
expect "^1460 examples: loss"
"$stag" train "$models/bow_logreg.stag" --tokenizer bpe:10 --no-save --max-steps 1 >"$tmp/out" 2>&1
[ $? -eq 1 ] || { cat "$tmp/out"; fail "an unknown tokenizer is not an error"; }
expect "tokenizer 'bpe:10': expected words:VOCAB_SIZE or sentencepiece:VOCAB_SIZE"

# Class-balanced sampling: a setting of the run (run.json), and an error for a language model's labels.
train "$models/bow_logreg.stag" --balance-classes --run-dir balanced
expect "^training bow_logreg on fortune-topics: .* threads, classes balanced by sampling$"
grep -q '"balance_classes": 1' balanced/run.json || { cat balanced/run.json; fail "run.json does not record --balance-classes"; }
"$stag" train "$models/char_rnn.stag" --balance-classes --no-save --max-steps 1 --validation 0.01 >"$tmp/out" 2>&1
[ $? -eq 1 ] || { cat "$tmp/out"; fail "--balance-classes on a language model is not an error"; }
expect "class-balanced sampling needs one class label per example"

"$stag" train "$models/bow_logreg.stag" --folds 5 --fold 0 --no-save --max-steps 1 >"$tmp/out" 2>&1
[ $? -eq 1 ] || { cat "$tmp/out"; fail "--folds with the fixed split is not an error"; }
expect "split is fixed by a hash"

# Users' own text: a CSV file with text and label columns.
{
  echo 'id,text,label'
  for i in $(seq 1 300); do
    if [ $((i % 2)) = 0 ]; then echo "$i,\"the cat, number $i, purrs\",cats"; else echo "$i,\"dog $i barks\",dogs"; fi
  done
} >pets.csv
train "$models/bow_logreg.stag" --no-save --data pets.csv
expect "^text: 300 texts in 2 classes"
expect "^test: loss"
sed '5s/.*/5,,dogs/' pets.csv >bad.csv
"$stag" train "$models/bow_logreg.stag" --no-save --data bad.csv >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] || { cat "$tmp/out"; fail "exit $rc for a CSV row without text, expected 1"; }
expect "bad.csv:5: the row has no text"
echo "text_classify: ok"
