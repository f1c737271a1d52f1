"""PyTorch CUDA eager peer for scripts/gpu-check.sh: the text classifier (embed 64 ->
mean -> linear 128 -> relu -> dropout 0.5 -> linear 2, cross-entropy, Adam lr 1e-3) on the
run directory bench_step writes (same data, initial weights and batch order as mpc).

  python scripts/gpu_bench_torch.py --run DIR [--epochs E]

Prints one JSON line: median milliseconds per training step over epochs 2.. (epoch 1 is
warm-up), the last epoch's mean loss, the device name.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("PyTorch sees no CUDA device (install a CUDA build of torch)")
    dev = torch.device("cuda")
    tokens = np.load(os.path.join(a.run, "tokens.npy"))
    y = np.load(os.path.join(a.run, "y.npy"))
    w = load_file(os.path.join(a.run, "init.safetensors"))
    n = tokens.shape[0] // a.batch
    xs = [torch.from_numpy(tokens[i * a.batch:(i + 1) * a.batch]).long().to(dev) for i in range(n)]
    ys = [torch.from_numpy(y[i * a.batch:(i + 1) * a.batch]).long().to(dev) for i in range(n)]

    embed, fc1, fc2 = nn.Embedding(10000, 64), nn.Linear(64, 128), nn.Linear(128, 2)
    with torch.no_grad():
        embed.weight.copy_(torch.from_numpy(w["z.embed.weight"]))
        fc1.weight.copy_(torch.from_numpy(w["h.linear.weight"]).T)
        fc1.bias.copy_(torch.from_numpy(w["h.linear.bias"]))
        fc2.weight.copy_(torch.from_numpy(w["logits.linear.weight"]).T)
        fc2.bias.copy_(torch.from_numpy(w["logits.linear.bias"]))
    model = nn.ModuleDict({"embed": embed, "fc1": fc1, "fc2": fc2}).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, t):
        h = model["embed"](x).mean(dim=1)
        h = F.dropout(F.relu(model["fc1"](h)), 0.5, training=True)
        loss = F.cross_entropy(model["fc2"](h), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    per_step, last = [], 0.0
    for epoch in range(a.epochs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        losses = [step(x, t) for x, t in zip(xs, ys)]
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3 / n
        last = float(torch.stack(losses).mean())
        if epoch > 0 or a.epochs == 1:
            per_step.append(ms)
    print(json.dumps({"step_ms": statistics.median(per_step), "loss": last,
                      "device": torch.cuda.get_device_name(0), "steps": n}))


if __name__ == "__main__":
    main()
