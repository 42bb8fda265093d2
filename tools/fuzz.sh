#!/usr/bin/env bash
# Builds one libFuzzer target with clang-19 (ASan, UBSan, no recovery) in build-fuzz/ and runs it:
#   tools/fuzz.sh TARGET [SECONDS [RUNS]]   TARGET: stag ir onnx checkpoint npy idx csv text (default 60 s);
#                                           stops after SECONDS or RUNS executions, whichever comes first;
#                                           STAG_FUZZ_TIMEOUT (s, default 20) is the wall time a unit may take (and be
#                                           reported slow, a finding too): raise it
#                                           when the fuzzer runs at idle priority beside other work
#   tools/fuzz.sh all [SECONDS [RUNS]]      each target in turn
# The corpus grows in build-fuzz/corpus/TARGET (seeded from the repository and small generated
# files, tools/fuzz/seeds.py); a finding is written to build-fuzz/findings/TARGET/ — copy it to
# tests/fuzz/TARGET/ so the ordinary test suite replays it once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
# The targets tools/fuzz/CMakeLists.txt declares.
read -ra targets <<< "$(sed -n 's/^set(STAG_FUZZ_TARGETS \(.*\))$/\1/p' tools/fuzz/CMakeLists.txt)"
target=${1:?usage: tools/fuzz.sh TARGET|all [SECONDS [RUNS]]} seconds=${2:-60} runs=${3:--1}
if [ "$target" = all ]; then
  for t in "${targets[@]}"; do "$0" "$t" "$seconds" "$runs"; done
  exit 0
fi
[[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz.sh: no target '$target' (${targets[*]})" >&2; exit 2; }
command -v clang++-19 > /dev/null || { echo "fuzz.sh: needs clang-19 and libclang-rt-19-dev (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 2; }

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/stag-ccache}
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
[ -f build-fuzz/build.ninja ] || CXX=clang++-19 cmake -S . -B build-fuzz -G Ninja -DSTAG_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
cmake --build build-fuzz --target "fuzz_$target" --parallel "$(nproc)"

corpus=build-fuzz/corpus/$target findings=build-fuzz/findings/$target
mkdir -p "$corpus" "$findings"
python3 tools/fuzz/seeds.py "$target" build-fuzz/seeds/$target
dict=tools/fuzz/$target.dict
if [ "$target" = stag ] || [ "$target" = ir ]; then
  # The languages' words: op names from the op table and every identifier of the seed files.
  dict=build-fuzz/$target.dict
  { sed -n 's/^OP(\([a-z0-9_]*\),.*/"\1"/p' ir/ops.def
    cat build-fuzz/seeds/$target/* | grep -o '[A-Za-z_%][A-Za-z0-9_.]*' | sort -u | sed 's/.*/"&"/'
    printf '"%s"\n' '{' '}' '(' ')' '[' ']' '=' ':' ',' '->' '@' '//' '#'
  } | sort -u > "$dict"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "fuzz.sh: $target for $seconds s$([ "$runs" = -1 ] || echo " or $runs runs")"
set +e
build-fuzz/tools/fuzz/fuzz_$target "$corpus" build-fuzz/seeds/$target -dict="$dict" -max_total_time="$seconds" -runs="$runs" \
  -rss_limit_mb=4096 -malloc_limit_mb=2048 -timeout="${STAG_FUZZ_TIMEOUT:-20}" -report_slow_units="${STAG_FUZZ_TIMEOUT:-20}" -artifact_prefix="$findings/" -print_final_stats=1 2>&1 |
  sed '/Recommended dictionary/,/End of recommended dictionary/d' | grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)'
fuzzer_status=${PIPESTATUS[0]}
set -e
ls "$findings" | grep -q . && { echo "fuzz.sh: findings in $findings:"; ls "$findings"; exit 1; }
# A fuzzer that stops without a finding (a bad flag, a missing dictionary) must not read as a clean campaign.
[ "$fuzzer_status" = 0 ] || { echo "fuzz.sh: fuzz_$target exited with status $fuzzer_status" >&2; exit "$fuzzer_status"; }
exit 0
