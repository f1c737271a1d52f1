"""PyTorch eager peer of the mpc benchmark: the text classifier (B=64, T=32, vocab
10000, embed 64 -> mean -> linear 128 -> relu -> dropout 0.5 -> linear 2, cross-entropy,
Adam lr 1e-3) on the same data, initial weights and batch order as the mpc side.

  python bench/text_classifier_torch.py --run DIR --threads N [--fused]

--fused uses Adam(fused=True); otherwise the default Adam (on CPU: the per-parameter
for-loop implementation). Prints one JSON line (see bench/common.py).
"""

import time

t_import = time.perf_counter()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common as c  # noqa: E402

import_ms = c.ms(t_import)


class TextClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10000, 64)
        self.fc1 = nn.Linear(64, 128)
        self.drop = nn.Dropout(c.DROPOUT)
        self.fc2 = nn.Linear(128, 2)

    def forward(self, tokens):
        h = self.embed(tokens).mean(dim=1)
        h = self.drop(F.relu(self.fc1(h)))
        return self.fc2(h)


def main():
    args = c.parse_args(lambda p: p.add_argument("--fused", action="store_true"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xs, ys, w = c.load(args.run, args.batch)
    # Embedding indices must be int64 in PyTorch; convert once, outside the timings.
    xs = [torch.from_numpy(x).long() for x in xs]
    ys = [torch.from_numpy(y).long() for y in ys]

    t0 = time.perf_counter()
    model = TextClassifier()
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(w[c.EMBED]))
        # mpc stores linear weights [in, out]; nn.Linear wants [out, in].
        model.fc1.weight.copy_(torch.from_numpy(w[c.W1]).t())
        model.fc1.bias.copy_(torch.from_numpy(w[c.B1]))
        model.fc2.weight.copy_(torch.from_numpy(w[c.W2]).t())
        model.fc2.bias.copy_(torch.from_numpy(w[c.B2]))
    opt = torch.optim.Adam(
        model.parameters(), lr=c.LR, betas=(c.BETA1, c.BETA2), eps=c.EPS, fused=args.fused or None
    )
    setup_ms = c.ms(t0)

    def train_step(i):
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs[i]), ys[i])
        loss.backward()
        opt.step()
        return loss.item()

    def eval_step(i):
        model.eval()
        with torch.inference_mode():
            return F.cross_entropy(model(xs[i]), ys[i]).item()

    out = {
        "framework": "torch",
        "variant": "eager, fused Adam" if args.fused else "eager, Adam",
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "batch": args.batch,
        # Eager mode compiles nothing; setup_ms is building the module, loading the
        # weights and creating the optimizer (its first import of torch._dynamo included).
        "compile_ms": None,
        "setup_ms": setup_ms,
        "import_ms": import_ms,
    }
    out.update(c.run_schedule(args, len(xs), train_step, eval_step))
    out["version"] = torch.__version__
    c.emit(out)


if __name__ == "__main__":
    main()
