#!/usr/bin/python3
"""The course notebook's training loop and inference, written from its specification, as the
reference our benchmarks are held against. Run with Debian's /usr/bin/python3 (python3-torch,
the same LibTorch build as ours) or any PyTorch.

  reference_notebook.py --data ../shared/data/jsrt --model fcn --epochs 50 --threads 2
  reference_notebook.py --data ... --model light-unet --steps 5      # throughput only
  reference_notebook.py --data ... --model light-unet --notebook-loader  # the notebook's own loop
  reference_notebook.py --data ... --infer 87                          # inference latency
  reference_notebook.py --segment IMAGES --model-file model.pth --out OUT --model fcn
      # what seg-segment does, file to file: read each PNG, normalise as the model file says,
      # forward, upsample, argmax, write a label PNG (for a whole-process comparison)

Prints one JSON line with the timings and, when it validated, the mean Dice.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
try:
    from PIL import Image
except ImportError:  # the GPU machine reads tensor packs only
    Image = None


def segment_folder(a, dev):
    saved = torch.load(a.model_file)
    norm = json.loads(saved["metadata"])["normalization"]
    model = make_model(a.model).to(dev)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    os.makedirs(a.out, exist_ok=True)
    with torch.no_grad():
        for name in sorted(f for f in os.listdir(a.segment) if f.endswith(".png")):
            x = torch.from_numpy(np.asarray(Image.open(os.path.join(a.segment, name))).astype(np.float32))
            x = ((x - norm["mean"]) / norm["std"])[None, None].to(dev)
            y = F.interpolate(model(x), size=x.shape[-2:], mode="bilinear").argmax(1)[0]
            Image.fromarray(y.to(torch.uint8).cpu().numpy()).save(os.path.join(a.out, name))


def load_split(root, split):
    if root.endswith(".pth"):  # a segsuite tensor pack (seg-convert DATASET -o pack.pth)
        pack = torch.load(root, weights_only=False)  # our own pack: lists of names beside tensors
        row = {c: i for i, c in enumerate(pack["cases"])}
        idx = torch.tensor([row[c] for c in pack["split_" + split]])
        return pack["images"][idx].float(), pack["labels"][idx].long()
    spec = json.load(open(os.path.join(root, "dataset.json")))
    cases = spec["split"][split]
    imgs = np.stack([np.asarray(Image.open(os.path.join(root, spec["images"].replace("{case}", c)))) for c in cases])
    segs = np.stack([np.asarray(Image.open(os.path.join(root, spec["labels"].replace("{case}", c)))) for c in cases])
    return torch.from_numpy(imgs).float(), torch.from_numpy(segs).long()


def conv_group(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.InstanceNorm2d(cout), nn.LeakyReLU())


def fully_conv(widths, classes=6):
    strides = [2, 2, 1, 1]
    layers, cin = [], 1
    for w, s in zip(widths, strides):
        layers.append(conv_group(cin, w, s))
        cin = w
    return nn.Sequential(*layers, nn.Conv2d(cin, classes, 3, padding=1))


class LightUNet(nn.Module):
    def __init__(self, classes=6):
        super().__init__()
        self.encoder_block1 = conv_group(1, 64, 1)
        self.encoder_block2 = conv_group(64, 128, 2)
        self.encoder_block3 = conv_group(128, 256, 2)
        self.encoder_block4 = conv_group(256, 512, 2)
        self.decoder_block4 = conv_group(512 + 256, 256, 1)
        self.decoder_block3 = conv_group(256 + 128, 128, 1)
        self.decoder_block2 = conv_group(128 + 64, 64, 1)
        self.classifier = nn.Conv2d(64, classes, 1)

    @staticmethod
    def upscale_concat(skip, coarse):
        return torch.cat((F.interpolate(coarse, scale_factor=2, mode="bilinear"), skip), dim=1)

    def forward(self, x):
        x1 = self.encoder_block1(x)
        x2 = self.encoder_block2(x1)
        x3 = self.encoder_block3(x2)
        x4 = self.encoder_block4(x3)
        x = self.decoder_block4(self.upscale_concat(x3, x4))
        x = self.decoder_block3(self.upscale_concat(x2, x))
        x = self.decoder_block2(self.upscale_concat(x1, x))
        return self.classifier(x)


def make_model(name):
    if name == "fcn":
        return fully_conv([16, 32, 64, 64])
    if name == "fcn-wide":
        return fully_conv([64, 128, 256, 256])
    if name == "light-unet":
        return LightUNet()
    raise SystemExit(f"unknown model {name}")


def dice_coeff(prediction, ground_truth, max_label):
    dice = torch.zeros(max_label - 1)
    for label in range(1, max_label):
        p = (prediction == label).reshape(-1).float()
        t = (ground_truth == label).reshape(-1).float()
        dice[label - 1] = (2 * (p * t).sum() + 1e-8) / (p.sum() + t.sum() + 1e-8)
    return dice


def augment_affine(image, ground_truth):
    b = image.shape[0]
    theta = torch.eye(2, 3, device=image.device).unsqueeze(0) + 0.1 * torch.randn(b, 2, 3, device=image.device)
    grid = F.affine_grid(theta, image.shape, align_corners=False)
    image = F.grid_sample(image, grid, mode="bilinear", align_corners=False)
    gt = F.grid_sample(ground_truth.unsqueeze(1).float(), grid, mode="nearest", align_corners=False).long()
    return image, gt.squeeze(1)


class SplitDataset(torch.utils.data.Dataset):
    """The notebook's JSRTDataset: an image [1, H, W] and its label map [H, W] per item."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i].unsqueeze(0), self.labels[i]


