"""JAX peer of the mpc benchmark: the text classifier (B=64, T=32, vocab 10000, embed 64
-> mean -> linear 128 -> relu -> dropout 0.5 -> linear 2, cross-entropy, Adam lr 1e-3)
on the same data, initial weights and batch order as the mpc side.

  python bench/text_classifier_jax.py --run DIR --threads N

The whole training step (loss, grad, Adam with bias correction, written out below) is
one `jax.jit` with the parameters and optimizer state donated (updated in place);
inference is jitted too. compile_ms is the ahead-of-time lower + compile of both, so
first_step_ms is the first run alone (compile_ms + first_step_ms is what a plain first
call of a jitted function costs). Threads: run under `taskset -c 0..N-1`; XLA's CPU
thread pool is sized from the cores the process may use, and with N = 1 the Eigen
multi-threading is switched off (XLA_FLAGS, set below unless the caller set it).
Prints one JSON line (see bench/common.py).
"""

import os
import sys
import time

import common as c


def xla_flags(threads):
    multi = "true" if threads > 1 else "false"
    return f"--xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={threads}"


def main():
    args = c.parse_args()
    os.environ.setdefault("XLA_FLAGS", xla_flags(args.threads))
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    t_import = time.perf_counter()
    import jax
    import jax.numpy as jnp

    import_ms = c.ms(t_import)
    xs, ys, w = c.load(args.run, args.batch)
    xs = [jax.device_put(x) for x in xs]
    ys = [jax.device_put(y) for y in ys]
    params = {k: jnp.asarray(v) for k, v in w.items()}

    def logits_of(p, tokens, key=None):
        h = p[c.EMBED][tokens].mean(axis=1)
        h = jax.nn.relu(h @ p[c.W1] + p[c.B1])  # mpc's [in, out] weights: x @ W
        if key is not None:
            keep = jax.random.bernoulli(key, 1.0 - c.DROPOUT, h.shape)
            h = jnp.where(keep, h / (1.0 - c.DROPOUT), 0.0)
        return h @ p[c.W2] + p[c.B2]

    def xent(logits, y):
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def loss_fn(p, tokens, y, key):
        return xent(logits_of(p, tokens, key), y)

    def train_step(p, m, v, t, tokens, y, key):
        loss, g = jax.value_and_grad(loss_fn)(p, tokens, y, key)
        t = t + 1.0
        bc1 = 1.0 - c.BETA1**t
        bc2 = 1.0 - c.BETA2**t
        m = jax.tree.map(lambda m, g: c.BETA1 * m + (1.0 - c.BETA1) * g, m, g)
        v = jax.tree.map(lambda v, g: c.BETA2 * v + (1.0 - c.BETA2) * g * g, v, g)
        p = jax.tree.map(
            lambda p, m, v: p - c.LR * (m / bc1) / (jnp.sqrt(v / bc2) + c.EPS), p, m, v
        )
        return p, m, v, t, loss

    def eval_step(p, tokens, y):
        return xent(logits_of(p, tokens), y)

    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    t = jnp.zeros((), jnp.float32)
    base_key = jax.random.key(0)

    t0 = time.perf_counter()
    train_c = (
        jax.jit(train_step, donate_argnums=(0, 1, 2, 3))
        .lower(params, m, v, t, xs[0], ys[0], jax.random.fold_in(base_key, 1))
        .compile()
    )
    eval_c = jax.jit(eval_step).lower(params, xs[0], ys[0]).compile()
    compile_ms = c.ms(t0)

    state = {"p": params, "m": m, "v": v, "t": t, "n": 0}

    def train(i):
        s = state
        s["n"] += 1
        key = jax.random.fold_in(base_key, s["n"])
        s["p"], s["m"], s["v"], s["t"], loss = train_c(s["p"], s["m"], s["v"], s["t"], xs[i], ys[i], key)
        jax.block_until_ready(s["p"])
        return float(loss)

    def evaluate(i):
        return float(eval_c(state["p"], xs[i], ys[i]))

    out = {
        "framework": "jax",
        "variant": "jit",
        "threads": args.threads,
        "batch": args.batch,
        "compile_ms": compile_ms,
        "import_ms": import_ms,
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }
    out.update(c.run_schedule(args, len(xs), train, evaluate))
    out["version"] = jax.__version__
    c.emit(out)


if __name__ == "__main__":
    sys.exit(main())
