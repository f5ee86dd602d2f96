#!/usr/bin/env bash
# The explorer (imagescore serve) end to end: the main job's output served and used in a
# real browser (headless Chromium driven by playwright-core: sort, filter, open an image,
# brush a scatter, list disagreements, export a selection and check the file), a page of
# hostile names, and Ctrl-C.
#   browser_test.sh IMAGESCORE MAKE_TEST_DATA NPM_DIR SCREENSHOT_DIR
# Exits 77 (skipped) only when Chromium is not installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
imagescore=$1
make_test_data=$2
npm_dir=$3
screenshots=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
server=
trap '[[ -n $server ]] && kill "$server" 2> /dev/null; rm -rf "$work"' EXIT
cd "$work"

mkdir data
"$make_test_data" data
"$imagescore" study --data idx:data --out study --epochs 2 --reference-epochs 0 -q > /dev/null
# Every training image with the per-tap terms of its image score (the study's own file
# has none).
"$imagescore" score --model study/model.safetensors --profiles study/profiles.safetensors --data idx:data \
  --split train --per-tap --out pertap.csv -q > /dev/null

# start_server LOG ARGS...: starts `imagescore serve ARGS` on a free port; sets $server
# and $url once it listens.
start_server() {
  local log=$1
  shift
  "$imagescore" serve --port 0 "$@" 2> "$log" &
  server=$!
  url=
  for _ in $(seq 100); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$log" || true)
    [[ -n $url ]] && return 0
    kill -0 "$server" 2> /dev/null || break
    sleep 0.1
  done
  echo "FAILED: the server did not start:"
  cat "$log"
  failures=$((failures + 1))
  return 1
}

# stop_server LOG: Ctrl-C, then the server must exit 0 within a few seconds.
stop_server() {
  kill -INT "$server"
  local rc=0
  timeout 10 tail --pid="$server" -f /dev/null || rc=$?
  wait "$server" || rc=$?
  server=
  check "Ctrl-C stops the server cleanly (exit 0, 'stopped')" test "$rc" -eq 0
  check "the server said it stopped" grep -q "serve: stopped" "$1"
}

# The main job's output opens as it is, with its model and profiles.
start_server run.log --run study
check "serve --run prints its progress" grep -q "serve: 360 images, 12 score columns" run.log
check "serve --run loads the study's model and profiles" \
  grep -q "serve: loading study/model.safetensors and study/profiles.safetensors" run.log
check "the study's table is served" bash -c "curl -sf '${url}api/table' | grep -q '\"rows\":360'"
check "thumbnails of the study are served as PNG" bash -c "curl -sf '${url}api/thumb?row=0' | head -c 4 | grep -q PNG"
# Computed on demand, the image score of row 5 and its terms are the scores file's.
curl -sf "${url}api/terms?row=5" > terms.json
check "per-tap terms computed on demand add up to the file's image score" python3 -c "
import csv, json, math
terms = json.load(open('terms.json'))
row = list(csv.DictReader(open('study/scores.csv')))[5]
assert terms['image_score'] == float(row['image_score']), (terms, row['image_score'])
assert math.isclose(sum(t['term'] for t in terms['taps']), terms['image_score'], abs_tol=1e-12)
assert [t['tap'] for t in terms['taps']] == ['conv1', 'conv2', 'fc1', 'output']"
curl -sf "${url}api/neighbours?row=5" > neighbours.json
check "the nearest labelled images give the file's knn score, with their pixels" python3 -c "
import csv, json
near = json.load(open('neighbours.json'))
row = list(csv.DictReader(open('study/scores.csv')))[5]
assert near['knn'] == float(row['knn']), (near['knn'], row['knn'])
assert len(near['neighbours']) == near['k'] and all(n['image'].startswith('data:image/png') for n in near['neighbours'])"
check "the first layer's feature maps are served" \
  bash -c "curl -sf '${url}api/features?row=5' | grep -q '\"channels_shown\":32'"

# Bad input: one line naming the option or the file.
expect_error "--scores: give exactly one of a scores file and a run folder" "$imagescore" serve
expect_error "nowhere: no such folder" "$imagescore" serve --run nowhere
expect_error "wrong data or split?" "$imagescore" serve --scores pertap.csv --data idx:data --split test --port 0 -q
expect_error "--port: must be from 0 to 65535" "$imagescore" serve --scores pertap.csv --port 70000 -q

chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
  stop_server run.log
  echo "SKIP: the browser checks need Chromium ($chromium is missing; scripts/setup.sh installs Debian's chromium)"
  exit $((failures > 0 ? 1 : 77))
fi
mkdir -p "$screenshots"

# check_page NAME: every feature of the page at $url in the browser, then the exported
# files: selection files the other commands read (`select`'s columns), with the rows the
# page said it exported.
check_page() {
  echo "== $1: the explorer at $url"
  if ! node "$here/check_explorer.cjs" "$npm_dir" "$url" "$screenshots" "$work/$1"; then
    failures=$((failures + 1))
  fi
  check "$1: the exported selection has the selection header" \
    bash -c "head -1 '$work/$1/ticked.csv' | grep -qx 'id,path,pseudo_label,pseudo_label_name,score'"
  check "$1: the exported filter has one line per image of the filter" \
    bash -c "test \$(( \$(wc -l < '$work/$1/filter.csv') - 1 )) -eq \$(cat '$work/$1/filter.count')"
}
# The main job's output (per-tap terms computed on demand), then a scores file with them.
check_page study
stop_server run.log
start_server pertap.log --scores pertap.csv --data idx:data --split train --model study/model.safetensors
check_page pertap
stop_server pertap.log

# Hostile names: a path and a class name that are HTML, shown as text only.
nasty='<img src=x onerror=alert(1)>'
awk -F, -v OFS=, -v nasty="$nasty" 'NR == 2 { $2 = nasty ".png" } NR > 1 { if ($6 == "0") $6 = nasty; if ($7 == "0") $7 = nasty } { print }' \
  pertap.csv > hostile.csv
start_server hostile.log --scores hostile.csv
echo "== hostile names at $url"
if ! node "$here/check_explorer.cjs" "$npm_dir" "$url" "$screenshots" "" "$nasty"; then
  failures=$((failures + 1))
fi
stop_server hostile.log

exit_with_failures
