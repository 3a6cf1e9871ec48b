#!/usr/bin/env bash
# How well a model's quality estimator (seg-segment --qc) does on films it was not fitted on: the
# test split and the 19 variants of it that bench/shift_variants.py makes, pooled (docs/quality.md).
#   bench/qc_eval.sh MODEL
#   env: DATA (default ../shared/data/jsrt), B = the tools' folder (default build/bin),
#        WORK (default /tmp/seg-qc-eval; the variants are made there once, each model's label
#        maps and qc files go to WORK/seg-<model name>), THREADS (default 1)
# Prints, per structure, the mean absolute error of the estimated Dice, Spearman's correlation
# and the mean estimated and real Dice; then the films whose review structure is below the
# limit, which of them were flagged (recall) and the share of all films flagged. Run it once per
# fitted estimator: the test films only score a method, they never choose one.
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
/usr/bin/python3 - "$out" clean $variants <<'EOF'
import csv, json, sys
folder, names = sys.argv[1], sys.argv[2:]
rows = []  # (variant, case, real Dice by structure, estimated by structure, qc_score, flag)
for name in names:
    report = json.load(open(f"{folder}/{name}.json"))
    labels = [label["name"] for label in report["labels"]]
    real = {c["case"]: dict(zip(labels, c["dice"])) for c in report["cases"]}
    if not set(labels) & set(json.load(open(f"{folder}/{name}/qc.json"))["review"]):
        sys.exit(f"{folder}/{name}.json: scores no review structure by name")
    qc = json.load(open(f"{folder}/{name}/qc.json"))
    review, limit = qc["review"], qc["dice_limit"]
    for r in csv.DictReader(open(f"{folder}/{name}/qc.csv")):
        estimated = {k[len("estimated_dice_"):]: float(v) for k, v in r.items() if k.startswith("estimated_dice_")}
        truth = {s: (1.0 if real[r["case"]].get(s) is None else real[r["case"]][s]) for s in estimated}
        rows.append((name, r["case"], truth, estimated, float(r["qc_score"]), r["flag"] == "1"))

def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r

def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    sab = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    saa = sum((x - ma) ** 2 for x in ra)
    sbb = sum((y - mb) ** 2 for y in rb)
    return sab / (saa * sbb) ** 0.5 if saa > 0 and sbb > 0 else float("nan")

print(f"{len(rows)} films; structure: mean absolute error, Spearman, mean estimated, mean real")
for s in rows[0][3]:
    est = [r[3][s] for r in rows]
    real = [r[2][s] for r in rows]
    mae = sum(abs(e - t) for e, t in zip(est, real)) / len(rows)
    print(f"  {s:16s} {mae:.4f}  {spearman(est, real):.2f}  {sum(est) / len(est):.3f}  {sum(real) / len(real):.3f}")
failures = [r for r in rows if min(r[2][s] for s in review) < limit]
caught = [r for r in failures if r[5]]
flagged = sum(r[5] for r in rows)
print(f"films with {', '.join(review)} below {limit}: {len(failures)}, flagged {len(caught)}"
      f" (recall {len(caught) / max(len(failures), 1):.2f}); flagged {flagged} of {len(rows)}"
      f" ({100 * flagged / len(rows):.1f} %)")
for r in sorted(failures, key=lambda r: min(r[2][s] for s in review)):
    print(f"  {r[0]:14s} {r[1]:12s} real {min(r[2][s] for s in review):.3f}  qc_score {r[4]:.3f}  flag {int(r[5])}")
print("flagged per variant: " + ", ".join(f"{n} {sum(r[5] for r in rows if r[0] == n)}" for n in names))
EOF
