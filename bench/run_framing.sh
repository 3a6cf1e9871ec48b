#!/usr/bin/env bash
# Mean Dice of models on the test split framed as radiographs from elsewhere would be
# (bench/framing_variants.py), with and without --largest-component --fill-holes.
#   bench/run_framing.sh MODEL [MODEL ...]       (env: DATA, B = the tools' folder, WORK)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/jsrt}
bin=${B:-build/bin}
work=${WORK:-/tmp/seg-framing}
[[ -d $work/portrait ]] || /usr/bin/python3 bench/framing_variants.py --data "$data" --split test --out "$work"
mean_dice() { "$bin/seg-evaluate" "$1" "$2" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); d=r["mean_dice_per_label"]; print(" ".join(f"{x:.3f}" for x in d), f"| {sum(d)/len(d):.4f}")'; }
for model in "$@"; do
  for variant in black32 black64 edge32 edge64 markers portrait; do
    for post in plain lcc; do
      out=$work/seg-$$/$variant-$post
      extra=(); [[ $post == lcc ]] && extra=(--largest-component --fill-holes)
      "$bin/seg-segment" --model "$model" "$work/$variant/images" -o "$out" "${extra[@]}" >/dev/null
      echo "$model $variant $post: $(mean_dice "$out" "$work/$variant/labels")"
    done
  done
  rm -rf "$work/seg-$$"
done
