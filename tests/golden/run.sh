#!/usr/bin/env bash
# Golden tests, MLIR lit style: for each DIR/NAME.ir (or .stag), `stag ir NAME` must print
# NAME.expected and exit 0, or print NAME.err on stderr and exit 1 when that file exists.
# Every file that verifies must also read back: printing the printed IR gives the same bytes.
# Usage: run.sh STAG DIR   (run from tests/golden, so messages carry relative paths)
set -u
stag=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
report() { echo "FAIL: $1"; shift; printf '%s\n' "$@"; fail=$((fail + 1)); }

shopt -s nullglob
for input in "$dir"/*.ir "$dir"/*.stag; do
  base=${input%.*}
  timeout 10 "$stag" ir "$input" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ -f "$base.err" ]; then
    if [ $rc -ne 1 ]; then
      report "$input" "expected exit status 1, got $rc" "$(cat "$tmp/err")"
      continue
    fi
    if ! diff -u "$base.err" "$tmp/err" >"$tmp/diff"; then
      report "$input" "$(cat "$tmp/diff")"
      continue
    fi
  else
    if [ $rc -ne 0 ]; then
      report "$input" "expected exit status 0, got $rc" "$(cat "$tmp/err")"
      continue
    fi
    if [ -f "$base.expected" ] && ! diff -u "$base.expected" "$tmp/out" >"$tmp/diff"; then
      report "$input" "$(cat "$tmp/diff")"
      continue
    fi
    cp "$tmp/out" "$tmp/a.ir"
    "$stag" ir "$tmp/a.ir" >"$tmp/b.ir" 2>"$tmp/err2"
    if ! cmp -s "$tmp/a.ir" "$tmp/b.ir"; then
      report "$input" "printed IR does not read back identically" "$(diff -u "$tmp/a.ir" "$tmp/b.ir"; cat "$tmp/err2")"
      continue
    fi
  fi
  pass=$((pass + 1))
done
echo "golden $dir: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
