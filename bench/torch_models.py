"""The PyTorch definitions of the benchmarked models, once: the CPU peers
(`bench/models_torch.py`) and the GPU benchmark (`scripts/gpu_bench_torch.py`) build them
from mpc's initial weights (`init.safetensors`, keyed by the short names of
`models_common.py`; mpc stores linear weights [in, out], nn.Linear wants [out, in]).

text:   embed 64 -> mean over T -> linear 128 -> relu -> dropout 0.5 -> linear 2.
fusion: t = mean(embed(text)), v = linear(flatten(image)), a = mean(linear(audio)) over
  time; 2 synchronous rounds t, v, a += f(., .) + f(., .) with one shared
  f(x, y) = tanh(linear(cat(x, y))); logits linear(cat(t, v, a)).
graph:  2-layer mean-aggregation GNN; messages linear(x)[src] (the linear map applied per
  node, then gathered per edge: the same product mpc's optimizer makes of the per-edge
  `linear(src)`), summed at the destination with index_add_ and divided by the in-degree
  (nodes without in-edges get 0), plus linear(x) of the node itself.
transformer: examples/transformer.mp: embed(chars) + embed(bigrams) + learned positions;
  h = LayerNorm(x + drop(MHA(drop(x)))) with nn.MultiheadAttention(64, 4,
  batch_first=True) and key_padding_mask = chars == 0; f = LayerNorm(h +
  drop(fc2(gelu(fc1(h))))); masked mean over the real positions; linear 5. Dropout 0.2.
gat, gat-karate: examples/gat.mp: PyG GATConv(F, 8, heads=4) -> ELU -> dropout 0.5 ->
  GATConv(32, 2, heads=1), PyG's own self-loops (add_self_loops=True, the default; the
  data has no loops, so this is exactly mpc's `self_loops`).
gnn-nonlinear: messages nonlinear in both ends, tanh(lin(cat(x[src], x[dst]))), on every
  edge; layer 1 h1 = relu(max-aggregated messages + linear(x)), layer 2 h2 = relu(sum-aggregated
  messages + linear(h1)), head linear(h2). Nodes without in-edges aggregate to 0 (mpc's rule
  for every aggregation). GnnNonlinear writes it with torch ops (index_select,
  cat, scatter_reduce_ "amax" with include_self=False / scatter_add_ into zeros, the ops
  PyG's own aggregation calls on CPU); GnnNonlinearPyG
  with a PyG MessagePassing(aggr="max" / "sum") whose message(x_i, x_j) is
  tanh(lin(cat[x_j, x_i])) (x_j: the source edge_index[0], mpc's `src`; x_i: the target).
  Gradient of max on ties (duplicate edges): mpc gives it all to the lowest edge number,
  PyTorch's amax splits it evenly, so training losses may differ in the last digits.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

import models_common as mc

DROPOUT = 0.5


def lin(w, b):
    """nn.Linear from mpc's [in, out] weight. (Constructing it draws its default init
    from torch's generator first, as nn.Linear always does.)"""
    m = nn.Linear(w.shape[0], w.shape[1])
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w).t())
        m.bias.copy_(torch.from_numpy(b))
    return m


