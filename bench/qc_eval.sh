#!/usr/bin/env bash
# How well a model's quality estimator (seg-segment --qc) does on films it was not fitted on: the
# test split and the 19 variants of it that bench/shift_variants.py makes, pooled (docs/quality.md).
#   bench/qc_eval.sh MODEL
#   env: DATA (default ../shared/data/jsrt), B = the tools' folder (default build/bin),
#        WORK (default /tmp/seg-qc-eval; the variants are made there once, each model's label
#        maps and qc files go to WORK/seg-<model name>), THREADS (default 1)
# Prints what bench/qc_pool.py reports of the films pooled: per structure the estimate's error,
# the films whose review structure is below the limit, the recall and the share flagged. Run it
# once per fitted estimator: the test films only score a method, they never choose one.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 ]] || { echo "usage: bench/qc_eval.sh MODEL" >&2; exit 2; }
model=$1
data=${DATA:-../shared/data/jsrt}
bin=${B:-build/bin}
work=${WORK:-/tmp/seg-qc-eval}
threads=${THREADS:-1}
variants="black32 black64 black128 edge32 edge64 markers portrait gamma05 gamma20 lowcontrast equalized sharpened blurred
          noisy consolidation patchy devices rotated jpeg"
[[ -d $work/shift/jpeg ]] || /usr/bin/python3 bench/shift_variants.py --data "$data" --split test --out "$work/shift" >/dev/null
out=$work/seg-$(basename "$model" .pth)  # the label maps and qc files, kept to pool again
rm -rf "$out"
mkdir -p "$out"
"$bin/seg-segment" --model "$model" --data "$data" --split test -o "$out/clean" --qc --threads "$threads" >/dev/null
"$bin/seg-evaluate" "$out/clean" --data "$data" --split test --json "$out/clean.json" --threads "$threads" >/dev/null
for v in $variants; do
  "$bin/seg-segment" --model "$model" "$work/shift/$v/images" -o "$out/$v" --qc --threads "$threads" >/dev/null
  "$bin/seg-evaluate" "$out/$v" "$work/shift/$v/labels" --model "$model" --json "$out/$v.json" --threads "$threads" >/dev/null
done
echo "$model on the test split and its variants:"
groups=()
for name in clean $variants; do groups+=("$name" "$out/$name" "$out/$name.json"); done
/usr/bin/python3 bench/qc_pool.py "${groups[@]}"
