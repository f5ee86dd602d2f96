#!/usr/bin/env bash
# The command-line program end to end on a small generated data set: every sub-command,
# its --json output, and bad input (one-line error naming the file, non-zero exit).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
imagescore=$1
make_test_data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir data
"$make_test_data" data
data=idx:data

json_number() {  # json_number KEY FILE: the first numeric value of "KEY"
  grep -o "\"$1\": [0-9.e-]*" "$2" | head -n 1 | sed 's/.*: //'
}

"$imagescore" split --data $data --fraction 0.5 --seed 3 --out split.json --json > split.out
check "split counts" grep -q '"training": 200' split.out
"$imagescore" split --data $data --fraction 0.5 --seed 3 --out split2.json -q
check "split is reproducible" cmp -s split.json split2.json

"$imagescore" train --data $data --split-file split.json --model small-cnn --epochs 3 --batch-size 32 --out model.st --quiet --json > train.out
check "train writes a checkpoint" test -s model.st
"$imagescore" eval --model model.st --data $data --split test --json -q > eval.out
acc=$(json_number accuracy eval.out)
check "test accuracy $acc beats chance clearly" awk -v a="$acc" 'BEGIN { exit !(a >= 0.6) }'
check "eval reports the confusion matrix" grep -q '"confusion"' eval.out
"$imagescore" eval --model model.st --data $data --split test > eval.txt 2>/dev/null
check "eval prints a table" grep -q 'accuracy' eval.txt

"$imagescore" model info --model model.st --json > info.out
check "model info lists the taps" grep -q '"conv2"' info.out
check "model info estimates the profiles" grep -q '"profile_estimate": {' info.out
check "model info plans the passes" grep -q '"passes": 1' info.out
"$imagescore" model info --model model.st --max-memory 1000 --json > info-small.out
check "model info says when the profiles do not fit --max-memory" grep -q '"refusal": "max_memory: the profiles need' info-small.out
expect_error "--max-memory: the profiles need" "$imagescore" profile --model model.st --data $data --max-memory 1000 --out x.st

"$imagescore" profile --model model.st --data $data --split-file split.json --part training --out prof.st -q
"$imagescore" profile --model model.st --data $data --split-file split.json --part training --class-group 1 --out grouped.st -q
check "profiles built one class per pass give the same file" cmp -s prof.st grouped.st
"$imagescore" profile --model model.st --data $data --split-file split.json --part training --keep-sums --out sums.st -q
check "--keep-sums keeps the exact sums (a larger file)" test "$(stat -c %s sums.st)" -gt "$(stat -c %s prof.st)"
for i in 1 2; do
  "$imagescore" profile --model model.st --data $data --split-file split.json --shard $i/2 --out shard$i.st -q
done
"$imagescore" profile merge shard2.st shard1.st --out merged.st -q
"$imagescore" score --model model.st --profiles prof.st --data $data --split-file split.json --part additional --out s1.csv -q
"$imagescore" score --model model.st --profiles merged.st --data $data --split-file split.json --part additional --out s2.csv -q
check "merged shards score exactly like one pass" cmp -s s1.csv s2.csv
"$imagescore" score --model model.st --profiles sums.st --data $data --split-file split.json --part additional --out s7.csv -q
check "kept sums score exactly like masks alone" cmp -s s1.csv s7.csv
# Shards of different parts of the data never merge.
"$imagescore" profile --model model.st --data $data --split-file split.json --part additional --shard 2/2 --out other2.st -q
expect_error "other2.st: built from other data than shard1.st" "$imagescore" profile merge shard1.st other2.st --out x.st
"$imagescore" profile --model model.st --data $data --split test --shard 2/2 --out test2.st -q
expect_error "test2.st: built from other data than shard1.st" "$imagescore" profile merge shard1.st test2.st --out x.st
"$imagescore" score --model model.st --profiles prof.st --data $data --split test --out s3.csv --per-tap --json -q --threads 1 --batch-size 7 > score.out
"$imagescore" score --model model.st --profiles prof.st --data $data --split test --out s4.csv --per-tap -q --threads 2 --batch-size 64
check "scores independent of threads and batch size" cmp -s s3.csv s4.csv
check "score header" grep -q '^id,path,label,pred,correct,label_name,pred_name,image_score,msp,margin,neg_entropy,energy,max_logit,doctor,knn,trust,mahalanobis,rel_mahalanobis,nac,tap:conv1' s3.csv
check "score --json reports AUROC" grep -q '"image_score"' score.out
# The approximate nearest-neighbour index (docs/method.md 4c.3): bad values, then a fit.
expect_error "--knn-index: must be exact or ivf, got 'hnsw'" "$imagescore" profile --model model.st --data $data --knn-index hnsw --out x.st
expect_error "--knn-nprobe: must be >= 1" "$imagescore" profile --model model.st --data $data --knn-index ivf --knn-nprobe 0 --out x.st
expect_error "--knn-index: must be exact or ivf" "$imagescore" study --data $data --out x --knn-index flat -q
"$imagescore" profile --model model.st --data $data --scores knn,trust --knn-index ivf --knn-nprobe 2 --out ivf.st -q
"$imagescore" score --model model.st --profiles ivf.st --data $data --split test --scores knn,trust --out s5.csv -q --threads 1 --batch-size 7
"$imagescore" score --model model.st --profiles ivf.st --data $data --split test --scores knn,trust --out s6.csv -q --threads 2 --batch-size 64
check "ivf scores independent of threads and batch size" cmp -s s5.csv s6.csv

