#!/usr/bin/env bash
# Builds the libFuzzer targets of every file parser (fuzz/, in build-fuzz with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer) and runs each for a bounded time,
# starting from its seed corpus (fuzz/corpus/<target>) and its regression inputs
# (fuzz/regressions/<target>). Prints executions and findings per target; exits 1 if
# any target found a crash, a timeout or an excessive allocation (kept in
# build-fuzz/findings/<target>/). Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=build-fuzz

# The targets link with lld: GNU ld keeps every function alive through the coverage
# sections, so its --gc-sections cannot drop the code that needs LibTorch.
if ! command -v ld.lld > /dev/null; then
  echo "fuzz: installing lld" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lld > /dev/null
fi

launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" > /dev/null
cmake --build "$build"

targets=(idx cifar csv_manifest image split profile experiment scores select_analyze options safetensors serve_requests)
total_findings=0
printf '%-14s %12s %9s\n' target executions findings
for target in "${targets[@]}"; do
  work="$build/corpus/$target"        # grows as libFuzzer finds new coverage
  findings="$build/findings/$target"
  mkdir -p "$work" "$findings"
  corpora=("$work" "fuzz/corpus/$target")
  [[ -d fuzz/regressions/$target ]] && corpora+=("fuzz/regressions/$target")
  log="$build/findings/$target.log"
  # A hang is an input taking over 10 s; an allocation over 1 GiB, or 2 GiB resident,
  # is an unbounded allocation.
  set +e
  "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=8192 -print_final_stats=1 -artifact_prefix="$findings/" "${corpora[@]}" > "$log" 2>&1
  set -e
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  found=$(find "$findings" -type f | wc -l)
  total_findings=$((total_findings + found))
  printf '%-14s %12s %9s\n' "$target" "${executions:-?}" "$found"
  if ((found > 0)) || [[ -z $executions ]]; then
    echo "fuzz: $target: see $log and $findings" >&2
    total_findings=$((total_findings + (found == 0)))
  fi
done
exit $((total_findings > 0))
