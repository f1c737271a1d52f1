"""Molecules benchmark (issue 12), PyTorch Geometric side: examples/molecules.mp written
with PyG, trained the way PyG users do it.

One `torch_geometric.data.Data(x, edge_index, edge_attr, y)` per molecule, built once
before the timed epochs (not timed); each epoch is a `DataLoader(batch_size=64,
shuffle=True)` pass over the 3,993 training molecules (the loader's collation into one
block-diagonal batch IS timed: that is what PyG users pay), eager forward / backward /
`torch.optim.Adam` per batch, then one evaluation pass over the 998 held-out molecules
(`inference_mode`, batches of 64 in order) for the mean absolute error. Messages go
through `MessagePassing(aggr="add")`, the readout is `global_add_pool`. Default
`nn.Linear` init; eager PyTorch compiles nothing (compiles: 0).

  python bench/molecules_pyg.py --epochs K --threads T --seed S

Prints one JSON line per epoch, then a final one with compiles and peak RSS (MB).
"""

import time

import molecules_common as mc

args = mc.parse_args()
t_start = time.perf_counter()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch_geometric  # noqa: E402
from torch import nn  # noqa: E402
from torch_geometric.data import Data  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402
from torch_geometric.nn import MessagePassing, global_add_pool  # noqa: E402


class BondConv(MessagePassing):
    """h_i' = relu(sum over edges j->i of lin(concat(h_j, bond)) + root(h_i))."""

    def __init__(self):
        super().__init__(aggr="add")  # flow source_to_target: x_j = h[edge_index[0]]
        self.msg = nn.Linear(mc.H + mc.B, mc.H)
        self.root = nn.Linear(mc.H, mc.H)

    def forward(self, h, edge_index, edge_attr):
        return F.relu(self.propagate(edge_index, x=h, edge_attr=edge_attr) + self.root(h))

    def message(self, x_j, edge_attr):
        return self.msg(torch.cat([x_j, edge_attr], dim=-1))


class Molecules(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(mc.F, mc.H)
        self.convs = nn.ModuleList([BondConv() for _ in range(3)])
        self.fc1 = nn.Linear(mc.H, mc.H)
        self.fc2 = nn.Linear(mc.H, 1)

    def forward(self, b):
        h = F.relu(self.embed(b.x))
        for conv in self.convs:
            h = conv(h, b.edge_index, b.edge_attr)
        pooled = global_add_pool(h, b.batch, size=b.num_graphs)
        return self.fc2(F.relu(self.fc1(pooled))).squeeze(-1)


def data_list(m):
    return [
        Data(
            x=torch.from_numpy(m.x[m.no[g]:m.no[g] + m.nc[g]]),
            edge_index=torch.from_numpy(m.edges[:, m.eo[g]:m.eo[g] + m.ec[g]]).long(),
            edge_attr=torch.from_numpy(m.ef[m.eo[g]:m.eo[g] + m.ec[g]]),
            y=torch.from_numpy(m.y[g:g + 1]),
        )
        for g in range(m.n)
    ]


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_set, test_set = mc.load(args.data)
    t0 = time.perf_counter()
    train_data, test_data = data_list(train_set), data_list(test_set)
    setup_s = time.perf_counter() - t0
    train_loader = DataLoader(
        train_data, batch_size=mc.BATCH, shuffle=True, generator=torch.Generator().manual_seed(args.seed)
    )
    test_loader = DataLoader(test_data, batch_size=mc.BATCH, shuffle=False)
    model = Molecules()
    opt = torch.optim.Adam(model.parameters(), lr=mc.LR, betas=(mc.BETA1, mc.BETA2), eps=mc.EPS)

    total_steps = 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum, steps = 0.0, 0
        for b in train_loader:
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(model(b), b.y)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            steps += 1
        train_s = time.perf_counter() - t0
        model.eval()
        abs_err = 0.0
        with torch.inference_mode():
            for b in test_loader:
                abs_err += (model(b) - b.y).abs().sum().item()
        seconds = time.perf_counter() - t0
        total_steps += steps
        mc.emit({
            "side": "pyg", "epoch": epoch, "seconds": seconds, "train_seconds": train_s, "steps": steps,
            "loss": loss_sum / steps, "eval_mae": abs_err / test_set.n,
        })
    mc.emit({
        "side": "pyg", "final": True, "steps": total_steps, "compiles": {"train": 0, "eval": 0},
        "peak_rss_mb": mc.peak_rss_mb(), "setup_seconds": setup_s,
        "seconds_since_import": time.perf_counter() - t_start,
        "threads": torch.get_num_threads(), "version": f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}",
    })


if __name__ == "__main__":
    main()
