#!/usr/bin/env bash
# Installs every Debian package imagescore needs (idempotent: apt runs only when a
# package is missing) and builds it in ./build with clang and one shared precompiled
# header. Usage: bash scripts/setup.sh   (as root on Debian 12)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build clang ccache pkg-config
  libtorch-dev            # LibTorch 1.13 (C++)
  libopenblas0-openmp     # LibTorch's BLAS: the reference BLAS is several times slower
  libcli11-dev nlohmann-json3-dev
  libpng-dev libturbojpeg0-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist   # the default data set
  zstd                    # unpacks the real data sets in ../shared/data (tests, examples)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build
