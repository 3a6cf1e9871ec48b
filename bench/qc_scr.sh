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
/usr/bin/python3 - "$out" <<'EOF'
import csv, json, sys
out = sys.argv[1]
rows = []  # (fold scored, case, least real lung, estimated by structure, real by structure, flag)
for fold in ("even", "odd"):
    report = json.load(open(f"{out}/qc-seg-{fold}.json"))
    labels = [label["name"] for label in report["labels"]]
    real = {c["case"]: dict(zip(labels, c["dice"])) for c in report["cases"]}
    qc = json.load(open(f"{out}/qc-seg-{fold}/qc.json"))
    for r in csv.DictReader(open(f"{out}/qc-seg-{fold}/qc.csv")):
        est = {k[len("estimated_dice_"):]: float(v) for k, v in r.items() if k.startswith("estimated_dice_")}
        truth = {s: real[r["case"]][s] for s in est}
        rows.append((fold, r["case"], min(truth[s] for s in qc["review"]), est, truth, r["flag"] == "1", qc["dice_limit"]))
print(f"{len(rows)} films, each scored by the estimator of the other fold")
for s in rows[0][3]:
    err = sum(abs(r[3][s] - r[4][s]) for r in rows) / len(rows)
    print(f"  {s:16s} mean absolute error {err:.4f}  mean estimated {sum(r[3][s] for r in rows) / len(rows):.3f}"
          f"  mean real {sum(r[4][s] for r in rows) / len(rows):.3f}")
limit = rows[0][6]
failing = [r for r in rows if r[2] < limit]
flagged = [r for r in rows if r[5]]
print(f"films with a lung below {limit}: {len(failing)}, flagged {sum(r[5] for r in failing)}; "
      f"flagged {len(flagged)} of {len(rows)} ({100 * len(flagged) / len(rows):.1f} %)")
for r in sorted(failing, key=lambda r: r[2]):
    print(f"  {r[0]:5s} {r[1]:10s} real {r[2]:.3f}  flag {int(r[5])}")
EOF
