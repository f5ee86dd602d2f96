#!/usr/bin/env bash
# The analyze and report commands end to end on the small generated data set, then the
# reports in a real browser (headless Chromium driven by playwright-core).
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
trap 'rm -rf "$work"' EXIT
cd "$work"

mkdir data
"$make_test_data" data
"$imagescore" study --data idx:data --out study --epochs 2 --reference-epochs 0 -q > /dev/null
check "the main job writes report.html" test -s study/report.html

"$imagescore" analyze --scores study/scores.csv --scores-train study/scores.csv --bins 5 --binning quantile \
  --resamples 100 --seed 4 --out analysis.json --json -q > analyze.out
check "analyze writes JSON" grep -q '"format": "imagescore-analysis"' analysis.json
check "analyze has training intervals" grep -q '"training": {' analysis.json
check "analyze --json reports AUROC" grep -q '"image_score"' analyze.out
"$imagescore" analyze --scores study/scores.csv --bins 5 --binning quantile --resamples 100 --seed 4 --out again.json -q
"$imagescore" analyze --scores study/scores.csv --scores-train study/scores.csv --bins 5 --binning quantile \
  --resamples 100 --seed 4 --out analysis2.json -q
check "analyze is reproducible" cmp -s analysis.json analysis2.json

# A study folder that is also a self-training run, with HTML in class names and a path.
cp -r study combo
nasty='<img src=x onerror=alert(1)>.png'
# On the row of the highest image score (shown first in its class's gallery). The edited
# path no longer names an image of the data, which the report refuses: this page is drawn
# without the data (the other pages check the thumbnails).
column=$(head -1 combo/scores.csv | tr , '\n' | grep -nx image_score | cut -d: -f1)
top=$(awk -F, -v c="$column" 'NR > 1 && (best == "" || $c + 0 > best) { best = $c + 0; line = NR } END { print line }' combo/scores.csv)
sed -i "${top}s#^\([0-9]*\),[^,]*,#\1,$nasty,#" combo/scores.csv
rm combo/split.json combo/model.safetensors
cp study/scores.csv moved.csv
sed -i "2s#^\([0-9]*\),[^,]*,#\1,elsewhere.png,#" moved.csv
expect_error "is elsewhere.png but in idx:data it is" \
  "$imagescore" report --scores moved.csv --data idx:data --split train --out x.html
