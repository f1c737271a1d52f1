"""PyTorch eager peer of the fusion and graph benchmarks (see bench_models.rs and
models_common.py): same data, initial weights, batch order, schedule as the mpc side.

  python bench/models_torch.py --run DIR --model fusion|graph --threads N [--fused]

fusion: t = mean(embed(text)), v = linear(flatten(image)), a = mean(linear(audio)) over
  time; 2 synchronous rounds t, v, a += f(., .) + f(., .) with one shared
  f(x, y) = tanh(linear(cat(x, y))); cross-entropy of linear(cat(t, v, a)).
graph: 2-layer mean-aggregation GNN; messages linear(x)[src] (the linear map applied per
  node, then gathered per edge: the same product mpc's optimizer makes of the per-edge
  `linear(src)`), summed at the destination with index_add_ and divided by the in-degree
  (nodes without in-edges get 0), plus linear(x) of the node itself.
"""

import time

t_import = time.perf_counter()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common as c  # noqa: E402
import models_common as mc  # noqa: E402

import_ms = c.ms(t_import)


def lin(w, b):
    """nn.Linear from mpc's [in, out] weight."""
    m = nn.Linear(w.shape[0], w.shape[1])
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w).t())
        m.bias.copy_(torch.from_numpy(b))
    return m


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
    def __init__(self, w, edges):
        super().__init__()
        self.m1, self.s1 = lin(w["m1_w"], w["m1_b"]), lin(w["s1_w"], w["s1_b"])
        self.m2, self.s2 = lin(w["m2_w"], w["m2_b"]), lin(w["s2_w"], w["s2_b"])
        self.src, self.dst = edges[0].long(), edges[1].long()
        deg = torch.zeros(mc.N_NODES).index_add_(0, self.dst, torch.ones(self.dst.shape[0]))
        self.inv_deg = (1.0 / deg.clamp(min=1.0)).unsqueeze(1)

    def propagate(self, msg, h):
        per_edge = msg(h)[self.src]
        agg = torch.zeros(mc.N_NODES, per_edge.shape[1]).index_add_(0, self.dst, per_edge)
        return agg * self.inv_deg

    def forward(self, x):
        h = F.relu(self.propagate(self.m1, x) + self.s1(x))
        return self.propagate(self.m2, h) + self.s2(h)


def main():
    args = mc.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches, w = mc.load(args.run, args.model)
    t0 = time.perf_counter()
    if args.model == "fusion":
        model = Fusion(w)
        inputs = [
            (torch.from_numpy(b["text"]).long(), torch.from_numpy(b["image"]), torch.from_numpy(b["audio"]))
            for b in batches
        ]
    else:
        model = GraphSage(w, torch.from_numpy(batches[0]["g.edges"]))
        inputs = [(torch.from_numpy(batches[0]["x"]),)]
    ys = [torch.from_numpy(b["y"]).long() for b in batches]
    opt = torch.optim.Adam(
        model.parameters(), lr=mc.LR[args.model], betas=(c.BETA1, c.BETA2), eps=c.EPS, fused=args.fused or None
    )
    setup_ms = c.ms(t0)

    def train_step(i):
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*inputs[i]), ys[i])
        loss.backward()
        opt.step()
        return loss.item()

    def eval_step(i):
        model.eval()
        with torch.inference_mode():
            return F.cross_entropy(model(*inputs[i]), ys[i]).item()

    out = {
        "framework": "torch",
        "variant": "eager, fused Adam" if args.fused else "eager, Adam",
        "model": args.model,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "batch": args.batch,
        "compile_ms": None,
        "setup_ms": setup_ms,
        "import_ms": import_ms,
    }
    out.update(c.run_schedule(args, len(inputs), train_step, eval_step))
    out["version"] = torch.__version__
    c.emit(out)


if __name__ == "__main__":
    main()
