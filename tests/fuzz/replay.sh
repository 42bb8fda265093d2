#!/usr/bin/env bash
# Replays every fuzz target (built with a plain main, no libFuzzer) on its seed corpus and on the
# inputs a fuzzer once failed on (tests/fuzz/TARGET/), so a fixed finding stays fixed.
# Usage: replay.sh FUZZ_BUILD_DIR SOURCE_DIR SUFFIX TARGET...   (SUFFIX: "" or _san for the
# sanitized copies; the targets are tools/fuzz/CMakeLists.txt's list)
set -u
bin=$1 src=$2 suffix=$3
shift 3
[ $# -gt 0 ] || { echo "FAIL: no fuzz targets named"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for t in "$@"; do
  python3 "$src/tools/fuzz/seeds.py" "$t" "$tmp/$t" || { echo "FAIL: seeds of $t"; status=1; continue; }
  inputs=("$tmp/$t")
  [ -d "$src/tests/fuzz/$t" ] && inputs+=("$src/tests/fuzz/$t")
  out=$("$bin/fuzz_$t$suffix" "${inputs[@]}" 2>&1) || { echo "$out" | tail -40; echo "FAIL: fuzz_$t$suffix"; status=1; continue; }
  echo "fuzz_$t$suffix: $out"
done
exit $status
