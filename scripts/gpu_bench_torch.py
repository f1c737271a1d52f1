"""PyTorch CUDA eager peer for scripts/gpu-check.sh: the text classifier (the definition
in bench/torch_models.py: embed 64 -> mean -> linear 128 -> relu -> dropout 0.5 ->
linear 2, cross-entropy, Adam lr 1e-3) on the run directory `mpc-bench step --write-only`
writes (same data, initial weights and batch order as mpc).

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

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import models_common as mc  # noqa: E402
import torch_models as tm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("PyTorch sees no CUDA device (install a CUDA build of torch)")
    dev = torch.device("cuda")
    batches, w = mc.load(a.run, "text")
    xs = [torch.from_numpy(b["tokens"]).long().to(dev) for b in batches]
    ys = [torch.from_numpy(b["y"]).long().to(dev) for b in batches]
    n = len(xs)
    model = tm.TextClassifier(w).to(dev)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=mc.LR["text"])

    def step(x, t):
        loss = F.cross_entropy(model(x), t)
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
