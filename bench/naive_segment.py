#!/usr/bin/python3
"""The reference for bench/big_films.sh: what a user would write to segment films with the
course notebook's network in Python, one film at a time: PIL decode, box resample to 256 x 256,
z-normalise, the notebook's fully convolutional network, bilinear upsampling of the logits to
the film's size, argmax, 8-bit PNG. Timing does not depend on the weights, so they are random.

  naive_segment.py IN_FOLDER OUT_FOLDER [--threads N]
"""
import argparse
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


def fcn(classes=6):
    layers, channels = [], 1
    for width, stride in ((16, 2), (32, 2), (64, 1), (64, 1)):
        layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1), nn.InstanceNorm2d(width), nn.LeakyReLU()]
        channels = width
    return nn.Sequential(*layers, nn.Conv2d(channels, classes, 3, padding=1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("inputs")
    p.add_argument("out")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = fcn().eval()
    os.makedirs(a.out, exist_ok=True)
    with torch.no_grad():
        for name in sorted(os.listdir(a.inputs)):
            film = Image.open(os.path.join(a.inputs, name))
            small = np.asarray(film.resize((256, 256), Image.BOX), dtype=np.float32)
            x = torch.from_numpy((small - small.mean()) / (small.std() + 1e-8))[None, None]
            logits = F.interpolate(net(x), size=(film.height, film.width), mode="bilinear", align_corners=False)
            labels = logits.argmax(1)[0].to(torch.uint8).numpy()
            Image.fromarray(labels).save(os.path.join(a.out, os.path.splitext(name)[0] + ".png"))


if __name__ == "__main__":
    main()