classes='["<b>T-shirt</b>", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
: > combo/epochs.jsonl
for arm in baseline softmax imagescore; do
  for epoch in 0 1 2; do
    for class in 0 1 2; do
      acc=$(awk -v e=$epoch -v c=$class -v a=${#arm} 'BEGIN { printf "%.3f", 0.6 + 0.05 * e + 0.01 * c + 0.002 * a }')
      echo "{\"protocol\": \"per-class\", \"arm\": \"$arm\", \"class\": $class, \"epoch\": $epoch, \"test_accuracy\": 0.8, \"per_class_accuracy\": [$acc, $acc, $acc], \"added\": 5, \"added_correct\": 4, \"added_precision\": 0.8}" >> combo/epochs.jsonl
    done
    echo "{\"protocol\": \"joint\", \"arm\": \"$arm\", \"class\": null, \"epoch\": $epoch, \"test_accuracy\": 0.8$epoch, \"per_class_accuracy\": [], \"added\": 5, \"added_correct\": null, \"added_precision\": null}" >> combo/epochs.jsonl
  done
done
cat > combo/stats.json <<JSON
{"classes": $classes,
 "rows": [{"class": "<b>T-shirt</b>", "baseline": 0.7, "train": 0.72, "diff_tb": 0.02, "p_value_tb": 0.01, "softmax": 0.71, "diff_sb": 0.01, "p_value_sb": 0.3, "diff_ts": 0.01},
          {"class": "1", "baseline": 0.8, "train": 0.79, "diff_tb": -0.01, "p_value_tb": 0.5, "softmax": 0.82, "diff_sb": 0.02, "p_value_sb": 0.0001, "diff_ts": -0.03}],
 "significant_tb": 1, "significant_sb": 1}
JSON
cat > combo/assembly.json <<JSON
[{"epoch": 1, "base": 0.8, "baseline": 0.8, "assembled": 0.81, "claimed_by_none": 3, "claimed_by_several": 1},
 {"epoch": 2, "base": 0.8, "baseline": 0.8, "assembled": 0.83, "claimed_by_none": 2, "claimed_by_several": 1}]
JSON
"$imagescore" report --run combo --resamples 100 --gallery-count 3 --out combo.html -q
check "report --run writes the page" test -s combo.html
check "data strings are escaped in the page" bash -c "! grep -qF '<img src=x' combo.html && ! grep -qF '<b>T-shirt' combo.html"
# A self-training run over three seeds: the curves are drawn as a mean with its spread.
mkdir seeds
: > seeds/epochs.jsonl
for seed in 0 1 2; do
  for arm in baseline softmax; do
    for epoch in 0 1 2; do
      acc=$(awk -v e=$epoch -v s=$seed -v a=${#arm} 'BEGIN { printf "%.3f", 0.7 + 0.02 * e + 0.01 * s + 0.001 * a }')
      correct=null
      [[ $arm == softmax ]] && correct=$((90 + seed + epoch))
      echo "{\"protocol\": \"joint\", \"arm\": \"$arm\", \"class\": null, \"epoch\": $epoch, \"seed\": $seed, \"test_accuracy\": $acc, \"per_class_accuracy\": [], \"added\": 100, \"added_correct\": $correct}" >> seeds/epochs.jsonl
    done
  done
done
"$imagescore" stats seeds --resamples 200 -q > /dev/null
check "stats over seeds names the interval" grep -q "95% interval over seeds" seeds/stats.md
"$imagescore" report --run seeds --out seeds.html -q
check "report --run draws a run over seeds" test -s seeds.html
check "stats over seeds are in stats.json" grep -q "\"over_seeds\"" seeds/stats.json
"$imagescore" report --scores study/scores.csv --data idx:data --split train --model study/model.safetensors \
  --feature-image 7 --gallery-by msp --out scores.html --json -q > report.out
check "report --scores --json names the page" grep -q '"out": "scores.html"' report.out

# Bad input.
expect_error "nothing.csv" "$imagescore" analyze --scores nothing.csv --out x.json
expect_error "--binning: unknown binning 'log' (expected width or quantile)" "$imagescore" analyze --scores study/scores.csv --binning log --out x.json
expect_error "--confidence: must be in (0, 1)" "$imagescore" analyze --scores study/scores.csv --confidence 2 --out x.json
expect_error "--bins" "$imagescore" analyze --scores study/scores.csv --bins 0 --out x.json
cut -d, -f1-4,6- study/scores.csv > broken.csv
expect_error "broken.csv" "$imagescore" analyze --scores broken.csv --out x.json
expect_error "--scores: give exactly one of a scores file and a run folder" "$imagescore" report --out x.html
expect_error "--run" "$imagescore" report --scores study/scores.csv --run study --out x.html
expect_error "nowhere: no such folder" "$imagescore" report --run nowhere --out x.html
expect_error "data: neither a study folder" "$imagescore" report --run data --out x.html
expect_error "wrong data or split?" "$imagescore" report --scores study/scores.csv --data idx:data --split test --out x.html
expect_error "--feature-image: needs a model" "$imagescore" report --scores study/scores.csv --feature-image 3 --out x.html
expect_error "no column 'confidence'" "$imagescore" report --scores study/scores.csv --gallery-by confidence --out x.html
check "no output left behind by failed commands" test ! -e x.json -a ! -e x.html

# The pages in a real browser.
chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
  echo "SKIP: the browser checks need Chromium ($chromium is missing; scripts/setup.sh installs Debian's chromium)"
  exit $((failures > 0 ? 1 : 77))
fi
mkdir -p "$screenshots"
for page in study/report.html combo.html scores.html seeds.html; do
  name=${page//\//-}
  name=${name%.html}
  expected=()
  [[ $page == combo.html ]] && expected=("$nasty" "<b>T-shirt</b>" "Table 3" "Per-class protocol")
  [[ $page == seeds.html ]] && expected=("3 seeds: the line is the mean over seeds" "Self-training over seeds")
  echo "== $page"
  if ! node "$here/check_report.cjs" "$npm_dir" "$page" "$screenshots/$name.png" "${expected[@]}"; then
    failures=$((failures + 1))
  fi
done

exit_with_failures
