"""JAX peer of every benchmark (the models as in `torch_models.py`, the data and weights
`models_common.py`'s): the whole training step (loss, value_and_grad, Adam with bias
correction, written out below) is one `jax.jit` with the parameters and optimizer state
donated (updated in place); inference is jitted too. compile_ms is the ahead-of-time
lower + compile of both, so first_step_ms is the first run alone (compile_ms +
first_step_ms is what a plain first call of a jitted function costs). Graph aggregation:
`jax.ops.segment_sum` of the gathered per-node products, divided by the in-degree. The
text classifier's, the transformer's and the GAT's dropout draw a fresh key per step
(`fold_in` of the step number). The transformer's attention is written out (in_proj,
per-head scaled dot products with the padded keys at -inf, softmax, out_proj, as
nn.MultiheadAttention computes it); the GAT's edge softmax is `jax.ops.segment_max` (no
gradient through the shift, as PyG) / `segment_sum` over each destination's incoming
edges, self-loops appended. gnn-nonlinear: per-edge messages tanh(cat(h[src], h[dst]) W + b),
`jax.ops.segment_max` (empty segments, -inf there, set to 0 with `jnp.where`, mpc's rule)
then `segment_sum`.

Threads: run under `taskset -c 0..N-1`; XLA's CPU thread pool is sized from the cores
the process may use, and with N = 1 the Eigen multi-threading is switched off
(XLA_FLAGS, set below unless the caller set it).

  python bench/models_jax.py --run DIR --model text|fusion|graph|transformer|gat|gat-karate|gnn-nonlinear --threads N

Prints one JSON line (see bench/common.py).
"""

import os
import sys
import time

import common as c
import models_common as mc

DROPOUT = 0.5
DROPS = {"text", "transformer", "gat", "gat-karate"}  # the models with dropout


def xla_flags(threads):
    multi = "true" if threads > 1 else "false"
    return f"--xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={threads}"


