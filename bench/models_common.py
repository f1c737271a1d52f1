"""Shared by the peers (`bench/models_torch.py`, `bench/models_jax.py`): the run
directory written by `mpc-bench models --model M` (bench/src/workload.rs), the parameter
names mpc creates (linear weights [in, out]), learning rates and batch sizes. The
schedule and JSON line are `common.py`'s (`run_schedule`, `emit`).

text:   tokens.npy i32 [R, 32], y.npy i32 [R]; batch i is rows [64 i, 64 (i + 1)).
fusion: text.npy i32 [R, 16], image.npy f32 [R, 3, 32, 32], audio.npy f32 [R, 50, 40],
        y.npy i32 [R]; batch i is rows [32 i, 32 (i + 1)).
graph:  g.edges.npy i32 [2, E] (row 0 sources, row 1 destinations), x.npy f32 [N, 32],
        y.npy i32 [N]; one full-graph batch.
transformer: chars.npy, bigrams.npy i32 [R, 16] (0 = padding), y.npy i32 [R]; batch i is
        rows [64 i, 64 (i + 1)) (examples/transformer.mp on the language-id words).
gat, gat-karate: as graph (examples/gat.mp at N=2000, E=10000, F=32 on mpc's seeded
        block model, or the karate club as shipped); y is -1 on unlabeled nodes, which the
        loss ignores. The model adds a self-loop to every node (the data has none).
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
    "transformer": {
        "chars": "x.embed.weight", "bigrams": "x.embed_1.weight",  # [52, 64], [2704, 64]
        "pos": "x.embed_2.weight",  # [16, 64]: embed(positions(chars), 64)
        # self_attention(.., heads: 4): in_proj [64, 192] (q, k, v side by side), out_proj [64, 64]
        "in_w": "h.self_attention.in_proj.weight", "in_b": "h.self_attention.in_proj.bias",
        "o_w": "h.self_attention.out_proj.weight", "o_b": "h.self_attention.out_proj.bias",
        "ln1_w": "h.layer_norm.weight", "ln1_b": "h.layer_norm.bias",  # [64]
        "fc1_w": "f.linear.weight", "fc1_b": "f.linear.bias",  # [64, 128] (the inner linear)
        "fc2_w": "f.linear_1.weight", "fc2_b": "f.linear_1.bias",  # [128, 64]
        "ln2_w": "f.layer_norm.weight", "ln2_b": "f.layer_norm.bias",  # [64]
        "out_w": "logits.linear.weight", "out_b": "logits.linear.bias",  # [64, 5]
    },
    "gat": {
        "lin1": "lin1.weight", "att_src1": "att_src1", "att_dst1": "att_dst1",  # [F, 32], [4, 8], [4, 8]
        "bias1": "bias1",  # [32]
        "lin2": "lin2.weight", "att_src2": "att_src2", "att_dst2": "att_dst2",  # [32, 2], [1, 2], [1, 2]
        "bias2": "bias2",  # [2]
    },
    "gnn-nonlinear": {
        "m1_w": "m1.linear.weight", "m1_b": "m1.linear.bias",  # [32, 32]: message of layer 1 on cat(src, dst)
        "s1_w": "h1.linear.weight", "s1_b": "h1.linear.bias",  # [16, 32]: self term of layer 1
        "m2_w": "m2.linear.weight", "m2_b": "m2.linear.bias",  # [64, 32]: message of layer 2 on cat(src, dst)
        "s2_w": "h2.linear.weight", "s2_b": "h2.linear.bias",  # [32, 32]: self term of layer 2
        "out_w": "logits.linear.weight", "out_b": "logits.linear.bias",  # [32, 4]: head
    },
}
PARAMS["gat-karate"] = PARAMS["gat"]
# Full-graph models: one batch of every node; the rest are row batches.
GRAPHS = {"graph", "gat", "gat-karate", "gnn-nonlinear"}
# The models whose labels have -1 (no label) on some nodes: their loss is the mean over
# the labeled nodes.
PARTLY_LABELED = {"gat", "gat-karate", "gnn-nonlinear"}
# (heads, channels per head) of the GAT's two GATConv layers (examples/gat.mp).
GAT_LAYERS = [(4, 8), (1, 2)]
# mpc's plain `gelu` (grammar/README.md: the exact erf form, PyTorch's default): "none",
# PyTorch's `approximate=` spelling ("tanh" for `gelu(x, approximate: tanh)`). The sanity
# column (initial evaluation loss) shows a mismatch at ~1e-3 if they disagree.
GELU = "none"
# Dropout rates of the models that have dropout besides the text classifier's.
DROPOUT = {"transformer": 0.2, "gat": 0.5, "gat-karate": 0.5}
# Per-row inputs of each model, in the order the model's forward takes them, then labels.
COLUMNS = {"text": ["tokens"], "fusion": ["text", "image", "audio"], "transformer": ["chars", "bigrams"]}
LR = {"text": 1e-3, "fusion": 1e-3, "graph": 1e-2, "transformer": 3e-3, "gat": 1e-2, "gat-karate": 1e-2,
      "gnn-nonlinear": 1e-2}
BATCH = {"text": 64, "fusion": 32, "graph": 2000, "transformer": 64, "gat": 2000, "gat-karate": 34,
         "gnn-nonlinear": 3000}
N_NODES = 2000


def parse_args():
    args = c.parse_args(
        lambda p: (
            p.add_argument("--model", required=True, choices=sorted(PARAMS)),
            p.add_argument("--fused", action="store_true"),
            p.add_argument("--pyg", action="store_true", help="gnn-nonlinear: PyG MessagePassing layers"),
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
    if model in GRAPHS:
        return [{n: np.load(os.path.join(run, f"{n}.npy")) for n in ["g.edges", "x", "y"]}], weights
    cols = {n: np.load(os.path.join(run, f"{n}.npy")) for n in COLUMNS[model] + ["y"]}
    if model in ("text", "transformer"):
        assert all(cols[k].dtype == np.int32 for k in COLUMNS[model] + ["y"]), {k: v.dtype for k, v in cols.items()}
    b = BATCH[model]
    n = cols["y"].shape[0] // b
    batches = [{k: np.ascontiguousarray(v[i * b:(i + 1) * b]) for k, v in cols.items()} for i in range(n)]
    return batches, weights
