"""Shared by the peers of the fusion and graph benchmarks (`bench/compare_models.sh`):
the run directory written by `runtime/examples/bench_models.rs`, the parameter names mpc
creates (linear weights [in, out]), learning rates. The schedule and JSON line are
`common.py`'s (`run_schedule`, `emit`).

fusion: text.npy i32 [R, 16], image.npy f32 [R, 3, 32, 32], audio.npy f32 [R, 50, 40],
        y.npy i32 [R]; batch i is rows [32 i, 32 (i + 1)).
graph:  g.edges.npy i32 [2, E] (row 0 sources, row 1 destinations), x.npy f32 [N, 32],
        y.npy i32 [N]; one full-graph batch.
"""

import os

import numpy as np
from safetensors.numpy import load_file

import common as c

# mpc's parameter names (`bench_models --model M --params`).
FUSION_PARAMS = {
    "embed": "t.embed.weight",  # [5000, 64]
    "v_w": "v.linear.weight", "v_b": "v.linear.bias",  # [3072, 64]: linear(flatten(image))
    "a_w": "a.linear.weight", "a_b": "a.linear.bias",  # [40, 64]: per-frame linear(audio)
    "f_w": "f.linear.weight", "f_b": "f.linear.bias",  # [128, 64]: the shared message
    "out_w": "loss.linear.weight", "out_b": "loss.linear.bias",  # [192, 3]
}
GRAPH_PARAMS = {
    "m1_w": "m1.linear.weight", "m1_b": "m1.linear.bias",  # [32, 64] message of layer 1
    "s1_w": "h.linear.weight", "s1_b": "h.linear.bias",  # [32, 64] self term of layer 1
    "m2_w": "m2.linear.weight", "m2_b": "m2.linear.bias",  # [64, 4] message of layer 2
    "s2_w": "logits.linear.weight", "s2_b": "logits.linear.bias",  # [64, 4] self term
}
LR = {"fusion": 1e-3, "graph": 1e-2}
BATCH = {"fusion": 32, "graph": 2000}
N_NODES, HIDDEN, CLASSES = 2000, 64, 4


def parse_args():
    args = c.parse_args(
        lambda p: (
            p.add_argument("--model", required=True, choices=["fusion", "graph"]),
            p.add_argument("--fused", action="store_true"),
        )
    )
    args.batch = BATCH[args.model]
    return args


def load(run, model):
    """(list of batches, each a dict name -> numpy array; initial weights keyed by the
    short names above)."""
    w = load_file(os.path.join(run, "init.safetensors"))
    names = FUSION_PARAMS if model == "fusion" else GRAPH_PARAMS
    assert set(names.values()) == set(w.keys()), (sorted(w.keys()), sorted(names.values()))
    weights = {k: w[v] for k, v in names.items()}
    if model == "fusion":
        cols = {n: np.load(os.path.join(run, f"{n}.npy")) for n in ["text", "image", "audio", "y"]}
        b = BATCH["fusion"]
        n = cols["y"].shape[0] // b
        batches = [{k: np.ascontiguousarray(v[i * b:(i + 1) * b]) for k, v in cols.items()} for i in range(n)]
    else:
        batches = [{n: np.load(os.path.join(run, f"{n}.npy")) for n in ["g.edges", "x", "y"]}]
    return batches, weights