def main():
    args = mc.parse_args()
    os.environ.setdefault("XLA_FLAGS", xla_flags(args.threads))
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    t_import = time.perf_counter()
    import jax
    import jax.numpy as jnp

    import_ms = c.ms(t_import)
    batches, w = mc.load(args.run, args.model)
    params = {k: jnp.asarray(v) for k, v in w.items()}
    lr = mc.LR[args.model]

    if args.model == "text":
        inputs = [(jax.device_put(b["tokens"]),) for b in batches]

        def logits_of(p, key, tokens):
            h = p["embed"][tokens].mean(axis=1)
            h = jax.nn.relu(h @ p["fc1_w"] + p["fc1_b"])  # mpc's [in, out] weights: x @ W
            if key is not None:
                keep = jax.random.bernoulli(key, 1.0 - DROPOUT, h.shape)
                h = jnp.where(keep, h / (1.0 - DROPOUT), 0.0)
            return h @ p["fc2_w"] + p["fc2_b"]
    elif args.model == "fusion":
        inputs = [tuple(jax.device_put(b[k]) for k in mc.COLUMNS["fusion"]) for b in batches]

        def logits_of(p, key, text, image, audio):
            t = p["embed"][text].mean(axis=1)
            v = image.reshape(image.shape[0], -1) @ p["v_w"] + p["v_b"]
            a = (audio @ p["a_w"] + p["a_b"]).mean(axis=1)

            def f(x, y):
                return jnp.tanh(jnp.concatenate([x, y], axis=1) @ p["f_w"] + p["f_b"])

            for _ in range(2):
                t, v, a = t + (f(t, v) + f(t, a)), v + (f(v, t) + f(v, a)), a + (f(a, t) + f(a, v))
            return jnp.concatenate([t, v, a], axis=1) @ p["out_w"] + p["out_b"]
    elif args.model == "transformer":
        inputs = [tuple(jax.device_put(b[k]) for k in mc.COLUMNS["transformer"]) for b in batches]
        p_drop, heads = mc.DROPOUT["transformer"], 4

        def drop(key, x):
            if key is None:
                return x
            keep = jax.random.bernoulli(key, 1.0 - p_drop, x.shape)
            return jnp.where(keep, x / (1.0 - p_drop), 0.0)

        def layer_norm(x, w, b):
            mu = x.mean(axis=-1, keepdims=True)
            var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
            return (x - mu) / jnp.sqrt(var + 1e-5) * w + b

        def logits_of(p, key, chars, bigrams):
            keys = [None] * 3 if key is None else list(jax.random.split(key, 3))
            pad = chars == 0
            bsz, seq = chars.shape
            x = p["chars"][chars] + p["bigrams"][bigrams] + p["pos"][:seq]
            d = x.shape[-1]
            dh = d // heads
            qkv = drop(keys[0], x) @ p["in_w"] + p["in_b"]  # [B, L, 3D]: q, k, v side by side
            q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(bsz, seq, heads, dh) for i in range(3))
            s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(float(dh))
            s = jnp.where(pad[:, None, None, :], -jnp.inf, s)  # key_padding_mask
            a = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, axis=-1), v).reshape(bsz, seq, d)
            h = layer_norm(x + drop(keys[1], a @ p["o_w"] + p["o_b"]), p["ln1_w"], p["ln1_b"])
            g = jax.nn.gelu(h @ p["fc1_w"] + p["fc1_b"], approximate=mc.GELU == "tanh")
            f = layer_norm(h + drop(keys[2], g @ p["fc2_w"] + p["fc2_b"]), p["ln2_w"], p["ln2_b"])
            keep = (~pad).astype(jnp.float32)[..., None]
            pooled = (f * keep).sum(axis=1) / jnp.maximum(keep.sum(axis=1), 1.0)
            return pooled @ p["out_w"] + p["out_b"]
    elif args.model in ("gat", "gat-karate"):
        edges = batches[0]["g.edges"]
        n = batches[0]["x"].shape[0]
        assert not (edges[0] == edges[1]).any(), "the data has self-loops; the loops below would double them"
        loops = jnp.arange(n, dtype=jnp.int32)  # mpc's `self_loops`: edge E + i is i -> i
        src = jnp.concatenate([jnp.asarray(edges[0]), loops])
        dst = jnp.concatenate([jnp.asarray(edges[1]), loops])
        inputs = [(jax.device_put(batches[0]["x"]),)]
        p_drop = mc.DROPOUT["gat"]

        def gat_conv(x, p, k, heads, ch):
            z = (x @ p[f"lin{k}"]).reshape(n, heads, ch)
            a_src = (z * p[f"att_src{k}"]).sum(-1)  # [N, H]
            a_dst = (z * p[f"att_dst{k}"]).sum(-1)
            e = jax.nn.leaky_relu(a_src[src] + a_dst[dst], 0.2)  # [E + N, H]
            shift = jax.lax.stop_gradient(jax.ops.segment_max(e, dst, num_segments=n))
            ex = jnp.exp(e - shift[dst])
            alpha = ex / jax.ops.segment_sum(ex, dst, num_segments=n)[dst]
            out = jax.ops.segment_sum(z[src] * alpha[..., None], dst, num_segments=n)
            return out.reshape(n, heads * ch) + p[f"bias{k}"]

        def logits_of(p, key, x):
            (h1, c1), (h2, c2) = mc.GAT_LAYERS
            h = jax.nn.elu(gat_conv(x, p, 1, h1, c1))
            if key is not None:
                keep = jax.random.bernoulli(key, 1.0 - p_drop, h.shape)
                h = jnp.where(keep, h / (1.0 - p_drop), 0.0)
            return gat_conv(h, p, 2, h2, c2)
    elif args.model == "gnn-nonlinear":
        edges = batches[0]["g.edges"]
        n = batches[0]["x"].shape[0]
        src, dst = jnp.asarray(edges[0]), jnp.asarray(edges[1])
        reached = (jax.ops.segment_sum(jnp.ones(src.shape[0], jnp.float32), dst, num_segments=n) > 0)[:, None]
        inputs = [(jax.device_put(batches[0]["x"]),)]

        def messages(h, wt, b):
            return jnp.tanh(jnp.concatenate([h[src], h[dst]], axis=1) @ wt + b)

        def logits_of(p, key, x):
            agg1 = jnp.where(reached, jax.ops.segment_max(messages(x, p["m1_w"], p["m1_b"]), dst, num_segments=n), 0.0)
            h1 = jax.nn.relu(agg1 + x @ p["s1_w"] + p["s1_b"])
            agg2 = jax.ops.segment_sum(messages(h1, p["m2_w"], p["m2_b"]), dst, num_segments=n)
            h2 = jax.nn.relu(agg2 + h1 @ p["s2_w"] + p["s2_b"])
            return h2 @ p["out_w"] + p["out_b"]
    else:
        edges = batches[0]["g.edges"]
        src, dst = jnp.asarray(edges[0]), jnp.asarray(edges[1])
        deg = jax.ops.segment_sum(jnp.ones(src.shape[0], jnp.float32), dst, num_segments=mc.N_NODES)
        inv_deg = (1.0 / jnp.maximum(deg, 1.0))[:, None]
        inputs = [(jax.device_put(batches[0]["x"]),)]

        def propagate(h, wt, b):
            per_edge = (h @ wt + b)[src]
            return jax.ops.segment_sum(per_edge, dst, num_segments=mc.N_NODES) * inv_deg

        def logits_of(p, key, x):
            h = jax.nn.relu(propagate(x, p["m1_w"], p["m1_b"]) + x @ p["s1_w"] + p["s1_b"])
            return propagate(h, p["m2_w"], p["m2_b"]) + h @ p["s2_w"] + p["s2_b"]

    ys = [jax.device_put(b["y"]) for b in batches]

    def xent(logits, y):
        logp = jax.nn.log_softmax(logits)
        if args.model not in mc.PARTLY_LABELED:
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        # Unlabeled nodes (-1) do not count, as in mpc's cross_entropy.
        labeled = y >= 0
        picked = jnp.take_along_axis(logp, jnp.maximum(y, 0)[:, None], axis=1)[:, 0]
        return -jnp.sum(jnp.where(labeled, picked, 0.0)) / jnp.maximum(labeled.sum(), 1)

    def loss_fn(p, xs, y, key):
        return xent(logits_of(p, key, *xs), y)

    def train_step(p, m, v, t, xs, y, key):
        loss, g = jax.value_and_grad(loss_fn)(p, xs, y, key)
        t = t + 1.0
        bc1 = 1.0 - c.BETA1**t
        bc2 = 1.0 - c.BETA2**t
        m = jax.tree.map(lambda m, g: c.BETA1 * m + (1.0 - c.BETA1) * g, m, g)
        v = jax.tree.map(lambda v, g: c.BETA2 * v + (1.0 - c.BETA2) * g * g, v, g)
        p = jax.tree.map(lambda p, m, v: p - lr * (m / bc1) / (jnp.sqrt(v / bc2) + c.EPS), p, m, v)
        return p, m, v, t, loss

    def eval_step(p, xs, y):
        return loss_fn(p, xs, y, None)

    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    t = jnp.zeros((), jnp.float32)
    base_key = jax.random.key(0)

    t0 = time.perf_counter()
    train_c = (
        jax.jit(train_step, donate_argnums=(0, 1, 2, 3))
        .lower(params, m, v, t, inputs[0], ys[0], jax.random.fold_in(base_key, 1))
        .compile()
    )
    eval_c = jax.jit(eval_step).lower(params, inputs[0], ys[0]).compile()
    compile_ms = c.ms(t0)

    state = {"p": params, "m": m, "v": v, "t": t, "n": 0}

    def train(i):
        s = state
        s["n"] += 1
        # Only the models with dropout get a fresh key; the others a constant one, so
        # their timed step has no extra dispatch.
        key = jax.random.fold_in(base_key, s["n"]) if args.model in DROPS else base_key
        s["p"], s["m"], s["v"], s["t"], loss = train_c(s["p"], s["m"], s["v"], s["t"], inputs[i], ys[i], key)
        jax.block_until_ready(s["p"])
        return float(loss)

    def evaluate(i):
        return float(eval_c(state["p"], inputs[i], ys[i]))

    out = {
        "framework": "jax",
        "variant": "jit",
        "model": args.model,
        "threads": args.threads,
        "batch": args.batch,
        "compile_ms": compile_ms,
        "import_ms": import_ms,
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }
    out.update(c.run_schedule(args, len(inputs), train, evaluate))
    out["version"] = jax.__version__
    c.emit(out)


if __name__ == "__main__":
    sys.exit(main())
