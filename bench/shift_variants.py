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
Disease (the lung outline as drawn stays lung; the films of tuberculosis screening sets):
  consolidation     the lower half of one lung (right and left in turn) filled in towards the
                    heart's grey, patchily (a lobar pneumonia, an effusion seen through)
  patchy            four to six soft opacities scattered over both lungs (infiltrates, TB)
  black128          padded by 128 px of black: the chest at half the frame (a child on an adult
                    detector, a whole-body film)
Bedside films (intensive care; the lung under a device stays lung):
  devices           radiopaque tubes and lines (a nasogastric or endotracheal tube down the
                    middle, a central line from the shoulder), ECG wires and electrodes over the
                    chest, a pacemaker in one case of three
  rotated           the film turned by 12 degrees (alternately either way) about its centre,
                    the corners black: a patient not square to the detector
  jpeg              stored as JPEG at quality 30 at 1024 x 1024 (its blocks 2 px wide at 256), as
                    some archives and public sets store films

  bench/shift_variants.py --data ../shared/data/jsrt --split test --out /tmp/shift
  for v in black32 ...; do seg-segment --model M /tmp/shift/$v/images -o seg/$v;
                           seg-evaluate seg/$v /tmp/shift/$v/labels; done
(bench/run_shift.sh does both.) The images stay outside the repository: JSRT is research-only.
"""
import argparse
import io
import json
import os

import numpy as np
from PIL import Image, ImageFilter

FRAMING = ("black32", "black64", "edge32", "edge64", "markers", "portrait")
APPEARANCE = ("gamma05", "gamma20", "lowcontrast", "equalized", "sharpened", "blurred", "noisy")
DISEASE = ("consolidation", "patchy")
BEDSIDE = ("devices", "rotated", "jpeg")


def to_bytes(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def framing(image, labels):
    for by in (32, 64, 128):
        yield f"black{by}", np.pad(image, by, mode="constant"), np.pad(labels, by, mode="constant")
        if by < 128:
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


def smooth(values, sigma):
    """Separable Gaussian blur of a float image, edges repeated."""
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values.astype(np.float64), radius, mode="edge")
    rows = np.apply_along_axis(np.convolve, 1, padded, kernel, mode="valid")
    return np.apply_along_axis(np.convolve, 0, rows, kernel, mode="valid")


def opacify(image, region, labels, rng, strength):
    """Blends `region` (a 0/1 map) towards the heart's median grey, softly and patchily."""
    heart = image[labels == 3]
    target = float(np.median(heart)) if heart.size else float(np.percentile(image, 75))
    grain = smooth(rng.normal(0, 1, image.shape), 4)
    texture = np.clip(0.75 + 0.25 * (grain - grain.mean()) / grain.std(), 0.3, 1)
    alpha = np.clip(smooth(region, 3), 0, 1) * texture * strength
    return to_bytes(image + alpha * (target - image))


def disease(image, labels, index, rng):
    lung = 1 + index % 2  # right and left lung in turn
    rows = np.nonzero((labels == lung).any(axis=1))[0]
    if rows.size:
        cut = rows[0] + (rows[-1] - rows[0]) // 2
        lower = (labels == lung) & (np.arange(labels.shape[0])[:, None] >= cut)
        yield "consolidation", opacify(image, lower.astype(np.float64), labels, rng, 0.85)
    else:
        yield "consolidation", image
    lungs = np.argwhere((labels == 1) | (labels == 2))
    spots = np.zeros(image.shape)
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    for _ in range(rng.integers(4, 7)):
        cy, cx = lungs[rng.integers(len(lungs))] if len(lungs) else (image.shape[0] // 2, image.shape[1] // 2)
        sy, sx = rng.uniform(5, 14, 2)
        spots = np.maximum(spots, np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2)))
    yield "patchy", opacify(image, (spots > 0.4).astype(np.float64), labels, rng, 0.75)


def stroke(shape, points, radius):
    """Soft-edged mask (0..1) of discs of `radius` px centred on `points` (N x 2, row and column)."""
    mask = np.zeros(shape)
    reach = int(np.ceil(radius)) + 1
    yy, xx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    for cy, cx in points:
        iy, ix = int(round(cy)), int(round(cx))
        disc = np.clip(radius + 0.5 - np.hypot(yy + iy - cy, xx + ix - cx), 0, 1)
        top, left = iy - reach, ix - reach
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + disc.shape[0], shape[0]), min(left + disc.shape[1], shape[1])
        if r0 < r1 and c0 < c1:
            window = mask[r0:r1, c0:c1]
            np.maximum(window, disc[r0 - top:r1 - top, c0 - left:c1 - left], out=window)
    return mask