def notebook_train_model(model, train_x, train_y, test_x, test_y, weight, epochs, dev):
    """The notebook's train_model as it stands: a DataLoader with two worker processes (created
    again every epoch), each batch copied to the device, the loss read back every step, and the
    validation every fifth epoch image by image. Returns the last validation's Dice per class."""
    loader = torch.utils.data.DataLoader(SplitDataset(train_x, train_y), batch_size=3, shuffle=True,
                                         num_workers=2, drop_last=True)
    val = SplitDataset(test_x, test_y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss(weight=weight)
    loss_history = torch.zeros(epochs)
    dice = torch.zeros(5)
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            x, y = augment_affine(x, y)
            optimizer.zero_grad()
            y_hat = F.interpolate(model(x), size=y.shape[-2:], mode="bilinear")
            loss = criterion(y_hat, y)
            loss.backward()
            optimizer.step()
            loss_history[epoch] += loss.detach().item()
        loss_history[epoch] /= len(loader)
        if epoch % 5 == 4:
            model.eval()
            dice = torch.zeros(5)
            for x, y in val:
                x, y = x.to(dev, non_blocking=True).unsqueeze(0), y.to(dev, non_blocking=True)
                with torch.no_grad():
                    y_hat = F.interpolate(model(x), size=y.shape[-2:], mode="bilinear", align_corners=True)
                    dice += dice_coeff(y_hat.argmax(1).squeeze(), y, 6)
            dice /= len(val)
            print(f"epoch {epoch + 1}: loss {loss_history[epoch]:.4f}, Dice {dice.mean():.4f}", file=sys.stderr)
    return dice


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--model", default="fcn")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=0, help="train this many steps only (throughput)")
    ap.add_argument("--infer", type=int, default=0, help="time inference of this many test images, one at a time")
    ap.add_argument("--segment", help="folder of PNG images to segment into --out, with --model-file")
    ap.add_argument("--model-file", help="a seg-train model.pth (its state_dict and normalisation)")
    ap.add_argument("--out", help="output folder of --segment")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train-cases", type=int, default=0, help="use only the first N training cases")
    ap.add_argument("--notebook-loader", action="store_true",
                    help="train as the notebook's own loop does (DataLoader with 2 workers, the loss read every "
                         "step, validation every 5 epochs), not from tensors resident on the device")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    if a.segment:
        segment_folder(a, dev)
        return
    t_load = time.time()
    train_x, train_y = load_split(a.data, "train")
    test_x, test_y = load_split(a.data, "test")
    if a.train_cases:
        train_x, train_y = train_x[:a.train_cases], train_y[:a.train_cases]
    mean, std = train_x.mean(), train_x.std()
    train_x = ((train_x - mean) / std).unsqueeze(1).to(dev)
    test_x = ((test_x - mean) / std).unsqueeze(1).to(dev)
    train_y, test_y = train_y.to(dev), test_y.to(dev)
    load_s = time.time() - t_load
    counts = torch.bincount(train_y.reshape(-1), minlength=6).float()
    weight = counts ** -0.35
    weight = (weight / weight.mean()).to(dev)
    model = make_model(a.model).to(dev)
    result = {"impl": "python-reference", "torch": torch.__version__, "model": a.model, "threads": a.threads,
              "device": a.device, "load_s": load_s}

    if a.infer:
        model.eval()
        n = min(a.infer, test_x.shape[0])
        with torch.no_grad():
            model(test_x[:1])
            t0 = time.time()
            for i in range(n):
                y = F.interpolate(model(test_x[i:i + 1]), size=(256, 256), mode="bilinear").argmax(1)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            result["infer_images"] = n
            result["infer_s_per_image"] = (time.time() - t0) / n
    elif a.notebook_loader:
        # the notebook's datasets live on the host, an image [H, W] per case
        train_x, train_y = train_x[:, 0].cpu(), train_y.cpu()
        t0 = time.time()
        dice = notebook_train_model(model, train_x, train_y, test_x[:, 0].cpu(), test_y.cpu(), weight, a.epochs, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        train_s = time.time() - t0
        steps = a.epochs * (train_x.shape[0] // 3)
        result.update({"loop": "notebook", "steps": steps, "train_s": train_s, "images_per_s": 3 * steps / train_s,
                       "val_dice": [round(float(d), 4) for d in dice], "val_mean_dice": round(float(dice.mean()), 4)})
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        criterion = nn.CrossEntropyLoss(weight=weight)
        n = train_x.shape[0]
        steps_per_epoch = n // 3
        total_steps = a.steps if a.steps else a.epochs * steps_per_epoch
        step = 0
        t0 = time.time()
        losses = []
        epoch = 0
        while step < total_steps:
            model.train()
            perm = torch.randperm(n)
            running = 0.0
            for s in range(steps_per_epoch):
                if step >= total_steps:
                    break
                idx = perm[s * 3:(s + 1) * 3].to(dev)
                x, y = augment_affine(train_x[idx], train_y[idx])
                optimizer.zero_grad()
                y_hat = F.interpolate(model(x), size=y.shape[-2:], mode="bilinear")
                loss = criterion(y_hat, y)
                loss.backward()
                optimizer.step()
                running += loss.item()
                step += 1
            epoch += 1
            losses.append(running / steps_per_epoch)
            if not a.steps:
                print(f"epoch {epoch}: loss {losses[-1]:.4f} ({time.time() - t0:.0f} s)", file=sys.stderr)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        train_s = time.time() - t0
        result.update({"steps": total_steps, "train_s": train_s, "images_per_s": 3 * total_steps / train_s})
        if not a.steps:
            model.eval()
            dice = torch.zeros(5)
            with torch.no_grad():
                for i in range(test_x.shape[0]):
                    y_hat = F.interpolate(model(test_x[i:i + 1]), size=(256, 256), mode="bilinear")
                    dice += dice_coeff(y_hat.argmax(1).squeeze().cpu(), test_y[i].cpu(), 6)
            dice /= test_x.shape[0]
            result["val_dice"] = [round(float(d), 4) for d in dice]
            result["val_mean_dice"] = round(float(dice.mean()), 4)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
