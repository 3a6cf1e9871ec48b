#!/usr/bin/env bash
# Quality control on the SCR protocol's other fold (docs/quality.md): for each fold (the odd- and
# the even-numbered JSRT cases), a model trained on it with RECIPE, its estimator fitted on the
# same fold (and variants of it), then each film of the other fold segmented with --qc and
# scored; the two folds' reports pooled. The estimator never sees a film of the fold it is
# scored on, nor any of its variants.
#   bench/qc_scr.sh OUT [RECIPE (fast)]
#   env: DATA (default ../shared/data/jsrt), B = the tools' folder (default build/bin), THREADS (1)
# Reuses OUT/fold-*/model.pth when present (delete them to train again).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: bench/qc_scr.sh OUT [RECIPE]" >&2; exit 2; }
out=$1 recipe=${2:-fast}
bin=${B:-build/bin} threads=${THREADS:-1}
export SEG_DATA_DIR=${DATA:-../shared/data/jsrt}
# The folds' data set and models: scripts/scr-folds (it validates each fold on the other, which
# chooses only the clean-up; the estimator below is fitted on the training fold alone).
scripts/scr-folds "$out" --recipe "$recipe" --threads "$threads" >/dev/null
for fold in odd even; do
  other=$([[ $fold == odd ]] && echo even || echo odd)
  [[ -f "$out/qc-$fold.pth" ]] ||
    "$bin/seg-evaluate" --fit-qc "$out/fold-$fold/model.pth" --data "$out/data" --split "$fold" \
      --review right_lung,left_lung -o "$out/qc-$fold.pth" --threads "$threads" >/dev/null
  rm -rf "$out/qc-seg-$other"
  "$bin/seg-segment" --model "$out/qc-$fold.pth" --data "$out/data" --split "$other" --qc -o "$out/qc-seg-$other" \
    --threads "$threads" >/dev/null
  "$bin/seg-evaluate" "$out/qc-seg-$other" --data "$out/data" --split "$other" \
    --json "$out/qc-seg-$other.json" --overwrite --threads "$threads" >/dev/null
done
echo "$out: each film scored by the estimator of the other fold"
/usr/bin/python3 bench/qc_pool.py even "$out/qc-seg-even" "$out/qc-seg-even.json" odd "$out/qc-seg-odd" "$out/qc-seg-odd.json"
