"""Shared by the peers (`bench/models_torch.py`, `bench/models_jax.py`): the run
directory written by `mpc-bench models --model M` (bench/src/workload.rs), the parameter
names mpc creates (linear weights [in, out]), learning rates and batch sizes. The
schedule and JSON line are `common.py`'s (`run_schedule`, `emit`).

text:   tokens.npy i32 [R, 32], y.npy i32 [R]; batch i is rows [64 i, 64 (i + 1)).
fusion: text.npy i32 [R, 16], image.npy f32 [R, 3, 32, 32], audio.npy f32 [R, 50, 40],
        y.npy i32 [R]; batch i is rows [32 i, 32 (i + 1)).
graph:  g.edges.npy i32 [2, E] (row 0 sources, row 1 destinations), x.npy f32 [N, 32],
        y.npy i32 [N]; one full-graph batch.
"""

import os

import numpy as np
from safetensors.numpy import load_file

import common as c

# mpc's parameter names (`mpc-bench models --model M --params`), by short name.
PARAMS = {
    "text": {
        "embed": "z.embed.weight",  # [10000, 64]
        "fc1_w": "h.linear.weight", "fc1_b": "h.linear.bias",  # [64, 128]
        "fc2_w": "logits.linear.weight", "fc2_b": "logits.linear.bias",  # [128, 2]
    },
    "fusion": {
        "embed": "t.embed.weight",  # [5000, 64]
        "v_w": "v.linear.weight", "v_b": "v.linear.bias",  # [3072, 64]: linear(flatten(image))
        "a_w": "a.linear.weight", "a_b": "a.linear.bias",  # [40, 64]: per-frame linear(audio)
        "f_w": "f.linear.weight", "f_b": "f.linear.bias",  # [128, 64]: the shared message
        "out_w": "loss.linear.weight", "out_b": "loss.linear.bias",  # [192, 3]
    },
    "graph": {
        "m1_w": "m1.linear.weight", "m1_b": "m1.linear.bias",  # [32, 64] message of layer 1
        "s1_w": "h.linear.weight", "s1_b": "h.linear.bias",  # [32, 64] self term of layer 1
        "m2_w": "m2.linear.weight", "m2_b": "m2.linear.bias",  # [64, 4] message of layer 2
        "s2_w": "logits.linear.weight", "s2_b": "logits.linear.bias",  # [64, 4] self term
    },
}
# Per-row inputs of each model, in the order the model's forward takes them, then labels.
COLUMNS = {"text": ["tokens"], "fusion": ["text", "image", "audio"]}
LR = {"text": 1e-3, "fusion": 1e-3, "graph": 1e-2}
BATCH = {"text": 64, "fusion": 32, "graph": 2000}
N_NODES = 2000


def parse_args():
    args = c.parse_args(
        lambda p: (
            p.add_argument("--model", required=True, choices=sorted(PARAMS)),
            p.add_argument("--fused", action="store_true"),
        )
    )
    args.batch = BATCH[args.model]
    return args


def load(run, model):
    """(list of batches, each a dict name -> numpy array; initial weights keyed by the
    short names above)."""
    w = load_file(os.path.join(run, "init.safetensors"))
    names = PARAMS[model]
    assert set(names.values()) == set(w.keys()), (sorted(w.keys()), sorted(names.values()))
    weights = {k: w[v] for k, v in names.items()}
    if model == "graph":
        return [{n: np.load(os.path.join(run, f"{n}.npy")) for n in ["g.edges", "x", "y"]}], weights
    cols = {n: np.load(os.path.join(run, f"{n}.npy")) for n in COLUMNS[model] + ["y"]}
    if model == "text":
        assert cols["tokens"].dtype == np.int32 and cols["y"].dtype == np.int32, (cols["tokens"].dtype, cols["y"].dtype)
    b = BATCH[model]
    n = cols["y"].shape[0] // b
    batches = [{k: np.ascontiguousarray(v[i * b:(i + 1) * b]) for k, v in cols.items()} for i in range(n)]
    return batches, weights