def curve(rng, start, end, bend):
    """Points a pixel apart along a quadratic Bezier from `start` to `end`, its control point
    pushed sideways by up to `bend` px."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    control = (start + end) / 2 + rng.uniform(-bend, bend, 2)
    n = int(np.linalg.norm(end - start) * 1.5) + 2
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t ** 2 * end


def devices(image, rng):
    """Bright (radiopaque) tubes, lines, wires, electrodes and sometimes a pacemaker."""
    h, w = image.shape
    # tubes and the pacemaker: nearly opaque
    dense = stroke(image.shape, curve(rng, (0, w * rng.uniform(0.47, 0.53)),
                                      (h * rng.uniform(0.8, 1.0), w * rng.uniform(0.5, 0.65)), 20), 1.5)
    thin = np.zeros(image.shape)  # wires and electrodes: fainter
    side = rng.choice([0.1, 0.9])
    dense = np.maximum(dense, 0.8 * stroke(image.shape, curve(rng, (h * rng.uniform(0.15, 0.3), w * side),
                                                              (h * rng.uniform(0.3, 0.4), w * 0.47), 15), 1.0))
    for _ in range(rng.integers(3, 6)):
        at = (h * rng.uniform(0.15, 0.85), w * rng.uniform(0.1, 0.9))
        ring = stroke(image.shape, at + 6 * np.stack([np.sin(np.linspace(0, 2 * np.pi, 40)),
                                                      np.cos(np.linspace(0, 2 * np.pi, 40))], 1), 1.0)
        thin = np.maximum(thin, np.maximum(ring, 0.6 * stroke(image.shape, [at], 3)))
        thin = np.maximum(thin, stroke(image.shape, curve(rng, at, (h * rng.uniform(0.9, 1.1), w * rng.uniform(0, 1)), 60), 0.6))
    if rng.random() < 1 / 3:
        top, left = int(h * rng.uniform(0.12, 0.2)), int(w * rng.uniform(0.68, 0.78))
        dense[top:top + 12, left:left + 18] = 1
        dense = np.maximum(dense, stroke(image.shape, curve(rng, (top + 6, left), (h * 0.55, w * 0.55), 20), 1.0))
    opaque = np.maximum(0.9 * dense, 0.6 * thin)
    return to_bytes(image + opaque * (250 - image))


def bedside(image, labels, index, rng):
    yield "devices", devices(image, rng), labels
    angle = 12 if index % 2 == 0 else -12
    turn = lambda pixels, resample: np.array(Image.fromarray(pixels).rotate(angle, resample, fillcolor=0))
    yield "rotated", turn(image, Image.BILINEAR), turn(labels, Image.NEAREST)
    buffer = io.BytesIO()
    Image.fromarray(image).resize((4 * image.shape[1], 4 * image.shape[0]), Image.BICUBIC).save(
        buffer, format="JPEG", quality=30)
    yield "jpeg", np.array(Image.open(buffer).resize(image.shape[::-1], Image.BOX)), labels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="data set folder with dataset.json")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.data, "dataset.json")) as f:
        spec = json.load(f)
    rng = np.random.default_rng(0)
    bedside_rng = np.random.default_rng(1)  # its own, so that the earlier variants stay as they were
    for index, case in enumerate(spec["split"][args.split]):
        image = np.array(Image.open(os.path.join(args.data, spec["images"].format(case=case))))
        labels = np.array(Image.open(os.path.join(args.data, spec["labels"].format(case=case))))
        outputs = list(framing(image, labels)) + [(name, pixels, labels) for name, pixels in appearance(image, rng)]
        outputs += [(name, pixels, labels) for name, pixels in disease(image, labels, index, rng)]
        outputs += list(bedside(image, labels, index, bedside_rng))
        for name, v_image, v_labels in outputs:
            for kind, pixels in (("images", v_image), ("labels", v_labels)):
                folder = os.path.join(args.out, name, kind)
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(pixels).save(os.path.join(folder, case + ".png"))


if __name__ == "__main__":
    main()
