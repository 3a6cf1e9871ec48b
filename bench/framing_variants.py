#!/usr/bin/python3
"""Writes a data set's split as radiographs from elsewhere would frame it, for seg-segment and
seg-evaluate: per variant a folder of images and one of matching label maps.

  black32, black64  padded by 32 or 64 px of black (a film's or collimator's dark border):
                    the chest at 0.8 or 0.67 of the frame
  edge32, edge64    padded by repeating the edge pixels (the body goes on)
  markers           burnt-in white text strokes and a side marker in the top corners
  portrait          24 px cut from each side: a 256 x 208 image

  bench/framing_variants.py --data ../shared/data/jsrt --split test --out /tmp/framing
  for v in black32 ...; do seg-segment --model M /tmp/framing/$v/images -o seg/$v;
                           seg-evaluate seg/$v /tmp/framing/$v/labels; done
(bench/run_framing.sh does both.) The images stay outside the repository: JSRT is research-only.
"""
import argparse
import json
import os

import numpy as np
from PIL import Image


def variants(image, labels):
    for by in (32, 64):
        yield f"black{by}", np.pad(image, by, mode="constant"), np.pad(labels, by, mode="constant")
        yield f"edge{by}", np.pad(image, by, mode="edge"), np.pad(labels, by, mode="constant")
    marked = image.copy()
    strokes = ((np.arange(64) % 6) < 3).astype(np.uint8) * 255
    marked[6:20, 6:70] = strokes
    marked[8:30, -32:-10] = 255
    yield "markers", marked, labels
    yield "portrait", image[:, 24:-24], labels[:, 24:-24]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="data set folder with dataset.json")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.data, "dataset.json")) as f:
        spec = json.load(f)
    for case in spec["split"][args.split]:
        image = np.array(Image.open(os.path.join(args.data, spec["images"].format(case=case))))
        labels = np.array(Image.open(os.path.join(args.data, spec["labels"].format(case=case))))
        for name, v_image, v_labels in variants(image, labels):
            for kind, pixels in (("images", v_image), ("labels", v_labels)):
                folder = os.path.join(args.out, name, kind)
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(pixels).save(os.path.join(folder, case + ".png"))


if __name__ == "__main__":
    main()
