#!/usr/bin/env bash
# --check-numerics: the first kernel that makes a NaN or an infinity stops the run with exit 1,
# naming the kernel, its graph node and source line, and the element; an input or parameter that
# is not finite is named on entry; catalog models whose graphs hold meant infinities (GPT's
# causal mask) train without a false alarm; without the flag nothing is checked.
# Usage: check_numerics.sh STAG MODELS_DIR TESTS_CLI_DIR
set -u
stag=$1 models=$2 here=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export STAG_JIT_CACHE=off
expect_error() {  # expect_error LOG PATTERN... : exit 1 and every pattern in the message
  local log=$1; shift
  for p in "$@"; do grep -qF -- "$p" "$log" || { cat "$log"; fail "the message lacks '$p'"; }; done
}

"$stag" run "$here/nan_log.stag" --seed 1 > "$tmp/plain.log" 2>&1 || { cat "$tmp/plain.log"; fail "without the flag the run failed"; }
"$stag" run "$here/nan_log.stag" --seed 1 --check-numerics > "$tmp/nan.log" 2>&1
[ $? -eq 1 ] || { cat "$tmp/nan.log"; fail "a NaN did not stop the run with exit 1"; }
expect_error "$tmp/nan.log" "--check-numerics: kernel" "nan_log.stag:8:13" "of logits f32[4,2] is a NaN or an infinity"

# A NaN in an input is named on entry, before any kernel runs.
python3 - "$tmp/x.npy" <<'PY'
import struct, sys
h = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
values = [1.0] * 12
values[7] = float("nan")
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + struct.pack("<12f", *values))
PY
"$stag" run "$here/nan_log.stag" --input x="$tmp/x.npy" --check-numerics > "$tmp/input.log" 2>&1
[ $? -eq 1 ] || { cat "$tmp/input.log"; fail "a NaN input did not stop the run"; }
expect_error "$tmp/input.log" "input x" "element 7 of x f32[4,3]"

# Training that diverges is stopped at the layer that overflowed.
"$stag" train "$models/mlp.stag" --lr 1e8 --optimizer sgd --max-steps 100 --no-save --no-test --check-numerics \
  > "$tmp/diverge.log" 2>&1
[ $? -eq 1 ] || { tail -5 "$tmp/diverge.log"; fail "a diverging run was not stopped"; }
expect_error "$tmp/diverge.log" "--check-numerics: kernel" "mlp.stag:"

# No false alarms: masks (-inf), recurrences, a GAN pair.
for m in mlp gpt lstm_lm dcgan bert; do
  "$stag" train "$models/$m.stag" --max-steps 2 --no-save --no-test --check-numerics > "$tmp/$m.log" 2>&1 \
    || { tail -5 "$tmp/$m.log"; fail "$m: a finite training run was stopped"; }
done
echo "ok: NaN output, NaN input, divergence, and 5 catalog models without a false alarm"
