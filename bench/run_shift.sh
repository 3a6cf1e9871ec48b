#!/usr/bin/env bash
# Mean Dice of models on the test split as other hospitals and scanners would show it
# (bench/shift_variants.py: framing and appearance), plain and with --largest-component --fill-holes.
#   bench/run_shift.sh MODEL [MODEL ...]
#   env: DATA, B = the tools' folder, WORK, VARIANTS (default all), POST (default "plain lcc"):
#   plain = no clean-up, once = plain in one pass (--no-reframe), lcc = --largest-component --fill-holes,
#   whole = plain with --whole (score it against whole lungs: DATA from bench/whole_lungs.py, see
#   docs/experiments/whole-lungs.md)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data/jsrt}
bin=${B:-build/bin}
work=${WORK:-/tmp/seg-shift}
variants=${VARIANTS:-"black32 black64 black128 edge32 edge64 markers portrait gamma05 gamma20 lowcontrast equalized sharpened blurred noisy consolidation patchy devices rotated jpeg"}
posts=${POST:-"plain lcc"}
[[ -d $work/jpeg ]] || /usr/bin/python3 bench/shift_variants.py --data "$data" --split test --out "$work"
mean_dice() { "$bin/seg-evaluate" "$1" "$2" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); d=[x for x in r["mean_dice_per_label"] if x is not None]; print(" ".join(f"{x:.3f}" for x in d), f"| {sum(d)/len(d):.4f}")'; }
for model in "$@"; do
  for variant in $variants; do
    for post in $posts; do
      out=$work/seg-$$/$variant-$post
      extra=(--no-postprocessing); [[ $post == lcc ]] && extra+=(--largest-component --fill-holes)
      [[ $post == once ]] && extra+=(--no-reframe)
      [[ $post == whole ]] && extra+=(--whole)
      "$bin/seg-segment" --model "$model" "$work/$variant/images" -o "$out" "${extra[@]}" >/dev/null
      echo "$model $variant $post: $(mean_dice "$out" "$work/$variant/labels")"
    done
  done
  rm -rf "$work/seg-$$"
done
