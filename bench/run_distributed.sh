#!/usr/bin/env bash
# Data-parallel seg-train throughput: 1 process against P processes (scripts/launch, Gloo on
# loopback), each with THREADS threads, the same global batch and data; and, for the same
# cores, 1 process with P x THREADS threads. Prints training images/s (steps only, from
# log.csv, first epoch excluded as warm-up) and the speed-ups.
# Needs a quiet machine.
#   bench/run_distributed.sh [MODEL] [P] [THREADS] [EPOCHS]   (after scripts/build)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-fcn}
procs=${2:-2}
threads=${3:-1}
epochs=${4:-3}
data=$(realpath "${SEG_DATA_DIR:-../shared/data/jsrt}")
bin=build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
global_batch=$((2 * procs))  # 160 training cases: 80 / procs steps an epoch

images_per_s() {  # log.csv of a run -> training images/s over epochs 2..N
  /usr/bin/python3 -c "
import csv; rows = list(csv.DictReader(open('$1/log.csv')))[1:]
steps = 160 // $global_batch
print(sum(1 for _ in rows) * steps * $global_batch / sum(float(r['seconds']) for r in rows))"
}
common=(--data "$data" --model "$model" --epochs "$epochs" --val-every 0)
$bin/seg-train "${common[@]}" --threads "$threads" --batch "$global_batch" --out "$work/one" >/dev/null
$bin/seg-train "${common[@]}" --threads $((procs * threads)) --batch "$global_batch" --out "$work/wide" >/dev/null
scripts/launch -n "$procs" --master "127.0.0.1:$((29700 + RANDOM % 200))" -- \
  $bin/seg-train "${common[@]}" --threads "$threads" --batch 2 --out "$work/many" >/dev/null
one=$(images_per_s "$work/one")
many=$(images_per_s "$work/many")
wide=$(images_per_s "$work/wide")
/usr/bin/python3 -c "print(f'$model, global batch $global_batch, $threads thread(s) per process: 1 process {$one:.2f} img/s, $procs processes {$many:.2f} img/s (speed-up {$many/$one:.2f}x); 1 process with $((procs * threads)) threads {$wide:.2f} img/s')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
