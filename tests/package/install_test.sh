#!/usr/bin/env bash
# The installed package as a user meets it (docs/cpp.md): `cmake --install` into a fresh
# prefix; the program on that prefix's PATH and its --version; public headers and the
# exported CMake package free of LibTorch; examples/cpp configured with
# find_package(imagescore), built without any LibTorch header or flag, run, and writing
# exactly the scores file of the command line; the same program built with pkg-config;
# the Python module imported from the prefix.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR MAKE_TEST_DATA VERSION CXX_COMPILER [PYTHON]
#   (PYTHON empty when the build has no Python package). CXXFLAGS and LDFLAGS from the
#   environment reach the example's build (the sanitizer build passes its own).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
build=$(realpath "$1") source_dir=$(realpath "$2") make_test_data=$3 version=$4 cxx=$5 python=${6:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" > install.log
libdir=$(dirname "$(find "$prefix" -name 'libimagescore.so' | head -n 1)")
check "the library is installed" test -f "$libdir/libimagescore.so"
check "the public headers are installed" test -f "$prefix/include/imagescore/score/profile.hpp"
check "the version header is installed" grep -q "\"$version\"" "$prefix/include/imagescore/core/version.hpp"
check "the CMake package is installed" test -f "$libdir/cmake/imagescore/imagescoreConfig.cmake"
check "the pkg-config file is installed" test -f "$libdir/pkgconfig/imagescore.pc"
check "no installed header includes LibTorch" bash -c "! grep -rqE '#include [<\"](torch|ATen|c10)/' '$prefix/include'"
check "the exported target does not name LibTorch" bash -c "! grep -qi torch '$libdir/cmake/imagescore/imagescoreTargets.cmake'"

# The program, found on PATH, from a folder that is not the build tree.
check "imagescore --version prints the project's version" \
  bash -c "[[ \$(PATH='$prefix/bin':\$PATH imagescore --version) == 'imagescore $version' ]]"

mkdir data
"$make_test_data" data
PATH=$prefix/bin:$PATH imagescore model init --arch small-cnn --input 1x28x28 --classes 10 --seed 3 --normalize none --out model.st -q
PATH=$prefix/bin:$PATH imagescore profile --model model.st --data idx:data --out profiles.st -q
PATH=$prefix/bin:$PATH imagescore score --model model.st --profiles profiles.st --data idx:data --split test --out cli.csv -q

# examples/cpp against the installed tree.
cmake -S "$source_dir/examples/cpp" -B example -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" \
  "-DCMAKE_CXX_FLAGS=${CXXFLAGS:-}" "-DCMAKE_EXE_LINKER_FLAGS=${LDFLAGS:-}" > configure.log
cmake --build example > build.log
ninja -C example -t commands > commands.txt
check "the example compiles and links without LibTorch" bash -c "grep -q score_pool commands.txt && ! grep -qiE 'torch|ATen|c10' commands.txt"
check "the example runs" ./example/score_pool model.st idx:data idx:data example.csv
check "the example writes the command line's scores file" cmp -s example.csv cli.csv

# The same program with pkg-config (no CMake).
export PKG_CONFIG_PATH=$libdir/pkgconfig
check "pkg-config knows the version" bash -c "[[ \$(pkg-config --modversion imagescore) == '$version' ]]"
# shellcheck disable=SC2046
"$cxx" ${CXXFLAGS:-} -o pc_score_pool "$source_dir/examples/cpp/score_pool.cpp" $(pkg-config --cflags --libs imagescore) ${LDFLAGS:-}
check "the pkg-config build writes the same scores" \
  bash -c "LD_LIBRARY_PATH='$libdir' ./pc_score_pool model.st idx:data idx:data pc.csv > /dev/null && cmp -s pc.csv cli.csv"

if [[ -n $python ]]; then
  site=$(dirname "$(find "$prefix" -name '__init__.py' -path '*/imagescore/*' | head -n 1)")
  check "the Python package is installed" test -f "$site/torch.py"
  check "the installed Python module imports, and finds the installed library" \
    bash -c "cd / && [[ \$(PYTHONPATH='$(dirname "$site")' '$python' -c 'import imagescore; print(imagescore.__version__, imagescore.__file__)') == '$version $site/__init__.py' ]]"
  check "it loads the installed libimagescore, not the build tree's" \
    bash -c "cd / && PYTHONPATH='$(dirname "$site")' '$python' -c 'import imagescore, sys; print(open(\"/proc/self/maps\").read())' | grep -q '$libdir/libimagescore.so'"
fi
exit_with_failures
