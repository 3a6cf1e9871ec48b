#!/usr/bin/env bash
# What the output contract costs seg-segment: the same films segmented by two builds of the
# suite (a reference build from before a change, and this one), alternating, several rounds;
# prints each build's median seconds per format and their ratio.
#   bench/output_contract.sh REF_BIN_DIR NEW_BIN_DIR [ROUNDS (5)] [MODEL (share/models/jsrt-fast.pth)]
# The films: the JSRT test split ($SEG_DATA_DIR, default ../shared/data/jsrt). The fast model
# keeps the network's share of the time small, so the writing shows.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=$1 new=$2 rounds=${3:-5} model=${4:-share/models/jsrt-fast.pth}
data=${SEG_DATA_DIR:-../shared/data/jsrt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seconds() {  # BIN_DIR FORMAT OUT: wall seconds of one seg-segment run
  local start end
  start=$(date +%s.%N)
  "$1/seg-segment" --model "$model" --data "$data" --split test -o "$3" --format "$2" --threads 1 >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds, model $model"
for format in png nii.gz; do
  : >"$work/ref.txt"
  : >"$work/new.txt"
  for round in $(seq "$rounds"); do
    seconds "$ref" "$format" "$work/ref-$format-$round" >>"$work/ref.txt"
    seconds "$new" "$format" "$work/new-$format-$round" >>"$work/new.txt"
    rm -rf "$work/ref-$format-$round" "$work/new-$format-$round"
  done
  r=$(median <"$work/ref.txt") n=$(median <"$work/new.txt")
  printf '%-7s reference %.2f s, this build %.2f s: ratio %.3f\n' "$format" "$r" "$n" "$(echo "$n / $r" | bc -l)"
done
