"""Makes the PyTorch parity fixtures of tests/parity.rs.

In: an mpc binary and the models under tests/fixtures/parity/ (blocks.mp: embeddings
with learned positions, layer_norm, linear with and without bias, tanh gelu; encoder.mp:
nn.TransformerEncoderLayer (post-norm, exact gelu); encoder2.mp: two such layers from
`layers 2 { ... }`, as nn.TransformerEncoder(num_layers=2); decoder.mp: the same with a causal
mask; padded.mp: a key padding mask and masked mean pooling, on data_padded/). Out, next to them: data/ (seeded
tokens and labels as .npy), and <model>.json: PyTorch's logits for the data at mpc's
initial parameters, and the loss of each of 20 full-batch Adam steps.

How: `mpc train --epochs 0 --save` gives mpc's initial parameters (the train block's
seed); the same layers in PyTorch (nn.Embedding, nn.LayerNorm, nn.Linear with
bias=False, F.gelu(approximate="tanh") for blocks.mp's `gelu(.., approximate: tanh)`,
nn.TransformerEncoderLayer(activation="gelu", the exact erf form, as mpc's plain
`gelu`), torch.optim.Adam) load them (linear weights transposed: mpc stores [in, out])
and train on the same batch. The test trains with mpc from the same seed and compares
at 1e-4 relative.

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


def data(out: pathlib.Path, padded=False):
    rng = np.random.default_rng(11)
    tokens = rng.integers(0, V, size=(B, T), dtype=np.int32)
    if padded:
        # Real tokens 1..V-1, then padding (0) after 2 + i % 5 of them.
        tokens = rng.integers(1, V, size=(B, T), dtype=np.int32)
        for i in range(B):
            tokens[i, 2 + i % 5:] = 0
    y = ((tokens[:, 0] + tokens[:, 1]) % C).astype(np.int32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "tokens.npy", tokens)
    np.save(out / "y.npy", y)
    return torch.from_numpy(tokens).long(), torch.from_numpy(y).long()


def p(w, name, transpose=False):
    return torch.nn.Parameter(w[name].T.contiguous() if transpose else w[name].clone())


def attention(w, name, heads=2):
    """nn.MultiheadAttention holding mpc's `name.*` weights."""
    attn = torch.nn.MultiheadAttention(D, heads, batch_first=True)
    with torch.no_grad():
        # mpc: [D, 3D] (q, k, v side by side), [in, out]; PyTorch: [3D, D], [out, in].
        attn.in_proj_weight.copy_(w[f"{name}.in_proj.weight"].T)
        attn.in_proj_bias.copy_(w[f"{name}.in_proj.bias"])
        attn.out_proj.weight.copy_(w[f"{name}.out_proj.weight"].T)
        attn.out_proj.bias.copy_(w[f"{name}.out_proj.bias"])
    return attn


