#!/usr/bin/env bash
# Installs every Debian package imagescore needs (idempotent: apt runs only when a
# package is missing), builds it in ./build with clang and one shared precompiled header,
# and installs it (docs/building.md): the program `imagescore` on PATH, the library with
# its headers and CMake and pkg-config packages, and the Python package where
# /usr/bin/python3 imports it. The prefix is /usr/local, or IMAGESCORE_PREFIX; with
# IMAGESCORE_PREFIX=none nothing is installed.
# Usage: bash scripts/setup.sh   (as root on Debian 12)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build clang ccache pkg-config
  libtorch-dev            # LibTorch 1.13 (C++)
  libopenblas0-openmp     # LibTorch's BLAS: the reference BLAS is several times slower
  libcli11-dev nlohmann-json3-dev
  libpng-dev libturbojpeg0-dev zlib1g-dev
  libfaiss-dev            # nearest neighbours of the kNN and trust scores
  libpugixml-dev libstb-dev  # detection mode: VOC XML, resizing images to the backbone's input
  libcpp-httplib-dev      # the explorer's HTTP server (imagescore serve)
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist   # the default data set
  zstd                    # unpacks the real data sets in ../shared/data (tests, examples)
  chromium                # the browser test of the HTML report
  libopenmpi-dev openmpi-bin  # distributed profile and score (mpirun)
  pybind11-dev python3-dev python3-numpy  # the Python package (python/)
  python3-torch python3-pytest python3-pandas  # imagescore.torch, its tests, ScoreTable.to_pandas
  libclang-rt-14-dev lld  # sanitizer runtimes and the fuzz targets' linker (scripts/sanitize.sh, fuzz.sh)
)
# Node.js and npm fetch the report's chart libraries. NodeSource's nodejs bundles npm and
# conflicts with Debian's npm package, so they are installed only when npm is missing.
command -v npm > /dev/null || packages+=(nodejs npm)

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

# The report's chart libraries (inlined into the binary at build time) and the browser
# driver of its test, at the versions of report/package-lock.json.
[[ report/node_modules/.package-lock.json -nt report/package-lock.json ]] || (cd report && npm ci --no-audit --no-fund)

# The Python package is built for /usr/bin/python3, the interpreter with Debian's torch
# (a python3 earlier on PATH, such as pyenv's, may lack it).
prefix=${IMAGESCORE_PREFIX:-/usr/local}
install_options=()
[[ $prefix == none ]] || install_options=("-DCMAKE_INSTALL_PREFIX=$prefix")
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DPython3_EXECUTABLE=/usr/bin/python3 "${install_options[@]}" >/dev/null
cmake --build build
if [[ $prefix != none ]]; then
  mkdir -p "$prefix" 2> /dev/null || true
  if [[ ! -w $prefix ]]; then
    echo "setup: cannot install into $prefix: run as root, or set IMAGESCORE_PREFIX to a folder of yours (or to none)" >&2
    exit 1
  fi
  cmake --install build --prefix "$prefix" >/dev/null
  # Programs linked with pkg-config find the library in /usr/local/lib through the cache.
  if [[ $prefix == /usr/local && -w /etc/ld.so.cache ]]; then ldconfig; fi
  echo "setup: installed imagescore into $prefix" >&2
fi
