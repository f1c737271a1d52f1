"""JAX peer of the fusion and graph benchmarks (see bench_models.rs, models_common.py and
models_torch.py for the models): the whole training step (loss, value_and_grad, Adam
with bias correction) is one `jax.jit`, parameters and optimizer state donated;
inference is jitted too. Graph aggregation: `jax.ops.segment_sum` of the gathered
per-node products, divided by the in-degree. Threads as in text_classifier_jax.py.

  python bench/models_jax.py --run DIR --model fusion|graph --threads N
"""

import os
import sys
import time

import common as c
import models_common as mc
from text_classifier_jax import xla_flags


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

    if args.model == "fusion":
        inputs = [tuple(jax.device_put(b[k]) for k in ["text", "image", "audio"]) for b in batches]

        def logits_of(p, text, image, audio):
            t = p["embed"][text].mean(axis=1)
            v = image.reshape(image.shape[0], -1) @ p["v_w"] + p["v_b"]
            a = (audio @ p["a_w"] + p["a_b"]).mean(axis=1)

            def f(x, y):
                return jnp.tanh(jnp.concatenate([x, y], axis=1) @ p["f_w"] + p["f_b"])

            for _ in range(2):
                t, v, a = t + (f(t, v) + f(t, a)), v + (f(v, t) + f(v, a)), a + (f(a, t) + f(a, v))
            return jnp.concatenate([t, v, a], axis=1) @ p["out_w"] + p["out_b"]
    else:
        edges = batches[0]["g.edges"]
        src, dst = jnp.asarray(edges[0]), jnp.asarray(edges[1])
        deg = jax.ops.segment_sum(jnp.ones(src.shape[0], jnp.float32), dst, num_segments=mc.N_NODES)
        inv_deg = (1.0 / jnp.maximum(deg, 1.0))[:, None]
        inputs = [(jax.device_put(batches[0]["x"]),)]

        def propagate(h, wt, b):
            per_edge = (h @ wt + b)[src]
            return jax.ops.segment_sum(per_edge, dst, num_segments=mc.N_NODES) * inv_deg

        def logits_of(p, x):
            h = jax.nn.relu(propagate(x, p["m1_w"], p["m1_b"]) + x @ p["s1_w"] + p["s1_b"])
            return propagate(h, p["m2_w"], p["m2_b"]) + h @ p["s2_w"] + p["s2_b"]

    ys = [jax.device_put(b["y"]) for b in batches]

    def xent(logits, y):
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def loss_fn(p, xs, y):
        return xent(logits_of(p, *xs), y)

    def train_step(p, m, v, t, xs, y):
        loss, g = jax.value_and_grad(loss_fn)(p, xs, y)
        t = t + 1.0
        bc1 = 1.0 - c.BETA1**t
        bc2 = 1.0 - c.BETA2**t
        m = jax.tree.map(lambda m, g: c.BETA1 * m + (1.0 - c.BETA1) * g, m, g)
        v = jax.tree.map(lambda v, g: c.BETA2 * v + (1.0 - c.BETA2) * g * g, v, g)
        p = jax.tree.map(lambda p, m, v: p - lr * (m / bc1) / (jnp.sqrt(v / bc2) + c.EPS), p, m, v)
        return p, m, v, t, loss

    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    t = jnp.zeros((), jnp.float32)

    t0 = time.perf_counter()
    train_c = jax.jit(train_step, donate_argnums=(0, 1, 2, 3)).lower(params, m, v, t, inputs[0], ys[0]).compile()
    eval_c = jax.jit(loss_fn).lower(params, inputs[0], ys[0]).compile()
    compile_ms = c.ms(t0)

    state = {"p": params, "m": m, "v": v, "t": t}

    def train(i):
        s = state
        s["p"], s["m"], s["v"], s["t"], loss = train_c(s["p"], s["m"], s["v"], s["t"], inputs[i], ys[i])
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
