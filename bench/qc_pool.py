#!/usr/bin/env python3
"""Pools seg-segment --qc's estimates with seg-evaluate's real Dice over several groups of films
and reports how well the estimator did (docs/quality.md): per structure the mean absolute error of
the estimated Dice, Spearman's correlation and the mean estimated and real Dice; the films whose
least review structure is below the limit, which of them were flagged (recall), the share of all
films flagged, and the flags per group. Used by bench/qc_eval.sh and bench/qc_scr.sh.

  qc_pool.py NAME SEGMENTED EVALUATION [NAME SEGMENTED EVALUATION ...]

SEGMENTED: a seg-segment --qc output folder (qc.csv, qc.json); EVALUATION: seg-evaluate's --json
report of that folder. A structure that a film's truth does not draw scores 1.0 when estimated.
"""
import csv
import json
import sys


def read_group(name, segmented, evaluation):
    report = json.load(open(evaluation))
    labels = [label["name"] for label in report["labels"]]
    real = {c["case"]: dict(zip(labels, c["dice"])) for c in report["cases"]}
    qc = json.load(open(f"{segmented}/qc.json"))
    if not set(labels) & set(qc["review"]):
        sys.exit(f"{evaluation}: scores no review structure by name")
    rows = []
    for r in csv.DictReader(open(f"{segmented}/qc.csv")):
        estimated = {k[len("estimated_dice_"):]: float(v) for k, v in r.items() if k.startswith("estimated_dice_")}
        truth = {s: (1.0 if real[r["case"]].get(s) is None else real[r["case"]][s]) for s in estimated}
        rows.append({"group": name, "case": r["case"], "real": truth, "estimated": estimated,
                     "qc_score": float(r["qc_score"]), "flag": r["flag"] == "1"})
    return rows, qc["review"], qc["dice_limit"]


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1  # ties share their mean rank
        i = j + 1
    return result


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    sab = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    saa = sum((x - ma) ** 2 for x in ra)
    sbb = sum((y - mb) ** 2 for y in rb)
    return sab / (saa * sbb) ** 0.5 if saa > 0 and sbb > 0 else float("nan")


def main(args):
    if not args or len(args) % 3:
        sys.exit("usage: qc_pool.py NAME SEGMENTED EVALUATION [NAME SEGMENTED EVALUATION ...]")
    rows, names, rules = [], [], set()
    for i in range(0, len(args), 3):
        group, review, limit = read_group(*args[i:i + 3])
        rows += group
        names.append(args[i])
        rules.add((tuple(review), limit))
    if len(rules) != 1:
        sys.exit(f"the groups' qc.json disagree on the review structures or limit: {sorted(rules)}")
    (review, limit), = rules
    least = lambda r: min(r["real"][s] for s in review)
    print(f"{len(rows)} films; structure: mean absolute error, Spearman, mean estimated, mean real")
    for s in rows[0]["estimated"]:
        est = [r["estimated"][s] for r in rows]
        real = [r["real"][s] for r in rows]
        mae = sum(abs(e - t) for e, t in zip(est, real)) / len(rows)
        print(f"  {s:16s} {mae:.4f}  {spearman(est, real):.2f}  {sum(est) / len(est):.3f}  {sum(real) / len(real):.3f}")
    failures = [r for r in rows if least(r) < limit]
    caught = [r for r in failures if r["flag"]]
    flagged = sum(r["flag"] for r in rows)
    print(f"films with {', '.join(review)} below {limit}: {len(failures)}, flagged {len(caught)}"
          f" (recall {len(caught) / max(len(failures), 1):.2f}); flagged {flagged} of {len(rows)}"
          f" ({100 * flagged / len(rows):.1f} %)")
    for r in sorted(failures, key=least):
        print(f"  {r['group']:14s} {r['case']:12s} real {least(r):.3f}  qc_score {r['qc_score']:.3f}  flag {int(r['flag'])}")
    print("flagged per group: " + ", ".join(f"{n} {sum(r['flag'] for r in rows if r['group'] == n)}" for n in names))


if __name__ == "__main__":
    main(sys.argv[1:])
