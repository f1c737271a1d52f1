"""Makes the PyTorch Geometric parity fixtures of tests/parity_gat.rs.

In: an mpc binary and the graph-attention models under tests/fixtures/parity/ (gat.mp:
two GATConv layers with self-loops, ELU between them; gat_isolated.mp: one GATConv layer
without self-loops on a graph where some nodes have no incoming edge, then a linear
head). Out, next to them: data_graph/ (a seeded graph of 10 nodes and 24 directed edges,
no self-loops, nodes 8 and 9 with no incoming edge; node features; labels with two
unlabeled (-1) nodes as .npy), and <model>.json: PyG's logits at mpc's initial
parameters, and the loss of each of 20 full-graph Adam steps.

How: `mpc train --epochs 0 --save` gives mpc's initial parameters (the train block's
seed); torch_geometric.nn.GATConv(in, C, heads=H, concat=True, negative_slope=0.2,
add_self_loops=...) loads them: lin.weight is mpc's projection transposed ([in, H*C] ->
[H*C, in]), att_src/att_dst are mpc's [H, C] as [1, H, C], bias as is. The test trains
with mpc from the same seed and compares at 1e-4 relative.

    bench/.venv/bin/python bench/parity_gat.py --mpc target/debug/mpc
"""

import argparse
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import torch_geometric
from torch_geometric.nn import GATConv

from parity import HERE, fixture

N, E, FEATURES, CLASSES = 10, 24, 5, 3


def data(out: pathlib.Path):
    rng = np.random.default_rng(5)
    edges = set()
    while len(edges) < E:
        # Destinations 0..7 only: nodes 8 and 9 send messages but receive none.
        s, d = int(rng.integers(0, N)), int(rng.integers(0, N - 2))
        if s != d:
            edges.add((s, d))
    edge_index = np.array(sorted(edges, key=lambda e: rng.random()), dtype=np.int32).T.copy()
    x = rng.normal(size=(N, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=N).astype(np.int32)
    y[[2, 7]] = -1
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "g.edges.npy", edge_index)
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", y)
    return torch.from_numpy(edge_index).long(), torch.from_numpy(x), torch.from_numpy(y).long()


def gat_conv(w, prefix, fan_in, heads, out, self_loops):
    """GATConv holding mpc's `<prefix>_lin.weight`, `<prefix>_att_src`, ... weights."""
    conv = GATConv(fan_in, out, heads=heads, concat=True, negative_slope=0.2, add_self_loops=self_loops)
    with torch.no_grad():
        conv.lin.weight.copy_(w[f"{prefix}_lin.weight"].T)
        conv.att_src.copy_(w[f"{prefix}_att_src"].reshape(1, heads, out))
        conv.att_dst.copy_(w[f"{prefix}_att_dst"].reshape(1, heads, out))
        conv.bias.copy_(w[f"{prefix}_bias"])
    return conv


class Gat(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.conv1 = gat_conv(w, "conv1", FEATURES, 2, 4, True)
        self.conv2 = gat_conv(w, "conv2", 8, 1, CLASSES, True)

    def forward(self, x, edge_index):
        return self.conv2(F.elu(self.conv1(x, edge_index)), edge_index)


class GatIsolated(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.conv = gat_conv(w, "conv", FEATURES, 2, 4, False)
        self.out = torch.nn.Linear(8, CLASSES)
        with torch.no_grad():
            self.out.weight.copy_(w["out.weight"].T)
            self.out.bias.copy_(w["out.bias"])

    def forward(self, x, edge_index):
        return self.out(F.elu(self.conv(x, edge_index)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpc", required=True)
    args = ap.parse_args()
    edge_index, x, y = data(HERE / "data_graph")
    made_by = "bench/parity_gat.py (torch_geometric %s)" % torch_geometric.__version__
    fixture(args.mpc, "gat", Gat, (x, edge_index), y, "data_graph", made_by)
    fixture(args.mpc, "gat_isolated", GatIsolated, (x, edge_index), y, "data_graph", made_by)


if __name__ == "__main__":
    main()
