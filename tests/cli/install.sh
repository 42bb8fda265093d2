#!/usr/bin/env bash
# `cmake --install`: the installed stag works without the build tree's files. It builds a trainer
# from the runtime installed in PREFIX/lib/stag (a damaged installed copy makes the link fail,
# so it is that copy and not the build tree's that is linked), the trainer runs, and a
# SentencePiece tokenizer loads the module installed there.
# Usage: install.sh BUILD_DIR MODELS_DIR   (needs the fortunes package)
set -u
build=$(cd "$1" && pwd) models=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*"; exit 1; }
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "cmake --install failed"; }
stag=$prefix/bin/stag
for f in libstag_runtime.a libstag_dist_none.a trainer_main.cpp.o libstag_sentencepiece.so; do
  [ -f "$prefix/lib/stag/$f" ] || fail "$f is not installed in $prefix/lib/stag"
done

"$stag" build "$models/mlp.stag" -o mlp_trainer >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "the installed stag's build failed"; }
./mlp_trainer --max-steps 3 --no-save --threads 2 >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "the trainer failed"; }
grep -q '^test: loss' "$tmp/out" || { cat "$tmp/out"; fail "the trainer did not test"; }

cp "$prefix/lib/stag/libstag_runtime.a" saved.a
: >"$prefix/lib/stag/libstag_runtime.a"
"$stag" build "$models/mlp.stag" -o broken >"$tmp/out" 2>&1 && fail "a build linked without the installed runtime"
grep -q "linking broken failed .*$prefix/lib/stag/libstag_runtime.a" "$tmp/out" || { cat "$tmp/out"; fail "the link did not use the installed runtime"; }
cp saved.a "$prefix/lib/stag/libstag_runtime.a"

LD_DEBUG=files "$stag" train "$models/bow_logreg.stag" --tokenizer sentencepiece:300 --max-steps 2 --no-save --threads 2 \
  >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/out" "$tmp/err"; fail "training with a sentencepiece tokenizer failed"; }
grep -q "file=$prefix/lib/stag/libstag_sentencepiece.so" "$tmp/err" || { grep sentencepiece "$tmp/err"; fail "the installed module was not loaded"; }
echo "PASS"
