"""Molecules benchmark (issue 12), JAX side: examples/molecules.mp with `jax.jit` and
padding to bucket sizes, the usual way to feed graphs of changing size to XLA.

Each epoch shuffles the 3,993 training molecules (numpy `default_rng(seed)`), cuts them
into batches of 64 and assembles every batch in numpy (timed: concatenating the
molecules' node rows, edge columns shifted by each molecule's node offset, edge
features), padded to a bucket: nodes up to the next multiple of 256, edges up to the
next multiple of 512, graphs always 64 (the last partial batch masks its missing
molecules out of the loss). Padded edges point at an extra aggregation row that is
dropped, padded nodes at an extra readout row that is dropped, so padding changes no
result. Aggregation and readout are `jax.ops.segment_sum`. The training step (loss,
`value_and_grad`, Adam with bias correction written out: optax is not in bench/.venv) is
one `jax.jit` with parameters and optimizer state donated; the evaluation pass over the
998 held-out molecules (same buckets, batches in order) is another. Each new bucket shape
traces and compiles again, inside the epoch that meets it (so the first epoch carries
most of the compile time); a Python counter in the traced functions counts the traces =
compiles. Losses stay on the device during the epoch (no per-step host sync, as usual
in JAX); the epoch's time ends when the held-out MAE is on the host. Init: PyTorch's
default for nn.Linear (uniform +-1/sqrt(fan_in), weights and biases).

Threads: run under `taskset -c 0..T-1`; XLA_FLAGS (set below unless the caller set it)
sizes the Eigen pool to T, as bench/models_jax.py does.

  python bench/molecules_jax.py --epochs K --threads T --seed S

Prints one JSON line per epoch, then a final one with compiles and peak RSS (MB).
"""

import os
import time

import numpy as np

import molecules_common as mc

args = mc.parse_args()
multi = "true" if args.threads > 1 else "false"
os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={args.threads}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
t_start = time.perf_counter()
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

NODE_BUCKET, EDGE_BUCKET = 256, 512
traces = {"train": 0, "eval": 0}


