#!/usr/bin/python3
"""Would CUDA graphs pay for the notebook's training step? (issue 5)

Runs the reference's step (bench/reference_notebook.py: the GPU affine augmentation, forward,
weighted cross-entropy, backward, Adam) for each network two ways in one process: eagerly, and
captured once as a CUDA graph and replayed. Neither reads the loss back inside the step, so the
difference is the kernel launches alone, the part a graph removes. Prints one JSON line per
network: images/s both ways, their ratio, and the mean loss of each run's last 100 steps (the
graphed step must train like the eager one).

  cuda_graphs_probe.py --data jsrt.pth [--models fcn fcn-wide light-unet] [--steps 300]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_notebook import augment_affine, load_split, make_model  # noqa: E402

BATCH = 3


def run(name, train_x, train_y, weight, steps, graphed, seed):
    torch.manual_seed(seed)
    dev = train_x.device
    model = make_model(name).to(dev)
    # capturable: the step count stays on the GPU, so the bias correction is not baked into the graph
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphed)
    index = torch.zeros(BATCH, dtype=torch.long, device=dev)  # the batch's rows, written before each step

    def step():
        x, y = augment_affine(train_x[index], train_y[index])
        logits = F.interpolate(model(x), size=y.shape[-2:], mode="bilinear")
        loss = F.cross_entropy(logits, y, weight=weight)
        loss.backward()
        optimizer.step()
        return loss.detach()

    if graphed:
        side = torch.cuda.Stream()  # warm-up and capture off the default stream, as capture requires
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)  # backward in the graph writes the gradients, no accumulation
        with torch.cuda.graph(graph):
            static_loss = step()

        def train_step():
            graph.replay()
            return static_loss.clone()
    else:
        def train_step():
            optimizer.zero_grad(set_to_none=True)
            return step()

    n = train_x.shape[0]
    warm = 20  # steps for cuDNN's algorithm search and the allocator's first blocks
    rows = torch.cat([torch.randperm(n, device=dev) for _ in range((warm + steps) * BATCH // n + 1)])
    losses = []
    for s in range(warm):
        index.copy_(rows[s * BATCH:(s + 1) * BATCH])
        train_step()
    torch.cuda.synchronize()
    t0 = time.time()
    for s in range(steps):
        index.copy_(rows[(warm + s) * BATCH:(warm + s + 1) * BATCH])
        losses.append(train_step())
    torch.cuda.synchronize()
    seconds = time.time() - t0
    return BATCH * steps / seconds, float(torch.stack(losses[-100:]).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="a segsuite tensor pack")
    ap.add_argument("--models", nargs="+", default=["fcn", "fcn-wide", "light-unet"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("cuda_graphs_probe.py: error: no CUDA device; run it on the GPU machine")
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    train_x, train_y = load_split(a.data, "train")
    mean, std = train_x.mean(), train_x.std()
    train_x = ((train_x - mean) / std).unsqueeze(1).to(dev)
    train_y = train_y.to(dev)
    counts = torch.bincount(train_y.reshape(-1), minlength=6).float()
    weight = counts ** -0.35
    weight = weight / weight.mean()
    for name in a.models:
        eager, eager_loss = run(name, train_x, train_y, weight, a.steps, False, a.seed)
        graphed, graphed_loss = run(name, train_x, train_y, weight, a.steps, True, a.seed)
        print(json.dumps({"model": name, "steps": a.steps, "eager_images_per_s": round(eager, 1),
                          "graphed_images_per_s": round(graphed, 1), "graphed_over_eager": round(graphed / eager, 2),
                          "eager_last100_loss": round(eager_loss, 4), "graphed_last100_loss": round(graphed_loss, 4)}),
              flush=True)


if __name__ == "__main__":
    main()
