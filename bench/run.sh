#!/usr/bin/env bash
# Builds (if needed) and runs the benchmarks, printing their results.
#   bash bench/run.sh                 # kernels, then the full throughput run (~5 min on 2 cores)
#   bash bench/run.sh --quick         # arguments go to bench_throughput
#   BUILD_DIR=build-bench bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  CXX=${CXX:-clang++} cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
ninja -C "$BUILD_DIR" bench_kernels bench_throughput

echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) threads"
echo
echo "== bench_kernels"
# Three repetitions; the median is the figure to read.
"$BUILD_DIR/bench/bench_kernels" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
echo
echo "== bench_throughput $*"
"$BUILD_DIR/bench/bench_throughput" "$@"