def round_up(n, k):
    return max(k, -(-n // k) * k)


def assemble(m, ids):
    """Batch of molecules `ids` of split `m`, padded to the buckets (numpy)."""
    nc, ec = m.nc[ids], m.ec[ids]
    n, e = int(nc.sum()), int(ec.sum())
    ncap, ecap = round_up(n, NODE_BUCKET), round_up(e, EDGE_BUCKET)
    x = np.zeros((ncap, mc.F), np.float32)
    ef = np.zeros((ecap, mc.B), np.float32)
    src = np.zeros(ecap, np.int32)  # padded edges: from node 0 ...
    dst = np.full(ecap, ncap, np.int32)  # ... into the dropped row ncap
    graph = np.full(ncap, mc.BATCH, np.int32)  # padded nodes: into the dropped readout row
    x[:n] = np.concatenate([m.x[m.no[g]:m.no[g] + m.nc[g]] for g in ids])
    ef[:e] = np.concatenate([m.ef[m.eo[g]:m.eo[g] + m.ec[g]] for g in ids])
    shift = np.repeat(np.concatenate([[0], np.cumsum(nc)[:-1]]), ec)  # each edge's node offset
    cols = np.concatenate([m.edges[:, m.eo[g]:m.eo[g] + m.ec[g]] for g in ids], axis=1)
    src[:e] = cols[0] + shift
    dst[:e] = cols[1] + shift
    graph[:n] = np.repeat(np.arange(len(ids), dtype=np.int32), nc)
    y = np.zeros(mc.BATCH, np.float32)
    mask = np.zeros(mc.BATCH, np.float32)
    y[:len(ids)] = m.y[ids]
    mask[:len(ids)] = 1.0
    return x, src, dst, ef, graph, y, mask


def init_params(seed):
    rng = np.random.default_rng(seed)

    def linear(fan_in, fan_out):
        bound = 1.0 / np.sqrt(fan_in)
        return (jnp.asarray(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)),
                jnp.asarray(rng.uniform(-bound, bound, fan_out).astype(np.float32)))

    p = {}
    p["W0"], p["b0"] = linear(mc.F, mc.H)
    for l in (1, 2, 3):
        p[f"A{l}"], p[f"a{l}"] = linear(mc.H + mc.B, mc.H)
        p[f"U{l}"], p[f"c{l}"] = linear(mc.H, mc.H)
    p["W1"], p["b1"] = linear(mc.H, mc.H)
    p["W2"], p["b2"] = linear(mc.H, 1)
    return p


def predict(p, x, src, dst, ef, graph):
    ncap = x.shape[0]
    h = jax.nn.relu(x @ p["W0"] + p["b0"])
    for l in (1, 2, 3):
        msg = jnp.concatenate([h[src], ef], axis=1) @ p[f"A{l}"] + p[f"a{l}"]
        agg = jax.ops.segment_sum(msg, dst, num_segments=ncap + 1)[:ncap]
        h = jax.nn.relu(agg + h @ p[f"U{l}"] + p[f"c{l}"])
    pooled = jax.ops.segment_sum(h, graph, num_segments=mc.BATCH + 1)[:mc.BATCH]
    return (jax.nn.relu(pooled @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"])[:, 0]


def loss_fn(p, x, src, dst, ef, graph, y, mask):
    err = predict(p, x, src, dst, ef, graph) - y
    return jnp.sum(mask * err * err) / jnp.sum(mask)


@jax.jit
def eval_step(p, x, src, dst, ef, graph, y, mask):
    traces["eval"] += 1  # runs once per trace, i.e. per compiled shape
    return jnp.sum(mask * jnp.abs(predict(p, x, src, dst, ef, graph) - y))


def train_step(p, m, v, t, x, src, dst, ef, graph, y, mask):
    traces["train"] += 1
    loss, g = jax.value_and_grad(loss_fn)(p, x, src, dst, ef, graph, y, mask)
    t = t + 1.0
    bc1, bc2 = 1.0 - mc.BETA1**t, 1.0 - mc.BETA2**t
    m = jax.tree.map(lambda m, g: mc.BETA1 * m + (1.0 - mc.BETA1) * g, m, g)
    v = jax.tree.map(lambda v, g: mc.BETA2 * v + (1.0 - mc.BETA2) * g * g, v, g)
    p = jax.tree.map(lambda p, m, v: p - mc.LR * (m / bc1) / (jnp.sqrt(v / bc2) + mc.EPS), p, m, v)
    return p, m, v, t, loss


train_step = jax.jit(train_step, donate_argnums=(0, 1, 2, 3))


def main():
    train_set, test_set = mc.load(args.data)
    rng = np.random.default_rng(args.seed)
    p = init_params(args.seed)
    m = jax.tree.map(jnp.zeros_like, p)
    v = jax.tree.map(jnp.zeros_like, p)
    t = jnp.zeros((), jnp.float32)
    test_batches = [np.arange(i, min(i + mc.BATCH, test_set.n)) for i in range(0, test_set.n, mc.BATCH)]
    shapes = set()
    total_steps = 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(train_set.n)
        losses = []
        for i in range(0, train_set.n, mc.BATCH):
            batch = assemble(train_set, order[i:i + mc.BATCH])
            shapes.add((batch[0].shape[0], batch[1].shape[0]))
            p, m, v, t, loss = train_step(p, m, v, t, *batch)
            losses.append(loss)
        train_loss = float(jnp.mean(jnp.stack(losses)))
        train_s = time.perf_counter() - t0
        abs_err = [eval_step(p, *assemble(test_set, ids)) for ids in test_batches]
        mae = float(jnp.sum(jnp.stack(abs_err))) / test_set.n
        seconds = time.perf_counter() - t0
        total_steps += len(losses)
        mc.emit({
            "side": "jax", "epoch": epoch, "seconds": seconds, "train_seconds": train_s, "steps": len(losses),
            "loss": train_loss, "eval_mae": mae, "compiles_so_far": dict(traces),
        })
    mc.emit({
        "side": "jax", "final": True, "steps": total_steps, "compiles": dict(traces),
        "jit_cache_sizes": [f._cache_size() if hasattr(f, "_cache_size") else None for f in (train_step, eval_step)],
        "train_shapes": sorted(shapes), "peak_rss_mb": mc.peak_rss_mb(),
        "seconds_since_import": time.perf_counter() - t_start, "version": f"jax {jax.__version__}",
    })


if __name__ == "__main__":
    main()
