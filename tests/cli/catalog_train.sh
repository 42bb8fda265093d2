#!/usr/bin/env bash
# Every catalog model trains with a bare `stag train models/NAME.stag` on its default data:
# here two steps each (the defaults otherwise, so the data set and settings are the model's own).
# Usage: catalog_train.sh STAG MODELS_DIR   (needs dataset-fashion-mnist and fortunes)
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*"; exit 1; }
passed=0
for file in "$models"/*.stag; do
  name=$(basename "$file" .stag)
  "$stag" train "$file" --max-steps 2 --epochs 1 --validation 0.01 --no-test --no-save --threads 2 >"$name.out" 2>&1 ||
    { cat "$name.out"; fail "$name does not train"; }
  grep -q "^training " "$name.out" || { cat "$name.out"; fail "$name printed no training line"; }
  echo "$name: trains"
  passed=$((passed + 1))
done
[ $passed -ge 14 ] || fail "only $passed catalog models were trained"
echo "catalog_train: $passed models trained 2 steps each"