class TextClassifier(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.embed = nn.Embedding(*w["embed"].shape)
        self.fc1 = lin(w["fc1_w"], w["fc1_b"])
        self.drop = nn.Dropout(DROPOUT)
        self.fc2 = lin(w["fc2_w"], w["fc2_b"])
        with torch.no_grad():
            self.embed.weight.copy_(torch.from_numpy(w["embed"]))

    def forward(self, tokens):
        h = self.embed(tokens).mean(dim=1)
        h = self.drop(F.relu(self.fc1(h)))
        return self.fc2(h)


class Fusion(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(torch.from_numpy(w["embed"]).clone(), freeze=False)
        self.v = lin(w["v_w"], w["v_b"])
        self.a = lin(w["a_w"], w["a_b"])
        self.f = lin(w["f_w"], w["f_b"])
        self.out = lin(w["out_w"], w["out_b"])

    def forward(self, text, image, audio):
        t = self.embed(text).mean(dim=1)
        v = self.v(image.flatten(1))
        a = self.a(audio).mean(dim=1)

        def f(x, y):
            return torch.tanh(self.f(torch.cat([x, y], dim=1)))

        for _ in range(2):  # synchronous: every right side reads the previous round
            t, v, a = t + (f(t, v) + f(t, a)), v + (f(v, t) + f(v, a)), a + (f(a, t) + f(a, v))
        return self.out(torch.cat([t, v, a], dim=1))


class GraphSage(nn.Module):
    def __init__(self, w, edges, nodes):
        super().__init__()
        self.nodes = nodes
        self.m1, self.s1 = lin(w["m1_w"], w["m1_b"]), lin(w["s1_w"], w["s1_b"])
        self.m2, self.s2 = lin(w["m2_w"], w["m2_b"]), lin(w["s2_w"], w["s2_b"])
        self.src, self.dst = edges[0].long(), edges[1].long()
        deg = torch.zeros(nodes).index_add_(0, self.dst, torch.ones(self.dst.shape[0]))
        self.inv_deg = (1.0 / deg.clamp(min=1.0)).unsqueeze(1)

    def propagate(self, msg, h):
        per_edge = msg(h)[self.src]
        agg = torch.zeros(self.nodes, per_edge.shape[1]).index_add_(0, self.dst, per_edge)
        return agg * self.inv_deg

    def forward(self, x):
        h = F.relu(self.propagate(self.m1, x) + self.s1(x))
        return self.propagate(self.m2, h) + self.s2(h)


def param(a):
    return nn.Parameter(torch.from_numpy(a).clone())


class CharTransformer(nn.Module):
    def __init__(self, w):
        super().__init__()
        d = w["pos"].shape[1]
        self.chars = nn.Embedding.from_pretrained(torch.from_numpy(w["chars"]).clone(), freeze=False)
        self.bigrams = nn.Embedding.from_pretrained(torch.from_numpy(w["bigrams"]).clone(), freeze=False)
        self.pos = param(w["pos"])  # [L, D]: row t is position t's embedding
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        with torch.no_grad():
            # mpc: [D, 3D] (q, k, v side by side) and [D, D], [in, out]; PyTorch [out, in].
            self.attn.in_proj_weight.copy_(torch.from_numpy(w["in_w"]).t())
            self.attn.in_proj_bias.copy_(torch.from_numpy(w["in_b"]))
            self.attn.out_proj.weight.copy_(torch.from_numpy(w["o_w"]).t())
            self.attn.out_proj.bias.copy_(torch.from_numpy(w["o_b"]))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        with torch.no_grad():
            for ln, k in [(self.ln1, "ln1"), (self.ln2, "ln2")]:
                ln.weight.copy_(torch.from_numpy(w[f"{k}_w"]))
                ln.bias.copy_(torch.from_numpy(w[f"{k}_b"]))
        self.fc1, self.fc2 = lin(w["fc1_w"], w["fc1_b"]), lin(w["fc2_w"], w["fc2_b"])
        self.out = lin(w["out_w"], w["out_b"])
        self.drop = nn.Dropout(mc.DROPOUT["transformer"])

    def forward(self, chars, bigrams):
        pad = chars == 0
        x = self.chars(chars) + self.bigrams(bigrams) + self.pos[: chars.shape[1]]
        xd = self.drop(x)  # mpc drops the attention's input too: self_attention(dropout(x, 0.2))
        a = self.attn(xd, xd, xd, key_padding_mask=pad, need_weights=False)[0]
        h = self.ln1(x + self.drop(a))
        f = self.ln2(h + self.drop(self.fc2(F.gelu(self.fc1(h), approximate=mc.GELU))))
        keep = (~pad).float().unsqueeze(-1)
        return self.out((f * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0))


def gat_conv(w, k, fan_in, heads, out):
    """PyG GATConv holding mpc's layer-k weights (as bench/parity_gat.py loads them)."""
    from torch_geometric.nn import GATConv  # imported here: only the GAT runs pay for it

    conv = GATConv(fan_in, out, heads=heads, concat=True, negative_slope=0.2, add_self_loops=True)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.from_numpy(w[f"lin{k}"]).t())  # [in, H*C] -> [H*C, in]
        conv.att_src.copy_(torch.from_numpy(w[f"att_src{k}"]).reshape(1, heads, out))
        conv.att_dst.copy_(torch.from_numpy(w[f"att_dst{k}"]).reshape(1, heads, out))
        conv.bias.copy_(torch.from_numpy(w[f"bias{k}"]))
    return conv


class Gat(nn.Module):
    def __init__(self, w, edges):
        super().__init__()
        assert not bool((edges[0] == edges[1]).any()), "GATConv would drop the data's self-loops; mpc keeps them"
        (h1, c1), (h2, c2) = mc.GAT_LAYERS
        self.conv1 = gat_conv(w, 1, w["lin1"].shape[0], h1, c1)
        self.conv2 = gat_conv(w, 2, h1 * c1, h2, c2)
        self.edge_index = edges.long()
        self.p = mc.DROPOUT["gat"]

    def forward(self, x):
        h = F.dropout(F.elu(self.conv1(x, self.edge_index)), self.p, self.training)
        return self.conv2(h, self.edge_index)


class GnnNonlinear(nn.Module):
    """The gnn-nonlinear model in plain torch ops (see the module docstring)."""

    def __init__(self, w, edges, nodes):
        super().__init__()
        self.nodes = nodes
        self.m1, self.s1 = lin(w["m1_w"], w["m1_b"]), lin(w["s1_w"], w["s1_b"])
        self.m2, self.s2 = lin(w["m2_w"], w["m2_b"]), lin(w["s2_w"], w["s2_b"])
        self.out = lin(w["out_w"], w["out_b"])
        self.src, self.dst = edges[0].long(), edges[1].long()

    def propagate(self, msg, h, reduce):
        m = torch.tanh(msg(torch.cat([h.index_select(0, self.src), h.index_select(0, self.dst)], dim=1)))
        index = self.dst.unsqueeze(1).expand_as(m)
        out = torch.zeros(self.nodes, m.shape[1])
        if reduce == "sum":  # scatter_add_, as PyG sums (faster than scatter_reduce "sum")
            return out.scatter_add_(0, index, m)
        return out.scatter_reduce_(0, index, m, reduce, include_self=False)

    def forward(self, x):
        h1 = F.relu(self.propagate(self.m1, x, "amax") + self.s1(x))
        h2 = F.relu(self.propagate(self.m2, h1, "sum") + self.s2(h1))
        return self.out(h2)


def nonlinear_conv(w, k, aggr):
    """A PyG MessagePassing layer with message tanh(lin(cat[x_j, x_i])) and mpc's layer-k
    message weights."""
    from torch_geometric.nn import MessagePassing  # imported here: only the PyG runs pay for it

    class Conv(MessagePassing):
        def __init__(self):
            super().__init__(aggr=aggr)  # flow source_to_target: x_j = x[edge_index[0]]
            self.lin = lin(w[f"m{k}_w"], w[f"m{k}_b"])

        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=x)

        def message(self, x_i, x_j):
            return torch.tanh(self.lin(torch.cat([x_j, x_i], dim=1)))

    return Conv()


class GnnNonlinearPyG(nn.Module):
    """The gnn-nonlinear model with PyG MessagePassing layers (max, then sum)."""

    def __init__(self, w, edges):
        super().__init__()
        self.conv1, self.conv2 = nonlinear_conv(w, 1, "max"), nonlinear_conv(w, 2, "sum")
        self.s1, self.s2 = lin(w["s1_w"], w["s1_b"]), lin(w["s2_w"], w["s2_b"])
        self.out = lin(w["out_w"], w["out_b"])
        self.edge_index = edges.long()

    def forward(self, x):
        h1 = F.relu(self.conv1(x, self.edge_index) + self.s1(x))
        h2 = F.relu(self.conv2(h1, self.edge_index) + self.s2(h1))
        return self.out(h2)
