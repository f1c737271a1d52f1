"""PyTorch eager peer of every benchmark (the models are `torch_models.py`'s, the data
and weights `models_common.py`'s): same data, initial weights, batch order and schedule
as the mpc side.

  python bench/models_torch.py --run DIR --model text|fusion|graph|transformer|gat|gat-karate|gnn-nonlinear --threads N [--fused] [--pyg]

--fused uses Adam(fused=True); otherwise the default Adam (on CPU: the per-parameter
for-loop implementation). --pyg (gnn-nonlinear only) builds the model from PyG
MessagePassing layers instead of plain torch ops. Prints one JSON line (see bench/common.py).
"""

import time

t_import = time.perf_counter()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common as c  # noqa: E402
import models_common as mc  # noqa: E402
import torch_models as tm  # noqa: E402

import_ms = c.ms(t_import)


def main():
    args = mc.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches, w = mc.load(args.run, args.model)
    # Token ids must be int64 in PyTorch; convert once, outside the timings.
    if args.model in mc.GRAPHS:
        inputs = [(torch.from_numpy(batches[0]["x"]),)]
    else:
        inputs = [
            tuple(torch.from_numpy(b[k]).long() if b[k].dtype.kind == "i" else torch.from_numpy(b[k])
                  for k in mc.COLUMNS[args.model])
            for b in batches
        ]
    ys = [torch.from_numpy(b["y"]).long() for b in batches]
    if args.pyg and args.model != "gnn-nonlinear":
        raise SystemExit("--pyg is for --model gnn-nonlinear (the GAT always uses PyG)")
    t0 = time.perf_counter()
    if args.model == "text":
        model = tm.TextClassifier(w)
    elif args.model == "fusion":
        model = tm.Fusion(w)
    elif args.model == "transformer":
        model = tm.CharTransformer(w)
    elif args.model in ("gat", "gat-karate"):
        model = tm.Gat(w, torch.from_numpy(batches[0]["g.edges"]))
    elif args.model == "gnn-nonlinear" and args.pyg:
        model = tm.GnnNonlinearPyG(w, torch.from_numpy(batches[0]["g.edges"]))
    elif args.model == "gnn-nonlinear":
        model = tm.GnnNonlinear(w, torch.from_numpy(batches[0]["g.edges"]), batches[0]["x"].shape[0])
    else:
        model = tm.GraphSage(w, torch.from_numpy(batches[0]["g.edges"]), mc.N_NODES)
    opt = torch.optim.Adam(
        model.parameters(), lr=mc.LR[args.model], betas=(c.BETA1, c.BETA2), eps=c.EPS, fused=args.fused or None
    )
    setup_ms = c.ms(t0)

    # ignore_index=-1: the unlabeled nodes of the GAT and gnn-nonlinear (mpc's
    # cross_entropy skips label -1); the other models have no -1 labels.
    def train_step(i):
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*inputs[i]), ys[i], ignore_index=-1)
        loss.backward()
        opt.step()
        return loss.item()

    def eval_step(i):
        model.eval()
        with torch.inference_mode():
            return F.cross_entropy(model(*inputs[i]), ys[i], ignore_index=-1).item()

    out = {
        "framework": "torch",
        "variant": ("pyg, " if args.pyg else "eager, ") + ("fused Adam" if args.fused else "Adam"),
        "model": args.model,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "batch": args.batch,
        # Eager mode compiles nothing; setup_ms is building the module, loading the
        # weights and creating the optimizer (its first import of torch._dynamo included).
        "compile_ms": None,
        "setup_ms": setup_ms,
        "import_ms": import_ms,
    }
    out.update(c.run_schedule(args, len(inputs), train_step, eval_step))
    out["version"] = torch.__version__
    c.emit(out)


if __name__ == "__main__":
    main()
