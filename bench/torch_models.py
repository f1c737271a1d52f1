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
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

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
