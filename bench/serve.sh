#!/usr/bin/env bash
# The explorer (imagescore serve) measured on Fashion-MNIST for 10,000 and 100,000 images:
# time to the first screen, the server's memory, scrolling, and thumbnail requests per
# second, as ratios to the 10,000-image run and to `imagescore score` reading the same
# images (decoding them and running the small CNN). The model is the small CNN trained
# for 2 epochs on the test generator's data (its scores are real, only not good ones).
# The 100,000 rows name the 60,000 training images, ids cycled.
#   bash bench/serve.sh [BUILD_DIR]     (needs Chromium, Node.js and report/node_modules)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
imagescore=$build/imagescore
here=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

mkdir small
"$build/tests/make_test_data" small
"$imagescore" study --data idx:small --out study --epochs 2 --reference-epochs 0 -q > /dev/null
started=$(date +%s.%N)
"$imagescore" score --model study/model.safetensors --profiles study/profiles.safetensors --data fashion-mnist \
  --split train --out all.csv -q > /dev/null
score_rate=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", 60000 / (e - s) }')
head -11 all.csv > 10.csv
head -10001 all.csv > 10k.csv
# 100,000 rows: the 60,000 again and again (the explorer does not ask for unique ids).
awk 'NR == 1 { print; next } { rows[NR - 2] = $0 } END { for (i = 0; i < 100000; ++i) print rows[i % 60000] }' \
  all.csv > 100k.csv

for n in 10 10k 100k; do
  node "$here/bench/serve_bench.cjs" "$here/report" "$imagescore" "" --scores $n.csv --data fashion-mnist --split train \
    > $n.json
done

node - "$score_rate" 10.json 10k.json 100k.json <<'JS'
const fs = require('fs');
const [scoreRate, tiny, small, large] = [Number(process.argv[2]), ...process.argv.slice(3).map((f) => JSON.parse(fs.readFileSync(f)))];
const row = (what, a, b, digits = 0) => console.log('| ' + what + ' | ' + a.toFixed(digits) + ' | ' + b.toFixed(digits) +
  ' | ' + (b / a).toFixed(2) + ' |');
console.log('| measure | 10,000 images | 100,000 images | 100k / 10k |');
console.log('| --- | ---: | ---: | ---: |');
row('server start-up, s', small.startup_s, large.startup_s, 2);
row('page ready, ms', small.page_ready_ms, large.page_ready_ms);
row('first screen (visible thumbnails shown), ms', small.first_screen_ms, large.first_screen_ms);
row('one screen after a jump, ms (mean of 20)', small.scroll_screen_ms, large.scroll_screen_ms);
row('re-sort every row, ms', small.sort_ms, large.sort_ms);
row('server memory at first screen, MiB', small.rss_first_screen_mib, large.rss_first_screen_mib);
row('server memory after 2,000 more thumbnails, MiB', small.rss_after_mib, large.rss_after_mib);
row('server memory at first screen beyond a 10-row file\'s, MiB', small.rss_first_screen_mib - tiny.rss_first_screen_mib,
  large.rss_first_screen_mib - tiny.rss_first_screen_mib);
row('thumbnails/s, encoded on demand', small.thumbs_per_s, large.thumbs_per_s);
row('thumbnails/s, from the cache', small.cached_thumbs_per_s, large.cached_thumbs_per_s);
console.log('\n10-row file (the data and LibTorch loaded): start-up ' + tiny.startup_s.toFixed(2) + ' s, first screen ' +
  tiny.first_screen_ms + ' ms, server memory ' + tiny.rss_first_screen_mib.toFixed(0) + ' MiB');
console.log('imagescore score on the same 60,000 images: ' + scoreRate + ' images/s');
for (const [name, r] of [['10k', small], ['100k', large]])
  console.log(name + ': encoded thumbnails / score images = ' + (r.thumbs_per_s / scoreRate).toFixed(2) +
    ', cached / encoded = ' + (r.cached_thumbs_per_s / r.thumbs_per_s).toFixed(2));
JS
