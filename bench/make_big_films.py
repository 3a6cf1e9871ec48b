#!/usr/bin/python3
"""Films at a detector's size from JSRT's test films, for bench/big_films.sh: the first N test
cases upsampled (bicubic) to SIZE x SIZE and scaled to 16 bits, written as 16-bit PNG and as
DICOM (MONOCHROME2, 16 bits stored). Research-only data: write them into an ignored folder.

  make_big_films.py --data ../shared/data/jsrt --out bench/out/films --count 16 --size 2048
"""
import argparse
import json
import os

import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def upsampled(path, size):
    x = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32))[None, None]
    y = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)[0, 0]
    return (y * 257.0).round().clamp(0, 65535).numpy().astype(np.uint16)


def write_png16(path, pixels):
    Image.fromarray(pixels.astype(np.uint16)).save(path)  # PIL's I;16 mode: 16-bit grey PNG


def write_dicom(path, pixels):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = os.path.basename(path).split(".")[0]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.175, 0.175]
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, write_like_original=False)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--size", type=int, default=2048)
    a = p.parse_args()
    spec = json.load(open(os.path.join(a.data, "dataset.json")))
    for kind in ("png", "dcm"):
        os.makedirs(os.path.join(a.out, kind), exist_ok=True)
    for case in spec["split"]["test"][: a.count]:
        png, dcm = (os.path.join(a.out, k, case + "." + k) for k in ("png", "dcm"))
        if os.path.exists(png) and os.path.exists(dcm):
            continue
        pixels = upsampled(os.path.join(a.data, spec["images"].replace("{case}", case)), a.size)
        write_png16(png, pixels)
        write_dicom(dcm, pixels)


if __name__ == "__main__":
    main()
