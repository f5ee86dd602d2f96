#!/usr/bin/env bash
# scripts/check-layers finds what it must: a dependency against the layer order, a private
# header used across layers, LibTorch in a public header, and a folder that is no layer.
# Usage: self_test.sh CHECK_LAYERS
set -euo pipefail
check=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make_tree() {
  rm -rf "$work/tree"
  mkdir -p "$work/tree/src/core" "$work/tree/src/score" "$work/tree/src/pipeline" "$work/tree/include/imagescore/score" \
           "$work/tree/include/imagescore/pipeline" "$work/tree/tools"
  echo '#pragma once' > "$work/tree/include/imagescore/pipeline/study.hpp"
  echo '#pragma once' > "$work/tree/include/imagescore/score/score.hpp"
  echo '#pragma once' > "$work/tree/src/pipeline/detail.hpp"
  printf '#include "imagescore/score/score.hpp"\n' > "$work/tree/src/pipeline/study.cpp"
  printf '#include "imagescore/pipeline/study.hpp"\n' > "$work/tree/tools/main.cpp"
}

failures=0 passes=0
expect() {  # expect WHAT: the checker fails and prints WHAT
  local what=$1 out
  if out=$(python3 "$check" --root "$work/tree" 2> /dev/null); then
    echo "FAILED: check-layers passed a tree where it should report: $what"; failures=$((failures + 1))
  elif ! grep -qF -- "$what" <<< "$out"; then
    echo "FAILED: expected '$what' in:"; echo "$out"; failures=$((failures + 1))
  else
    echo "ok: $what"; passes=$((passes + 1))
  fi
}

make_tree
if python3 "$check" --root "$work/tree" > /dev/null; then
  echo "ok: a clean tree passes"; passes=$((passes + 1))
else
  echo "FAILED: a clean tree was refused"; failures=$((failures + 1))
fi

make_tree
printf '#include "imagescore/pipeline/study.hpp"\n' > "$work/tree/src/score/scorer.cpp"
expect "src/score/scorer.cpp:1: score may not use pipeline (imagescore/pipeline/study.hpp)"

make_tree
printf '#include "pipeline/detail.hpp"\n' > "$work/tree/src/score/scorer.cpp"
expect "src/score/scorer.cpp:1: score includes pipeline's private header pipeline/detail.hpp"

make_tree
printf '#include <torch/torch.h>\n' >> "$work/tree/include/imagescore/score/score.hpp"
expect "include/imagescore/score/score.hpp:2: public header includes LibTorch <torch/torch.h>"

make_tree
printf '#include "pipeline/detail.hpp"\n' >> "$work/tree/tools/main.cpp"
expect "tools/main.cpp:2: tools/ includes the library's private header pipeline/detail.hpp"

make_tree
mkdir -p "$work/tree/src/extras"
expect "src/extras: a folder that is no layer"

echo "$passes passed, $failures failed"
exit $((failures > 0))
