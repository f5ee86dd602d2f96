#!/usr/bin/env bash
# Builds imagescore with AddressSanitizer and UndefinedBehaviorSanitizer (build-asan,
# clang) and runs the tests of instrumented code under them: the GoogleTest binary, the
# end-to-end, detection and MPI tests. Only the project's own code is instrumented; LibTorch, libpng
# and TurboJPEG are Debian's builds (ASan still checks every allocation made through
# them). Why each option is set: docs/reliability.md. Usage: bash scripts/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-asan
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -gline-tables-only"

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DIMAGESCORE_BUILD_BENCH=OFF -DIMAGESCORE_BUILD_PYTHON=OFF \
  "-DCMAKE_CXX_FLAGS=$flags" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" > /dev/null
cmake --build "$build"

checks=abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1 OMP_WAIT_POLICY=PASSIVE
# The GoogleTest suite in one process: ctest would start one process per test, and each
# start (LibTorch under ASan) takes about 4 s, 13 minutes for the suite on 2 cores.
ASAN_OPTIONS=$checks "$build/tests/imagescore_tests"
# The command line end to end (every command, every bad input) and detection. Left out:
# cli_faults (signals and full disks, not memory: it ran past its 900 s limit under ASan),
# the browser, packaging and layer checks (no instrumented code of their own).
ASAN_OPTIONS=$checks ctest --test-dir "$build" --output-on-failure -j 2 --timeout 1800 -R '^(cli_end_to_end|detect_cli)$'
# Open MPI leaks at MPI_Finalize, from plugins it has unloaded by then (so the leaks
# cannot be suppressed by library name): its tests run without leak detection.
ASAN_OPTIONS=$checks:detect_leaks=0 ctest --test-dir "$build" --output-on-failure -j 2 --timeout 1800 -R mpi