class Blocks(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.tok = p(w, "h.embed.weight")
        self.pos = p(w, "h.embed_1.weight")
        self.ln1_w, self.ln1_b = p(w, "h.layer_norm.weight"), p(w, "h.layer_norm.bias")
        self.fc1_w, self.fc1_b = p(w, "g.linear.weight", True), p(w, "g.linear.bias")
        self.fc2_w = p(w, "g.linear_1.weight", True)
        self.ln2_w, self.ln2_b = p(w, "g.layer_norm.weight"), p(w, "g.layer_norm.bias")
        self.out_w, self.out_b = p(w, "loss.linear.weight", True), p(w, "loss.linear.bias")

    def forward(self, tokens):
        h = F.embedding(tokens, self.tok) + F.embedding(torch.arange(T), self.pos)
        h = F.layer_norm(h, (D,), self.ln1_w, self.ln1_b, eps=1e-5)
        ff = F.linear(F.gelu(F.linear(h, self.fc1_w, self.fc1_b), approximate="tanh"), self.fc2_w)
        g = F.layer_norm(h + ff, (D,), self.ln2_w, self.ln2_b, eps=1e-5)
        return F.linear(g.mean(dim=1), self.out_w, self.out_b)


def encoder_layer(w, attn, norm1, linear1, linear2, norm2, heads=2, ff=16):
    """nn.TransformerEncoderLayer(D, heads, ff, dropout=0, activation="gelu",
    batch_first=True) holding mpc's weights: `attn` the self_attention scope, `norm1`
    and `norm2` layer_norm scopes, `linear1` and `linear2` the MLP's linear scopes."""
    layer = torch.nn.TransformerEncoderLayer(D, heads, ff, dropout=0.0, activation="gelu", batch_first=True)
    layer.self_attn = attention(w, attn, heads)
    with torch.no_grad():
        for mod, name in [(layer.norm1, norm1), (layer.norm2, norm2)]:
            mod.weight.copy_(w[f"{name}.weight"])
            mod.bias.copy_(w[f"{name}.bias"])
        for mod, name in [(layer.linear1, linear1), (layer.linear2, linear2)]:
            mod.weight.copy_(w[f"{name}.weight"].T)
            mod.bias.copy_(w[f"{name}.bias"])
    return layer


class Encoder(torch.nn.Module):
    def __init__(self, w, causal=False):
        super().__init__()
        # PyTorch's boolean attn_mask: True where a query may NOT attend (keys after it).
        self.mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
        self.tok = p(w, "x.embed.weight")
        self.pos = p(w, "x.embed_1.weight")
        self.layer = encoder_layer(w, "h.self_attention", "h.layer_norm", "g.linear", "g.linear_1", "g.layer_norm")
        self.out_w, self.out_b = p(w, "loss.linear.weight", True), p(w, "loss.linear.bias")

    def forward(self, tokens):
        x = F.embedding(tokens, self.tok) + F.embedding(torch.arange(T), self.pos)
        g = self.layer(x, src_mask=self.mask)
        return F.linear(g.mean(dim=1), self.out_w, self.out_b)


class Stack(torch.nn.Module):
    """nn.TransformerEncoder(num_layers=2) for encoder2.mp's `layers 2 { ... }`: mpc's
    `h.layers.<i>.*` are the encoder's `layers.<i>.*` (self_attention -> self_attn,
    layer_norm -> norm1, linear -> linear1, linear_1 -> linear2, layer_norm_1 -> norm2)."""

    def __init__(self, w, num_layers=2):
        super().__init__()
        self.tok = p(w, "h.embed.weight")
        self.pos = p(w, "h.embed_1.weight")

        def layer(i):
            s = f"h.layers.{i}"
            return encoder_layer(w, f"{s}.self_attention", f"{s}.layer_norm", f"{s}.linear", f"{s}.linear_1",
                                 f"{s}.layer_norm_1")

        self.encoder = torch.nn.TransformerEncoder(layer(0), num_layers, enable_nested_tensor=False)
        self.encoder.layers = torch.nn.ModuleList([layer(i) for i in range(num_layers)])
        self.out_w, self.out_b = p(w, "loss.linear.weight", True), p(w, "loss.linear.bias")

    def forward(self, tokens):
        x = F.embedding(tokens, self.tok) + F.embedding(torch.arange(T), self.pos)
        return F.linear(self.encoder(x).mean(dim=1), self.out_w, self.out_b)


class Padded(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.tok = p(w, "x.embed.weight")
        self.pos = p(w, "x.embed_1.weight")
        self.attn = attention(w, "h.self_attention")
        self.ln_w, self.ln_b = p(w, "h.layer_norm.weight"), p(w, "h.layer_norm.bias")
        self.out_w, self.out_b = p(w, "loss.linear.weight", True), p(w, "loss.linear.bias")

    def forward(self, tokens):
        pad = tokens == 0
        x = F.embedding(tokens, self.tok) + F.embedding(torch.arange(T), self.pos)
        a = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)[0]
        h = F.layer_norm(x + a, (D,), self.ln_w, self.ln_b, eps=1e-5)
        keep = (~pad).float().unsqueeze(-1)
        pooled = (h * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        return F.linear(pooled, self.out_w, self.out_b)


def fixture(mpc, name, build, inputs, y, data_dir="data", made_by="bench/parity.py"):
    """Writes <name>.json: the logits of `build(mpc's initial weights)(*inputs)` and the
    losses of 20 full-batch Adam steps (labels -1 ignored). bench/parity_gat.py uses it too."""
    with tempfile.TemporaryDirectory() as tmp:
        init = pathlib.Path(tmp) / "init.safetensors"
        subprocess.run(
            [mpc, "train", str(HERE / f"{name}.mp"), "--data", str(HERE / data_dir), "--epochs", "0",
             "--save", str(init)],
            check=True, capture_output=True)
        w = load_file(str(init))
    torch.manual_seed(0)
    model = build(w)
    with torch.no_grad():
        logits = model(*inputs)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(model(*inputs), y, ignore_index=-1)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    expected = {
        "made_by": "%s (torch %s)" % (made_by, torch.__version__),
        "initial_logits": logits.flatten().tolist(),
        "losses": losses,
    }
    (HERE / f"{name}.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(name, "losses", losses[0], "->", losses[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpc", required=True)
    args = ap.parse_args()
    tokens, y = data(HERE / "data")
    fixture(args.mpc, "blocks", Blocks, (tokens,), y)
    fixture(args.mpc, "encoder", Encoder, (tokens,), y)
    fixture(args.mpc, "decoder", lambda w: Encoder(w, causal=True), (tokens,), y)
    fixture(args.mpc, "encoder2", Stack, (tokens,), y)
    tokens, y = data(HERE / "data_padded", padded=True)
    fixture(args.mpc, "padded", Padded, (tokens,), y, "data_padded")


if __name__ == "__main__":
    main()
