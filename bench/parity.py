"""Makes the PyTorch parity fixtures of tests/parity.rs.

In: an mpc binary and a model under tests/fixtures/parity/ (blocks.mp: embeddings with
learned positions, layer_norm, linear with and without bias, gelu). Out, next to the
model: data/ (seeded tokens and labels as .npy), and expected.json: PyTorch's logits for
the data at mpc's initial parameters, and the loss of each of 20 full-batch Adam steps.

How: `mpc train --epochs 0 --save` gives mpc's initial parameters (the train block's
seed); the same layers in PyTorch (nn.Embedding, nn.LayerNorm, nn.Linear with
bias=False, F.gelu(approximate="tanh"), torch.optim.Adam) load them (linear weights
transposed: mpc stores [in, out]) and train on the same batch. The test trains with mpc
from the same seed and compares at 1e-4 relative.

    bench/.venv/bin/python bench/parity.py --mpc target/debug/mpc
"""

import argparse
import json
import pathlib
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

HERE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "parity"
B, T, V, D, C, STEPS, LR = 8, 6, 20, 8, 3, 20, 1e-2


def data(out: pathlib.Path):
    rng = np.random.default_rng(11)
    tokens = rng.integers(0, V, size=(B, T), dtype=np.int32)
    y = ((tokens[:, 0] + tokens[:, 1]) % C).astype(np.int32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "tokens.npy", tokens)
    np.save(out / "y.npy", y)
    return torch.from_numpy(tokens).long(), torch.from_numpy(y).long()


class Blocks(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        p = lambda name, transpose=False: torch.nn.Parameter(w[name].T.contiguous() if transpose else w[name].clone())
        self.tok = p("h.embed.weight")
        self.pos = p("h.embed_1.weight")
        self.ln1_w, self.ln1_b = p("h.layer_norm.weight"), p("h.layer_norm.bias")
        self.fc1_w, self.fc1_b = p("g.linear.weight", True), p("g.linear.bias")
        self.fc2_w = p("g.linear_1.weight", True)
        self.ln2_w, self.ln2_b = p("g.layer_norm.weight"), p("g.layer_norm.bias")
        self.out_w, self.out_b = p("loss.linear.weight", True), p("loss.linear.bias")

    def forward(self, tokens):
        h = F.embedding(tokens, self.tok) + F.embedding(torch.arange(T), self.pos)
        h = F.layer_norm(h, (D,), self.ln1_w, self.ln1_b, eps=1e-5)
        ff = F.linear(F.gelu(F.linear(h, self.fc1_w, self.fc1_b), approximate="tanh"), self.fc2_w)
        g = F.layer_norm(h + ff, (D,), self.ln2_w, self.ln2_b, eps=1e-5)
        return F.linear(g.mean(dim=1), self.out_w, self.out_b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpc", required=True)
    args = ap.parse_args()
    tokens, y = data(HERE / "data")
    with tempfile.TemporaryDirectory() as tmp:
        init = pathlib.Path(tmp) / "init.safetensors"
        subprocess.run(
            [args.mpc, "train", str(HERE / "blocks.mp"), "--data", str(HERE / "data"), "--epochs", "0",
             "--save", str(init)],
            check=True, capture_output=True)
        w = load_file(str(init))
    torch.manual_seed(0)
    model = Blocks(w)
    with torch.no_grad():
        logits = model(tokens)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(model(tokens), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    expected = {
        "made_by": "bench/parity.py (torch %s)" % torch.__version__,
        "initial_logits": logits.flatten().tolist(),
        "losses": losses,
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print("losses", losses[0], "->", losses[-1])


if __name__ == "__main__":
    main()
