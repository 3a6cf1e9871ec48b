#!/usr/bin/python3
"""Writes a data set's split as radiographs from other hospitals and scanners would show it, for
seg-segment and seg-evaluate: per variant a folder of images and one of matching label maps.

Framing (the field of view):
  black32, black64  padded by 32 or 64 px of black (a film's or collimator's dark border):
                    the chest at 0.8 or 0.67 of the frame
  edge32, edge64    padded by repeating the edge pixels (the body goes on)
  markers           burnt-in white text strokes and a side marker in the top corners
  portrait          24 px cut from each side: a 256 x 208 image
Appearance (exposure, processing, detector):
  gamma05, gamma20  intensities raised to the power 0.5 (washed out) or 2 (dark)
  lowcontrast       the grey range squeezed into its middle half
  equalized         global histogram equalisation, as some archives store films
  sharpened         strong unsharp masking (radius 4, 250 %), the look of processed CR/DR films
  blurred           Gaussian blur, sigma 1.5 px (a soft detector, a moving patient)
  noisy             Gaussian noise, sigma 12 grey levels (a low dose)

  bench/shift_variants.py --data ../shared/data/jsrt --split test --out /tmp/shift
  for v in black32 ...; do seg-segment --model M /tmp/shift/$v/images -o seg/$v;
                           seg-evaluate seg/$v /tmp/shift/$v/labels; done
(bench/run_shift.sh does both.) The images stay outside the repository: JSRT is research-only.
"""
import argparse
import json
import os

import numpy as np
from PIL import Image, ImageFilter

FRAMING = ("black32", "black64", "edge32", "edge64", "markers", "portrait")
APPEARANCE = ("gamma05", "gamma20", "lowcontrast", "equalized", "sharpened", "blurred", "noisy")


def to_bytes(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def framing(image, labels):
    for by in (32, 64):
        yield f"black{by}", np.pad(image, by, mode="constant"), np.pad(labels, by, mode="constant")
        yield f"edge{by}", np.pad(image, by, mode="edge"), np.pad(labels, by, mode="constant")
    marked = image.copy()
    strokes = ((np.arange(64) % 6) < 3).astype(np.uint8) * 255
    marked[6:20, 6:70] = strokes
    marked[8:30, -32:-10] = 255
    yield "markers", marked, labels
    yield "portrait", image[:, 24:-24], labels[:, 24:-24]


def appearance(image, rng):
    unit = image.astype(np.float64) / 255.0
    yield "gamma05", to_bytes(unit ** 0.5 * 255)
    yield "gamma20", to_bytes(unit ** 2.0 * 255)
    yield "lowcontrast", to_bytes(64 + image * 0.5)
    histogram = np.bincount(image.ravel(), minlength=256)
    cdf = np.cumsum(histogram) / image.size
    yield "equalized", to_bytes(cdf[image] * 255)
    pil = Image.fromarray(image)
    yield "sharpened", np.array(pil.filter(ImageFilter.UnsharpMask(radius=4, percent=250, threshold=0)))
    yield "blurred", np.array(pil.filter(ImageFilter.GaussianBlur(1.5)))
    yield "noisy", to_bytes(image + rng.normal(0, 12, image.shape))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="data set folder with dataset.json")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.data, "dataset.json")) as f:
        spec = json.load(f)
    rng = np.random.default_rng(0)
    for case in spec["split"][args.split]:
        image = np.array(Image.open(os.path.join(args.data, spec["images"].format(case=case))))
        labels = np.array(Image.open(os.path.join(args.data, spec["labels"].format(case=case))))
        outputs = list(framing(image, labels)) + [(name, pixels, labels) for name, pixels in appearance(image, rng)]
        for name, v_image, v_labels in outputs:
            for kind, pixels in (("images", v_image), ("labels", v_labels)):
                folder = os.path.join(args.out, name, kind)
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(pixels).save(os.path.join(folder, case + ".png"))


if __name__ == "__main__":
    main()
