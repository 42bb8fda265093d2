#!/usr/bin/env bash
# Golden tests of the optimizer's passes, MLIR lit style: text in, text out.
# Each DIR/NAME.ir starts with a line giving the arguments of `stag ir`:
#   // RUN: --stage optimized --passes=cse
# and the runner runs `stag ir NAME.ir <those arguments> --verify-each`. Then either
#   - NAME.err exists: stag must print NAME.err on stderr and exit with the status given by a
#     `// EXIT: N` line in NAME.ir (1, as in run.sh, when there is none); or
#   - stag must exit 0 and print NAME.expected (required) on stdout; an optimized graph
#     (--stage optimized) must also read back: printing the printed IR gives the same bytes.
# Every failure is reported; the exit status is 1 if any case failed (or none ran).
# STAG_UPDATE_GOLDEN=1 rewrites NAME.expected (or NAME.err) from what stag prints, for
# maintainers: read every rewritten file and check by hand that it records a right result.
# Usage: passes.sh STAG DIR   (run from tests/golden, so messages carry relative paths)
set -u
stag=$1
dir=$2
update=${STAG_UPDATE_GOLDEN:-0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
report() { echo "FAIL: $1"; shift; printf '%s\n' "$@"; fail=$((fail + 1)); }

shopt -s nullglob
for input in "$dir"/*.ir; do
  base=${input%.*}
  run=$(head -n 1 "$input")
  if [[ $run != "// RUN:"* ]]; then
    report "$input" "the first line must be '// RUN: ARGS', got: $run"
    continue
  fi
  read -r -a args <<<"${run#// RUN:}"
  want_rc=0
  if [ -f "$base.err" ]; then
    want_rc=$(sed -n 's|^// EXIT: *\([0-9][0-9]*\) *$|\1|p' "$input" | head -n 1)
    want_rc=${want_rc:-1}
  fi
  timeout 10 "$stag" ir "$input" "${args[@]}" --verify-each >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" -ne "$want_rc" ]; then
    report "$input" "expected exit status $want_rc, got $rc" "$(cat "$tmp/err")"
    continue
  fi
  if [ -f "$base.err" ]; then
    if [ "$update" = 1 ]; then
      cp "$tmp/err" "$base.err"
    elif ! diff -u "$base.err" "$tmp/err" >"$tmp/diff"; then
      report "$input" "$(cat "$tmp/diff")"
      continue
    fi
  else
    if [ "$update" = 1 ]; then
      cp "$tmp/out" "$base.expected"
    elif [ ! -f "$base.expected" ]; then
      report "$input" "missing $base.expected (STAG_UPDATE_GOLDEN=1 writes it)"
      continue
    elif ! diff -u "$base.expected" "$tmp/out" >"$tmp/diff"; then
      report "$input" "$(cat "$tmp/diff")"
      continue
    fi
    if [[ " ${args[*]} " == *" --stage optimized "* || " ${args[*]} " == *" --stage=optimized "* ]]; then
      cp "$tmp/out" "$tmp/a.ir"
      "$stag" ir "$tmp/a.ir" >"$tmp/b.ir" 2>"$tmp/err2"
      if ! cmp -s "$tmp/a.ir" "$tmp/b.ir"; then
        report "$input" "optimized IR does not read back identically" "$(diff -u "$tmp/a.ir" "$tmp/b.ir"; cat "$tmp/err2")"
        continue
      fi
    fi
  fi
  pass=$((pass + 1))
done
[ "$update" = 1 ] && echo "golden $dir: expected outputs rewritten; check every one by hand"
echo "golden $dir: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
