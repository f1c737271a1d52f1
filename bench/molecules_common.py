"""Shared by the molecules benchmark's Python sides (molecules_pyg.py, molecules_jax.py):
flags, the data set (examples/data/molecules, layout in examples/data/README.md), the
JSON lines and peak RSS. The model is examples/molecules.mp:

  h0 = relu(x W0 + b0)                                    18 -> 64
  3x: h = relu(sum over edges j->i of (concat(h_j, bond) A + a) + h U + c)
  pooled = sum of h3 over each molecule's nodes            [G, 64]
  pred = relu(pooled W1 + b1) W2 + b2                      one number per molecule
  loss = mean squared error over the batch's molecules; Adam lr 1e-3, batch 64.
"""

import argparse
import json
import os
import resource

import numpy as np

H = 64
F = 18
B = 4  # bond features
BATCH = 64
LR = 1e-3
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DATA = os.path.join(ROOT, "examples", "data", "molecules")


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=DATA, help="training set; its test/ is the held-out set")
    return p.parse_args()


class Molecules:
    """One split: node/edge arrays in graph order with per-graph offsets (prefix sums)."""

    def __init__(self, d):
        self.x = np.load(f"{d}/x.npy").astype(np.float32)  # stored as int8
        self.edges = np.load(f"{d}/edges.npy").astype(np.int32)  # stored as int16, local ids
        self.ef = np.load(f"{d}/edge_features.npy").astype(np.float32)
        self.nc = np.load(f"{d}/node_counts.npy").astype(np.int64)
        self.ec = np.load(f"{d}/edge_counts.npy").astype(np.int64)
        self.y = np.load(f"{d}/y.npy").astype(np.float32)
        self.no = np.concatenate([[0], np.cumsum(self.nc)[:-1]])
        self.eo = np.concatenate([[0], np.cumsum(self.ec)[:-1]])
        self.n = len(self.y)


def load(d):
    return Molecules(d), Molecules(os.path.join(d, "test"))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def emit(fields):
    print(json.dumps(fields), flush=True)
