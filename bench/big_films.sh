#!/usr/bin/env bash
# Films at a detector's size on the CPU: JSRT test films upsampled to SIZE x SIZE (16-bit PNG
# and DICOM, made once into the ignored bench/out/films-SIZE), segmented by the naive Python
# script (bench/naive_segment.py) and by seg-segment with each shipped model, default options,
# one after the other in this run. Prints films/s and peak RSS of each, and their ratios to the
# naive script.
#   bench/big_films.sh [BIN_DIR (build/bin)] [COUNT (16)] [SIZE (2048)]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bin} count=${2:-16} size=${3:-2048}
data=${SEG_DATA_DIR:-../shared/data/jsrt}
films=bench/out/films-$size
/usr/bin/python3 bench/make_big_films.py --data "$data" --out "$films" --count "$count" --size "$size"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# run NAME COMMAND...: wall seconds and peak RSS (MB) of one command, from GNU time.
run() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >/dev/null 2>"$work/$name.err" ||
    { cat "$work/$name.err" >&2; exit 1; }
  read -r seconds kilobytes <"$work/$name.time"
  echo "$name $seconds $((kilobytes / 1024))" >>"$work/results"
}
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $count films of $size x $size"
run naive-png /usr/bin/python3 bench/naive_segment.py "$films/png" "$work/naive" --threads "$(nproc)"
for model in jsrt-fast jsrt-res-unet; do
  for kind in png dcm; do
    run "$model-$kind" "$bin/seg-segment" --model "share/models/$model.pth" "$films/$kind" -o "$work/$model-$kind"
  done
done
naive=$(awk '$1 == "naive-png" {print $2}' "$work/results")
printf '%-20s %8s %9s %10s %12s\n' run seconds films/s "x naive" "peak RSS MB"
while read -r name seconds megabytes; do
  printf '%-20s %8.1f %9.2f %10.2f %12d\n' "$name" "$seconds" "$(echo "$count / $seconds" | bc -l)" \
    "$(echo "$naive / $seconds" | bc -l)" "$megabytes"
done <"$work/results"
