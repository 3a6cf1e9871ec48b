#!/usr/bin/env bash
# CPU benchmarks: ours against the notebook's loop in Python (reference_notebook.py, Debian's
# python3-torch = the same LibTorch build), alternately, same data, same threads, same steps.
# Prints ratios (reference time / our time; > 1 means we are faster). Needs a quiet machine.
#   bench/run_cpu.sh [THREADS]        (after scripts/build; data from $SEG_DATA_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
data=$(realpath "${SEG_DATA_DIR:-../shared/data/jsrt}")
bin=build/bin
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A 30-case training subset: one epoch is 10 steps of batch 3 in both implementations. (With
# 5-step epochs, the checkpoint written after each epoch slowed the next steps measurably.)
mkdir -p "$work/small"
ln -s "$data/images" "$work/small/images"
ln -s "$data/labels" "$work/small/labels"
$py - "$data" "$work/small" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1] + "/dataset.json"))
spec["split"]["train"] = spec["split"]["train"][:30]
json.dump(spec, open(sys.argv[2] + "/dataset.json", "w"))
PY

json_field() { $py -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
ours_images_per_s() {  # training images/s of one epoch of seg-train (steps only, as log.csv times them)
  rm -rf "$work/run"
  $bin/seg-train --data "$work/small" --model "$1" --epochs "$2" --val-every 0 --threads "$threads" --out "$work/run" >/dev/null
  $py -c "import csv; rows=list(csv.DictReader(open('$work/run/log.csv'))); s=sum(float(r['seconds']) for r in rows[1:] or rows); print(30*len(rows[1:] or rows)/s)"
}
printf '%-34s %12s %12s %8s\n' "measure" "reference" "ours" "ratio"
row() { $py -c "r,o=float('$2'),float('$3'); print(f'%-34s %12.3f %12.3f %8.2f' % ('$1', r, o, ($4)))"; }

for spec in "fcn 6" "fcn-wide 2" "light-unet 2"; do  # epochs of 10 steps, the first one a warm-up
  set -- $spec
  model=$1; epochs=$2
  ref=$($py bench/reference_notebook.py --data "$work/small" --model "$model" --steps $((10 * (epochs - 1))) --threads "$threads" | json_field images_per_s)
  ours=$(ours_images_per_s "$model" "$epochs")
  row "train images/s $model" "$ref" "$ours" "o/r"
done

# Inference: a trained fcn over the 87 test images, in one pass as the reference segments
# (--no-reframe: the second pass seg-segment gives films framed wider than JSRT's is not its work).
rm -rf "$work/run"
$bin/seg-train --data "$work/small" --model fcn --epochs 1 --val-every 0 --threads "$threads" --out "$work/run" >/dev/null
ref=$($py bench/reference_notebook.py --data "$data" --model fcn --infer 87 --threads "$threads" | json_field infer_s_per_image)
start=$(date +%s.%N)
$bin/seg-segment --model "$work/run" --data "$data" --split test -o "$work/seg" --threads "$threads" --no-reframe >/dev/null
end=$(date +%s.%N)
ours=$($py -c "print(($end - $start) / 87)")
row "segment s/image fcn (87; ref: net only)" "$ref" "$ours" "r/o"

# Like for like: the whole process, PNG files in, label PNG files out, 87 test images.
mkdir -p "$work/test-images"
$py -c "import json; print('\n'.join(json.load(open('$data/dataset.json'))['split']['test']))" |
  while read -r c; do ln -s "$data/images/$c.png" "$work/test-images/$c.png"; done
t0=$(date +%s.%N)
$py bench/reference_notebook.py --segment "$work/test-images" --model-file "$work/run/model.pth" --model fcn \
  --out "$work/ref-files" --threads "$threads" >/dev/null
t1=$(date +%s.%N)
$bin/seg-segment --model "$work/run" "$work/test-images" -o "$work/our-files" --threads "$threads" --no-reframe >/dev/null
t2=$(date +%s.%N)
row "segment folder of 87 PNGs, whole process s" "$($py -c "print($t1-$t0)")" "$($py -c "print($t2-$t1)")" "r/o"
same=$($py -c "
import numpy as np, os
from PIL import Image
a, b = '$work/ref-files', '$work/our-files'
print(np.mean([(np.asarray(Image.open(os.path.join(a, f))) == np.asarray(Image.open(os.path.join(b, f)))).mean() for f in os.listdir(a)]))")
echo "  (the two label maps agree on a fraction $same of the pixels)"

# Peak memory (RSS, MB) of the same inference, and start-up time.
ref_rss=$($py bench/reference_notebook.py --data "$data" --model fcn --infer 87 --threads "$threads" | json_field peak_rss_mb)
ours_rss=$( { /usr/bin/time -f '%M' $bin/seg-segment --model "$work/run" --data "$data" --split test -o "$work/seg2" --threads "$threads" --no-reframe >/dev/null; } 2>&1 | tail -1)
row "peak RSS MB, segment 87" "$ref_rss" "$(($ours_rss / 1024))" "r/o"
t0=$(date +%s.%N); $py -c 'import torch' ; t1=$(date +%s.%N)
$bin/seg-segment --help >/dev/null; t2=$(date +%s.%N)
row "start-up s (import torch / --help)" "$($py -c "print($t1-$t0)")" "$($py -c "print($t2-$t1)")" "r/o"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $threads"