"$imagescore" select --scores s1.csv --by image_score --fraction 0.3 --out sel.csv --json -q > sel.out
check "selection file" grep -q '^id,path,pseudo_label,pseudo_label_name,score' sel.csv
check "selection reports precision" grep -q '"precision"' sel.out
"$imagescore" select --scores s1.csv --by msp --top 2 --out top.csv -q
check "top 2 per class" test "$(($(wc -l < top.csv) - 1))" -le 20

"$imagescore" study --data $data --out study --epochs 2 --reference-epochs 1 -q > study.txt
check "study prints the comparison" grep -q 'Precision of the pseudo-labels' study.txt
check "study says why it fitted no learned fusion on separable data" grep -q "No learned fusion: the .* held-out images have 0 wrong predictions" study.txt
check "summary records the skipped fusion" grep -q "\"learned_fusion_skipped\": \"the " study/summary.json
check "study writes its files" test -s study/summary.json -a -s study/scores.csv -a -s study/selection_image_score.csv

# The README's own-data session on a folder of photos of mixed sizes, unchanged but for
# the size; then the same folder without a size, and under renamed class folders.
"$make_test_data" --photos photos
photos=folder:photos@16x16
"$imagescore" split --data $photos --fraction 0.5 --seed 1 --out psplit.json -q
"$imagescore" train --data $photos --split-file psplit.json --model small-cnn --epochs 4 --batch-size 6 --out pmodel.st -q
"$imagescore" profile --model pmodel.st --data $photos --split-file psplit.json --part training --out pprof.st -q
"$imagescore" score --model pmodel.st --profiles pprof.st --data $photos --split-file psplit.json --part additional --out pscores.csv -q
check "photos of mixed sizes are scored" test "$(wc -l < pscores.csv)" -eq 19
check "with their class names" grep -q '^[0-9]*,[^,]*photos/grey/[0-9]*.png,1,[0-9],[01],grey,' pscores.csv
"$imagescore" select --scores pscores.csv --by image_score --fraction 0.3 --out psel.csv -q
check "and selected" test -s psel.csv
crc32() { python3 -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$1"; }
check "score records its provenance" grep -q '"command": "score"' pscores.csv.provenance.json
check "with the output's checksum" grep -q "\"crc32\": \"$(crc32 pscores.csv)\"" pscores.csv.provenance.json
check "and the model's" grep -q "\"crc32\": \"$(crc32 pmodel.st)\"" pscores.csv.provenance.json
check "and every option" grep -q '"--data": "folder:photos@16x16"' pscores.csv.provenance.json
check "every output has one" test -s psplit.json.provenance.json -a -s pmodel.st.provenance.json -a -s pprof.st.provenance.json -a -s psel.csv.provenance.json
expect_error "but the model expects 3x16x16 (photos of any size: folder:photos@16x16)" "$imagescore" score --model pmodel.st --profiles pprof.st --data folder:photos --out x.csv
mv photos/light photos/bright
expect_error "class 'bright' is not among the model's classes ('dark', 'grey', 'light')" \
  "$imagescore" eval --model pmodel.st --data $photos

# Bad input.
expect_error "nothing.st" "$imagescore" eval --model nothing.st --data $data
expect_error "unknown kind" "$imagescore" eval --model model.st --data zip:data
printf 'garbage' > broken.st
expect_error "broken.st" "$imagescore" model info --model broken.st
expect_error "--rho: must be in (0, 1]" "$imagescore" profile --model model.st --data $data --rho 1.5 --out p.st
expect_error "--taps: unknown tap 'conv7'" "$imagescore" profile --model model.st --data $data --taps conv7 --out p.st
expect_error "--shard" "$imagescore" profile --model model.st --data $data --shard 3/2 --out p.st
"$imagescore" train --data $data --epochs 1 --out other.st -q --seed 9
expect_error "prof.st: profile from another model" "$imagescore" score --model other.st --profiles prof.st --data $data --out x.csv
expect_error "shard1.st: is shard 1/2 only" "$imagescore" score --model model.st --profiles shard1.st --data $data --out x.csv
expect_error "s1.csv: no column 'confidence'" "$imagescore" select --scores s1.csv --by confidence --fraction 0.3 --out x.csv
head -c 100 data/train-images-idx3-ubyte > trunc-images-idx3-ubyte
mkdir bad && cp trunc-images-idx3-ubyte bad/train-images-idx3-ubyte && cp data/train-labels-idx1-ubyte bad/
expect_error "--epochs" "$imagescore" train --data $data --epochs many --out y.st
# A file name with a newline or an escape code still makes one line that cannot fake another.
expect_error 'no\x0aimagescore: done\x1b[0m.st: cannot open' "$imagescore" score --model $'no\nimagescore: done\e[0m.st' \
  --profiles prof.st --data $data --out x.csv
expect_error "--out: is empty: give a file name" "$imagescore" score --model model.st --profiles prof.st --data $data --out ""
expect_error "train: loss became" "$imagescore" train --data $data --epochs 1 --lr 1e30 --out diverged.st
check "a diverged training writes no model" test ! -e diverged.st
expect_error "--epochs: empty value, expected a number" "$imagescore" train --data $data --epochs "" --out y.st
expect_error "--fraction: empty value, expected a number" "$imagescore" select --scores study/scores.csv --fraction "" \
  --out y.csv
expect_error "--threads: Value 99999 not in range 0 to" "$imagescore" score --model model.st --profiles prof.st --data $data \
  --threads 99999 --out x.csv
expect_error "--threads: Value -3 not in range 0 to" "$imagescore" score --model model.st --profiles prof.st --data $data \
  --threads -3 --out x.csv
expect_error "--bins: must be at most 10000, got 1000000" "$imagescore" analyze --scores study/scores.csv --bins 1000000 --out an.json
expect_error "--labelled: must be in (0, 1)" "$imagescore" study --data $data --labelled 1.5 --out st2
expect_error "--floor" "$imagescore" score --model model.st --profiles prof.st --data $data --floor 2 --out x.csv
expect_error "truncated" "$imagescore" train --data idx:bad --epochs 1 --out y.st
expect_error "--device: unknown device 'gpu'" "$imagescore" score --model model.st --profiles prof.st --data $data --device gpu --out x.csv
check "no output left behind by failed commands" test ! -e x.csv -a ! -e y.st -a ! -e p.st

# The same commands on a GPU when one is under test (scripts/gpu-check), else refused.
gpu=${IMAGESCORE_TEST_DEVICE:-}
if [[ -n $gpu ]]; then
  "$imagescore" train --data $data --split-file split.json --epochs 1 --device "$gpu" --out gpu-model.st -q
  check "train on $gpu writes a checkpoint" test -s gpu-model.st
  "$imagescore" profile --model model.st --data $data --split-file split.json --part training --device "$gpu" --out gpu-prof.st -q
  for i in 1 2; do
    "$imagescore" score --model model.st --profiles gpu-prof.st --data $data --split-file split.json --part additional \
      --device "$gpu" --out gpu$i.csv -q
  done
  check "scores on $gpu repeat run to run" cmp -s gpu1.csv gpu2.csv
  check "$gpu predicts the CPU's classes" cmp -s <(cut -d, -f1-5 s1.csv) <(cut -d, -f1-5 gpu1.csv)
else
  expect_error "--device: 'cuda'" "$imagescore" score --model model.st --profiles prof.st --data $data --device cuda --out x.csv
fi

exit_with_failures
