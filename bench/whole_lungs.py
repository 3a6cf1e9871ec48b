#!/usr/bin/python3
"""Writes a JSRT split's label maps with each lung whole: SCR's lung outline filled again over
the clavicle that JSRT's label maps paint across its apex. That is how SCR's own lung masks (the
ones published lung figures are scored on) and other lung data sets draw the lungs, and what
`seg-segment --whole` gives; heart and clavicles stay as the label maps have them, the clavicles
now only outside the lungs.

  bench/whole_lungs.py --data ../shared/data/jsrt --split test --out /tmp/whole-truth
  seg-segment --model M --data ../shared/data/jsrt --split test --whole -o seg
  seg-evaluate seg /tmp/whole-truth

The outlines are filled as the data's README says its label maps were (landmarks_1024.csv
scaled to the label size; every pixel centre inside or on the polygon). The label maps stay
outside the repository: JSRT is research-only.
"""
import argparse
import csv
import json
import os

import numpy as np
from PIL import Image


def filled(polygon, height, width):
    """Pixels whose centre lies inside the polygon ((x, y) points) or on its outline."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    inside = np.zeros((height, width), bool)
    on_edge = np.zeros((height, width), bool)
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1]):
        crosses = (y1 > ys) != (y2 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xs < x_at)
        cross = (x2 - x1) * (ys - y1) - (y2 - y1) * (xs - x1)
        within = ((np.minimum(x1, x2) - 1e-9 <= xs) & (xs <= np.maximum(x1, x2) + 1e-9) &
                  (np.minimum(y1, y2) - 1e-9 <= ys) & (ys <= np.maximum(y1, y2) + 1e-9))
        on_edge |= within & (np.abs(cross) < 1e-9)
    return inside | on_edge


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/jsrt")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    spec = json.load(open(os.path.join(args.data, "dataset.json")))
    values = spec["classes"]
    lungs = [("right_lung", values["right_lung"]), ("left_lung", values["left_lung"])]
    outlines = {}
    with open(os.path.join(args.data, "landmarks_1024.csv")) as f:
        for row in csv.DictReader(f):
            outlines.setdefault((row["case"], row["structure"]), []).append((float(row["x"]), float(row["y"])))
    os.makedirs(args.out, exist_ok=True)
    for case in spec["split"][args.split]:
        labels = np.array(Image.open(os.path.join(args.data, spec["labels"].replace("{case}", case))))
        height, width = labels.shape
        for name, value in lungs:
            polygon = [(x * width / 1024, y * height / 1024) for x, y in outlines[(case, name)]]
            lung = filled(polygon, height, width)
            # Only the clavicles give the lung back: the heart's overlap is JSRT's convention too.
            covered = lung & np.isin(labels, [values["right_clavicle"], values["left_clavicle"]])
            labels[covered] = value
        Image.fromarray(labels).save(os.path.join(args.out, case + ".png"))
    print(f"{len(spec['split'][args.split])} label maps with whole lungs written to {args.out}")


if __name__ == "__main__":
    main()
