#!/usr/bin/env bash
# Faults the command-line program must survive (docs/reliability.md):
#  - kill -9 during profile, score and train leaves nothing under the output's name, and
#    a rerun writes exactly what an uninterrupted run writes;
#  - SIGINT stops cleanly: exit status 130, one line on stderr, no output, no temporary file;
#    SIGTERM the same with status 143;
#  - a full disk and a read-only output folder give a one-line error and a non-zero exit.
# The last two need `mount` (root in a container that allows it); they are skipped with a
# message otherwise. Usage: faults.sh IMAGESCORE MAKE_TEST_DATA
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
imagescore=$1
make_test_data=$2
work=$(mktemp -d)
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# repeat_idx SRC DST HEADER_BYTES TIMES: an IDX file holding SRC's items TIMES over.
repeat_idx() {
  local src=$1 dst=$2 header=$3 times=$4
  local count
  count=$(od -An -tu1 -j4 -N4 "$src" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
  count=$((count * times))
  {
    head -c 4 "$src"
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((count >> 24 & 255)) $((count >> 16 & 255)) \
      $((count >> 8 & 255)) $((count & 255)))"
    head -c "$header" "$src" | tail -c +9
    for ((i = 0; i < times; ++i)); do tail -c +$((header + 1)) "$src"; done
  } > "$dst"
}

# The small generated set (400 training images), and a large one (the same images 50
# times over, 20,000) on which profile and score run for several seconds. Kept no larger:
# on CI's shared machine, beside other tests, each pass runs 10-20 times longer than alone.
mkdir small large
"$make_test_data" small
repeat_idx small/train-images-idx3-ubyte large/train-images-idx3-ubyte 16 50
repeat_idx small/train-labels-idx1-ubyte large/train-labels-idx1-ubyte 8 50
cp small/t10k-* large/
"$imagescore" train --data idx:small --epochs 1 --out model.st -q
"$imagescore" profile --model model.st --data idx:small --out small-prof.st -q

# command_line NAME OUT: sets `cmd` to the long-running command NAME (profile, score or
# train) writing OUT. Training uses one thread: its weights are bitwise reproducible only
# at a fixed thread count.
command_line() {
  case $1 in
    profile) cmd=("$imagescore" profile --model model.st --data idx:large --out "$2" -q --threads 2) ;;
    score) cmd=("$imagescore" score --model model.st --profiles small-prof.st --data idx:large --split train --out "$2" -q
                --threads 2) ;;
    train) cmd=("$imagescore" train --data idx:small --epochs 20 --batch-size 16 --out "$2" -q --threads 1) ;;
  esac
}

# no_output NAME: nothing under NAME (a NAME.tmp.PID file may remain after kill -9: its
# name never looks like a finished output).
no_output() { [[ ! -e $1 ]]; }
no_temporary() { ! compgen -G "$1.tmp.*" > /dev/null; }

# same_result A B: identical files; checkpoints record training times, so for them the
# weights hash is compared.
same_result() {
  if [[ $1 == *.train.st ]]; then
    weights_hash() { "$imagescore" model info --model "$1" --json | grep '"weights_hash"'; }
    [[ $(weights_hash "$1") == $(weights_hash "$2") ]]
  else
    cmp -s "$1" "$2"
  fi
}

