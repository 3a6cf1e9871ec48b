#!/usr/bin/python3
"""Makes a segsuite tensor pack (what `seg-convert DATASET -o pack.pth` writes) from a data set
folder of 8-bit PNGs, with Python alone (PIL and torch): for the GPU machine, which has no
OpenCV or ITK for seg-convert. A call carries the PNGs (JSRT at 512: 21 MB) instead of the pack
(128 MB, over the 64 MB a call may carry), and this makes the pack there.

  pack_pngs.py DATASET.json OUT.pth
"""
import json
import os
import pickle
import sys
import types

import numpy as np
import torch
from PIL import Image


class _ListsAsAppends(pickle._Pickler):
    """Python pickles a one-element list with APPEND, which LibTorch 1.13's unpickler rejects
    ("Unknown opcode 0x61"); every list goes as MARK ... APPENDS instead, as C++ writes them."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_list(self, obj):
        self.write(pickle.EMPTY_LIST)
        self.memoize(obj)
        self.write(pickle.MARK)
        for item in obj:
            self.save(item)
        self.write(pickle.APPENDS)

    dispatch[list] = save_list


def read_grey(path, what):
    with Image.open(path) as im:
        if im.mode not in ("L", "P"):
            sys.exit(f"{path}: {what} is a {im.mode} PNG; this packer takes 8-bit grey only (use seg-convert)")
        return np.asarray(im, dtype=np.uint8)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    spec_path, out = sys.argv[1], sys.argv[2]
    try:
        write_pack(spec_path, out)
    except (OSError, KeyError, ValueError) as e:  # one line, and no partial pack left behind
        if os.path.exists(out + ".tmp"):
            os.remove(out + ".tmp")
        what = f"dataset.json has no {e}" if isinstance(e, KeyError) else str(e)
        sys.exit(f"pack_pngs.py: error: {spec_path}: {what}")


def write_pack(spec_path, out):
    spec = json.load(open(spec_path))
    root = os.path.dirname(os.path.abspath(spec_path))
    splits = spec["split"]
    cases = sorted({c for members in splits.values() for c in members})
    images = np.stack([read_grey(os.path.join(root, spec["images"].replace("{case}", c)), "image") for c in cases])
    labels = np.stack([read_grey(os.path.join(root, spec["labels"].replace("{case}", c)), "label map") for c in cases])
    classes = sorted(spec["classes"].items(), key=lambda item: item[1])
    pack = {"format": "segsuite-pack-1", "name": spec.get("name", os.path.basename(root)),
            "images": torch.from_numpy(images), "labels": torch.from_numpy(labels), "cases": cases,
            "class_names": [n for n, _ in classes], "class_values": [v for _, v in classes]}
    for name in sorted(splits):
        pack["split_" + name] = list(splits[name])
    pack["split_names"] = sorted(splits)
    torch.save(pack, out + ".tmp", pickle_module=types.SimpleNamespace(__name__="lists_as_appends", Pickler=_ListsAsAppends))
    os.replace(out + ".tmp", out)
    print(f"wrote tensor pack {out}: {len(cases)} cases of {images.shape[1]}x{images.shape[2]}, {len(classes)} classes")


if __name__ == "__main__":
    main()
