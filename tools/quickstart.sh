#!/usr/bin/env bash
# The README's quick start: installs what a fresh Debian 12 machine lacks, builds, then
#   quickstart.sh run    runs the main job (the default model)
#   quickstart.sh test   runs the whole test suite through ctest (what CI runs)
#   quickstart.sh sanitize  the sanitizer job: the project built again with ASan and UBSan in
#                        build-san/ and the whole suite run there (not yet in CI: its time on two
#                        cores is still to be measured against CI's budget)
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
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --parallel "$(nproc)"

case "${1:-run}" in
  run)
    # The default model, the MLP, on Fashion-MNIST: two epochs reach about 86% test accuracy.
    build/tools/stag train models/mlp.stag --epochs 2
    ;;
  test)
    ctest --test-dir build --output-on-failure --parallel "$(nproc)"
    ;;
  sanitize)
    [ -f build-san/build.ninja ] || cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTAG_SANITIZE=ON
    cmake --build build-san --parallel "$(nproc)"
    ctest --test-dir build-san --output-on-failure --parallel "$(nproc)"
    ;;
  *)
    echo "usage: $0 [run|test|sanitize]" >&2
    exit 2
    ;;
esac