# catches_sigint PID: whether the process has installed its SIGINT handler (bit 2 of
# SigCgt). A non-interactive shell starts background jobs with SIGINT ignored, so a
# SIGINT sent during start-up (loading LibTorch takes seconds under a sanitizer or on a
# loaded machine) would be lost.
catches_sigint() {
  local mask
  mask=$(awk '/^SigCgt:/ { print $2 }' "/proc/$1/status" 2> /dev/null) || return 1
  [[ -n $mask ]] && (((16#$mask & 2) != 0))
}

# interrupt SIGNAL OUT: starts `cmd` in the background, waits until it catches signals
# (at most 120 s), lets it work 1 s more, sends the signal and leaves the exit status in
# `status` (a command that ended earlier fails the test).
interrupt() {
  local signal=$1 out=$2
  "${cmd[@]}" > /dev/null 2> "$out.err" &
  local pid=$!
  for ((i = 0; i < 1200; ++i)); do
    catches_sigint "$pid" && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  sleep 1
  if ! kill -0 "$pid" 2> /dev/null; then
    echo "FAILED: ${cmd[1]} finished before the $signal (make the data set larger)"
    failures=$((failures + 1))
  fi
  kill "-$signal" "$pid" 2> /dev/null || true
  set +e
  wait "$pid"
  status=$?
  set -e
}

for name in profile score train; do
  ext=st
  [[ $name == score ]] && ext=csv
  command_line $name "reference.$name.$ext"
  "${cmd[@]}" > /dev/null

  command_line $name "killed.$name.$ext"
  interrupt KILL "killed.$name.$ext"
  check "$name: kill -9 stops it (status $status)" test "$status" -eq 137
  check "$name: kill -9 leaves nothing under the output's name" no_output "killed.$name.$ext"
  "${cmd[@]}" > /dev/null
  check "$name: the rerun after kill -9 writes what an uninterrupted run writes" \
    same_result "reference.$name.$ext" "killed.$name.$ext"

  command_line $name "stopped.$name.$ext"
  interrupt INT "stopped.$name.$ext"
  check "$name: SIGINT exits with status 130 (got $status)" test "$status" -eq 130
  check "$name: SIGINT prints one line" test "$(cat "stopped.$name.$ext.err")" = "imagescore: interrupted"
  check "$name: SIGINT leaves no output" no_output "stopped.$name.$ext"
  check "$name: SIGINT leaves no temporary file" no_temporary "stopped.$name.$ext"

  # SIGTERM, what `timeout` and batch schedulers send, stops the same way (status 143).
  command_line $name "terminated.$name.$ext"
  interrupt TERM "terminated.$name.$ext"
  check "$name: SIGTERM exits with status 143 (got $status)" test "$status" -eq 143
  check "$name: SIGTERM prints one line" test "$(cat "terminated.$name.$ext.err")" = "imagescore: interrupted"
  check "$name: SIGTERM leaves no output" no_output "terminated.$name.$ext"
  check "$name: SIGTERM leaves no temporary file" no_temporary "terminated.$name.$ext"
done

# Self-training over two seeds, killed (kill -9) or interrupted (SIGINT) mid-run: the same
# command again resumes each seed from its checkpoints and ends with the records of an
# uninterrupted run.
cat > ssl.json <<'JSON'
{"data": "idx:small", "training_fraction": 0.2, "base_epochs": 3, "retrain_epochs": 4, "batch_size": 16,
 "protocols": ["joint"], "arms": ["baseline", "softmax"], "threshold": 0.5, "pseudo_weight": 0.5}
JSON
selftrain_line() { cmd=("$imagescore" selftrain --config ssl.json --seeds 0,1 --out "$1" -q --threads 1); }
selftrain_line ssl.reference
"${cmd[@]}" > /dev/null 2>&1
for signal in KILL INT; do
  selftrain_line "ssl.$signal"
  interrupt $signal "ssl.$signal"
  expected=137
  [[ $signal == INT ]] && expected=130
  check "selftrain: $signal stops it (status $status)" test "$status" -eq "$expected"
  "${cmd[@]}" > /dev/null 2>&1
  check "selftrain: the rerun after $signal ends with the records of an uninterrupted run" \
    cmp -s ssl.reference/epochs.jsonl "ssl.$signal/epochs.jsonl"
done
expect_error "differs in 'seeds'" "$imagescore" selftrain --config ssl.json --seeds 0,2 --out ssl.reference -q
check "selftrain: a refused rerun leaves the run as it was" cmp -s ssl.reference/epochs.jsonl ssl.KILL/epochs.jsonl

# mount_tmpfs DIR OPTIONS: a small tmpfs, or false where mounting is not permitted.
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "$2" tmpfs "$1" 2> /dev/null || return 1
  mounts+=("$work/$1")
}

# The three writers (write_file_atomic for profiles and checkpoints, the streaming
# scores writer) on the small set: write_all DIR runs them with outputs in DIR.
write_all() {
  expect_error "$1/prof.st: $2" "$imagescore" profile --model model.st --data idx:small --out "$1/prof.st" -q
  expect_error "$1/scores.csv: $2" "$imagescore" score --model model.st --profiles small-prof.st --data idx:small \
    --split train --out "$1/scores.csv" -q
  expect_error "$1/model.st: $2" "$imagescore" train --data idx:small --epochs 1 --out "$1/model.st" -q
  check "$1: nothing left behind" test -z "$(ls -A "$1")"
}

if mount_tmpfs full size=16k; then
  write_all full "write failed"
else
  echo "skipped: full disk (cannot mount a tmpfs here; needs root)"
fi

# A read-only mount: permission bits alone do not stop root.
if mount_tmpfs readonly ro,size=64k; then
  write_all readonly "cannot write: Read-only file system"
elif [[ $(id -u) -ne 0 ]]; then
  mkdir readonly && chmod 555 readonly
  write_all readonly "cannot write: Permission denied"
else
  echo "skipped: read-only output folder (root ignores permissions and cannot mount here)"
fi

exit_with_failures
