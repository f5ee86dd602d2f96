#!/usr/bin/env bash
# Distributed profile and score under `mpirun -n 2` must give exactly the single-process
# files (same bytes), and a failing rank must end the job, not hang it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
imagescore=$1
make_test_data=$2
if ! command -v mpirun >/dev/null; then
  echo "SKIP: mpirun not installed (Debian's openmpi-bin)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir data
"$make_test_data" data
mpi=(mpirun --allow-run-as-root --oversubscribe -n 2)

"$imagescore" train --data idx:data --epochs 2 --batch-size 32 --out model.st -q
"$imagescore" profile --model model.st --data idx:data --out one.st -q
"${mpi[@]}" "$imagescore" profile --model model.st --data idx:data --out two.st -q
check "profile: 2 ranks give the single-process file" cmp -s one.st two.st
"$imagescore" score --model model.st --profiles one.st --data idx:data --per-tap --out one.csv -q
"${mpi[@]}" "$imagescore" score --model model.st --profiles one.st --data idx:data --per-tap --out two.csv -q --json > score.json
check "score: 2 ranks give the single-process file" cmp -s one.csv two.csv
check "score: rank 0 alone prints the summary" test "$(grep -c '"images"' score.json)" -eq 1
check "no part files left" test -z "$(ls two.csv.rank* 2>/dev/null)"
set +e
timeout 120 "${mpi[@]}" "$imagescore" score --model model.st --profiles nothing.st --data idx:data --out bad.csv -q 2> err.txt
rc=$?
set -e
check "a failing rank ends the job with an error (rc=$rc)" test "$rc" -ne 0 -a "$rc" -ne 124
check "the error names the file" grep -q "nothing.st" err.txt
exit_with_failures
