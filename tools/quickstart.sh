#!/usr/bin/env bash
# The README's quick start: installs what a fresh Debian 12 machine lacks, builds, then
#   quickstart.sh run    runs the main job (the default model)
#   quickstart.sh test   what CI runs (.ci/run): the ordinary job (the whole test suite through
#                        ctest in build/), then the sanitizer job (the project built again with
#                        ASan and UBSan in build-san/ and the whole suite run there), and a line
#                        for each saying whether it passed and how long it took. On two quiet cores
#                        with ccache empty: about 19 and 48 minutes
#   quickstart.sh check      the ordinary job only (a developer's quick run)
#   quickstart.sh sanitize   the sanitizer job only
# A second run installs nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build ccache llvm-19-dev libfmt-dev catch2 zlib1g-dev
          nlohmann-json3-dev libcli11-dev libpng-dev libsentencepiece-dev librsvg2-bin graphviz dataset-fashion-mnist fortunes
          libonnx-dev libprotobuf-dev protobuf-compiler libonnx-testdata
          libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quickstart: installing ${missing[*]}"
  apt_get=(apt-get)
  [ "$(id -u)" -eq 0 ] || apt_get=(sudo apt-get)
  "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/stag-ccache}
# Paths under the clone are hashed relative to it, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
jobs=$(nproc)

# The ordinary job: the Release build in build/ and, for `test`, the whole suite there.
ordinary_build() {
  { [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release; } &&
    cmake --build build --parallel "$jobs"
}
ordinary_job() { ordinary_build && ctest --test-dir build --output-on-failure --parallel "$jobs"; }

# The sanitizer job: everything built again in build-san/ with ASan and UBSan, no recovery
# (cmake -DSTAG_SANITIZE=ON, top CMakeLists.txt), and the whole suite run there.
sanitizer_job() {
  { [ -f build-san/build.ninja ] || cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTAG_SANITIZE=ON; } &&
    cmake --build build-san --parallel "$jobs" &&
    ctest --test-dir build-san --output-on-failure --parallel "$jobs"
}

# Runs each named job to its end whatever the others did, then says which failed and how long
# each took; the exit status is 1 when any failed.
run_jobs() {
  local failed=() summary=() start
  for job in "$@"; do
    start=$SECONDS
    if "${job}_job"; then summary+=("$job job: passed in $((SECONDS - start)) s")
    else failed+=("$job"); summary+=("$job job: FAILED after $((SECONDS - start)) s"); fi
  done
  printf 'quickstart: %s\n' "${summary[@]}"
  [ ${#failed[@]} -eq 0 ]
}

case "${1:-run}" in
  run)
    ordinary_build
    # The default model, the MLP, on Fashion-MNIST: two epochs reach about 86% test accuracy.
    build/tools/stag train models/mlp.stag --epochs 2
    ;;
  test)
    run_jobs ordinary sanitizer
    ;;
  check)
    run_jobs ordinary
    ;;
  sanitize)
    run_jobs sanitizer
    ;;
  *)
    echo "usage: $0 [run|test|check|sanitize]" >&2
    exit 2
    ;;
esac
