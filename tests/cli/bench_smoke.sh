#!/usr/bin/env bash
# `stag bench` as tools/bench/run.py uses it: one JSON object whose timings, compile time and
# peak RSS are positive numbers, for the MLP's forward and train step and for a matmul; a bad
# model file is a clear error with exit status 1. Timings are never compared with anything.
# Usage: bench_smoke.sh STAG BENCH_MODELS_DIR
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# A field's value in a one-line JSON object, if it is a number.
field() { sed -nE "s/.*\"$2\": (-?[0-9.eE+-]+)[,}].*/\1/p" "$1"; }
positive() {
  local v
  v=$(field "$1" "$2")
  [ -n "$v" ] || { cat "$1"; fail "$3: no numeric field '$2'"; }
  awk -v x="$v" 'BEGIN { exit !(x > 0) }' || { cat "$1"; fail "$3: '$2' is $v, not positive"; }
}

check() {  # NAME EXPECTED_FUNCTION FIELDS... ; the JSON is in $tmp/NAME.json
  local name=$1 fn=$2
  shift 2
  [ "$(wc -l < "$tmp/$name.json")" -eq 1 ] || { cat "$tmp/$name.json"; fail "$name: expected exactly one line"; }
  grep -q "\"function\": \"$fn\"" "$tmp/$name.json" || { cat "$tmp/$name.json"; fail "$name: function is not $fn"; }
  for f in "$@"; do positive "$tmp/$name.json" "$f" "$name"; done
}

"$stag" bench "$models/mlp.stag" --batch 8 --threads 1 --warmup 1 --steps 3 --json > "$tmp/forward.json" || fail "stag bench (forward) failed"
check forward forward compile_s median_ms min_ms peak_rss_mb kernels
[ "$(field "$tmp/forward.json" threads)" = 1 ] || fail "forward: --threads 1 not reported"
[ "$(field "$tmp/forward.json" steps)" = 3 ] || fail "forward: --steps 3 not reported"

"$stag" bench "$models/mlp.stag" --train --batch 8 --threads 2 --warmup 1 --steps 3 --json > "$tmp/train.json" || fail "stag bench --train failed"
check train train_step compile_s median_ms min_ms peak_rss_mb loss
[ "$(field "$tmp/train.json" batch)" = 8 ] || fail "train: --batch 8 not reported"
awk -v a="$(field "$tmp/train.json" min_ms)" -v b="$(field "$tmp/train.json" median_ms)" 'BEGIN { exit !(a <= b) }' \
  || fail "train: min_ms above median_ms"
# Where the compile went: every phase a number, LLVM's a positive one, and one time for each
# module LLVM compiled (compile_parts), none longer than the whole compile.
for f in load_s passes_s codegen_s create_s; do [ -n "$(field "$tmp/train.json" $f)" ] || { cat "$tmp/train.json"; fail "train: no phase $f"; }; done
[ -n "$(field "$tmp/train.json" optimize_s)" ] || { cat "$tmp/train.json"; fail "train: no phase optimize_s"; }
positive "$tmp/train.json" machine_s train
parts=$(sed -nE 's/.*"parts_s": \[([0-9., ]*)\].*/\1/p' "$tmp/train.json" | tr -d ' ')
[ "$(echo "$parts" | tr ',' '\n' | grep -c .)" = "$(field "$tmp/train.json" compile_parts)" ] \
  || { cat "$tmp/train.json"; fail "train: parts_s does not list one time per compile part"; }
echo "$parts" | tr ',' '\n' | awk -v total="$(field "$tmp/train.json" compile_s)" '!($1 > 0 && $1 <= total) { bad = 1 } END { exit bad }' \
  || { cat "$tmp/train.json"; fail "train: a part's time is not within the compile's"; }

"$stag" bench --matmul 33 --warmup 0 --steps 2 --json > "$tmp/matmul.json" || fail "stag bench --matmul failed"
check matmul forward compile_s median_ms gflops peak_rss_mb

# The peak loops: every unit the host has, each a positive figure on one and two threads, the
# f32 FMA always (the machines this runs on have AVX2 at least), bf16 where CPUID says so.
"$stag" bench --peak --threads 2 > "$tmp/peak.out" || fail "stag bench --peak failed"
grep -qE "^peak f32 FMA \(avx2, 8 lanes\) on 2 threads: [0-9]+\.[0-9] GFLOP/s" "$tmp/peak.out" || { cat "$tmp/peak.out"; fail "no f32 FMA peak"; }
awk '/^peak/ && !($(NF-1) > 0) { bad = 1 } END { exit bad }' "$tmp/peak.out" || { cat "$tmp/peak.out"; fail "a peak is not positive"; }
if grep -q avx512_bf16 /proc/cpuinfo; then
  grep -q "^peak bf16 VDPBF16PS" "$tmp/peak.out" || { cat "$tmp/peak.out"; fail "no bf16 peak on a CPU with AVX512-BF16"; }
else
  echo "SKIPPED: the bf16 peak (no avx512_bf16 on this CPU)"
fi

# Without --json: one readable line.
"$stag" bench "$models/mlp.stag" --batch 4 --warmup 0 --steps 1 > "$tmp/text.out" || fail "stag bench (text) failed"
grep -qE "^mlp forward \(batch 4\) on [0-9]+ threads?: median [0-9.]+ ms" "$tmp/text.out" || { cat "$tmp/text.out"; fail "unexpected text output"; }

# A model with an error: the loader's diagnostic, exit 1, nothing on stdout.
printf 'model bad {\n  input x: f32[4, 3]\n  forward {\n    output y = nosuch(x)\n  }\n}\n' > "$tmp/bad.stag"
"$stag" bench "$tmp/bad.stag" --json > "$tmp/bad.out" 2> "$tmp/bad.err"
code=$?
[ "$code" -eq 1 ] || { cat "$tmp/bad.err"; fail "a bad model gave exit $code, not 1"; }
grep -q "bad.stag:[0-9]*:[0-9]*: error" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "no file:line:col diagnostic for a bad model"; }
[ ! -s "$tmp/bad.out" ] || fail "a bad model printed a result"
# Usage errors: exit 2.
"$stag" bench --json > /dev/null 2> "$tmp/usage.err" && fail "no model and no --matmul was accepted"
grep -q "give a model file" "$tmp/usage.err" || { cat "$tmp/usage.err"; fail "unclear error without a model"; }
"$stag" bench "$models/mlp.stag" --steps 0 > /dev/null 2>&1 && fail "--steps 0 was accepted"
echo "bench_smoke: forward, train step, matmul and errors; 1 passed, 0 failed"
