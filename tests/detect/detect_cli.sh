#!/usr/bin/env bash
# Detection mode end to end on the raccoon set (Pascal VOC layout): a random backbone,
# a global profile from `train`, scores of `val`, the top 30%, pseudo-labels exported
# from stand-in predictions, and the report. Exits 77 (skipped) where the shared data
# (../shared/data/raccoon-voc.tar.zst) is absent.
#   detect_cli.sh IMAGESCORE SHARED_DATA_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
imagescore=$1
archive=$2/raccoon-voc.tar.zst
[[ -f $archive ]] || { echo "SKIP: $archive not found"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

zstd -dc "$archive" | tar -x
data=voc:raccoon-voc@64x64
"$imagescore" model init --arch small-cnn --input 3x64x64 --seed 0 --out backbone.st -q
"$imagescore" profile --global --model backbone.st --data $data --split train --out profile.st --json -q > profile.json
check "the global profile holds the 160 train images" grep -q '"count": 160' profile.json
"$imagescore" score --model backbone.st --profiles profile.st --data $data --split val --by global --out val.csv -q
check "40 val images scored" test "$(($(wc -l < val.csv) - 1))" -eq 40
"$imagescore" select --scores val.csv --by image_score --global --fraction 0.3 --out selected.csv -q
check "30% of them selected" test "$(($(wc -l < selected.csv) - 1))" -eq 12

# The val annotations stand in for a detector's predictions (a folder of VOC XML files).
"$imagescore" detect export --selection selected.csv --predictions raccoon-voc/Annotations --classes raccoon \
  --min-confidence 0.5 --out-voc pseudo/Annotations --out-coco pseudo/coco.json --json -q > export.json
check "12 images exported" grep -q '"written": 12' export.json
check "one XML file per selected image" test "$(ls pseudo/Annotations | wc -l)" -eq 12
# The export reads back: exporting the exported folder again gives the same COCO file.
"$imagescore" detect export --selection selected.csv --predictions pseudo/Annotations --out-coco again.json -q
check "the exported VOC files read back to the same COCO file" cmp -s pseudo/coco.json again.json
# And the COCO file works as predictions too.
"$imagescore" detect export --selection selected.csv --predictions pseudo/coco.json --out-voc from-coco -q
check "the exported COCO file reads back to the same VOC files" diff -r pseudo/Annotations from-coco

"$imagescore" report --scores val.csv --selection selected.csv --detections pseudo/coco.json --out report.html -q
check "the report has a detection section" grep -q '"boxes":{"by":"image_score"' report.html

expect_error "has no list ImageSets/Main/test.txt (lists: train, val)" \
  "$imagescore" score --model backbone.st --profiles profile.st --data $data --split test --out x.csv
expect_error "images are 3x224x224 but the model expects 3x64x64" \
  "$imagescore" score --model backbone.st --profiles profile.st --data voc:raccoon-voc --split val --out x.csv
"$imagescore" select --scores val.csv --by image_score --global --fraction 0.5 --out half.csv -q
expect_error "no predictions for the selected image" \
  "$imagescore" detect export --selection half.csv --predictions pseudo/Annotations --out-coco x.json
expect_error "--coco-images: only used with a COCO results file" \
  "$imagescore" detect export --selection selected.csv --predictions pseudo/Annotations --coco-images x --out-coco x.json
expect_error "nothing to write" "$imagescore" detect export --selection selected.csv --predictions pseudo/Annotations
expect_error "--input: expected CxHxW" "$imagescore" model init --arch vgg16 --input 224x224 --out x.st
check "no output left behind by failed commands" test ! -e x.csv -a ! -e x.json -a ! -e x.st

exit_with_failures
