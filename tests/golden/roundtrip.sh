#!/usr/bin/env bash
# Every valid .ir file under tests/ reads back: `stag ir F > a; stag ir a > b; cmp a b`.
# (Files named bad_* are the error cases; the golden runner checks their messages.)
# Usage: roundtrip.sh STAG TESTS_DIR
set -u
stag=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
while IFS= read -r -d '' f; do
  if ! "$stag" ir "$f" >"$tmp/a.ir" 2>"$tmp/err"; then
    echo "FAIL: $f does not verify:"; cat "$tmp/err"; fail=$((fail + 1)); continue
  fi
  "$stag" ir "$tmp/a.ir" >"$tmp/b.ir" 2>&1
  if cmp -s "$tmp/a.ir" "$tmp/b.ir"; then pass=$((pass + 1)); else
    echo "FAIL: $f does not read back identically"; diff "$tmp/a.ir" "$tmp/b.ir" | head; fail=$((fail + 1))
  fi
done < <(find "$2" -name '*.ir' ! -name 'bad_*' -print0 | sort -z)
echo "roundtrip: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
