"""Shared by the peer benchmarks: flags, Adam's settings, the timed schedule, medians,
peak RSS, the JSON line. (The run directory and the models' parameter names are
`models_common.py`'s.)

The schedule mirrors bench/src/schedule.rs (the mpc side) exactly:
  loss of the initial weights on batch 0 (eval mode) -> first training step (batch 0,
  timed) -> steps 2..sanity (losses recorded) -> warmup steps -> timed steps ->
  10 warm-up inference batches -> timed inference batches.
Training cycles through the batches in order.
"""

import argparse
import json
import statistics
import time

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def parse_args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, help="run directory written by the mpc side")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval", type=int, default=300)
    p.add_argument("--sanity", type=int, default=10)
    if extra:
        extra(p)
    return p.parse_args()


def ms(t0):
    return (time.perf_counter() - t0) * 1e3


def median(v):
    return statistics.median(v)


def p10(v):
    s = sorted(v)
    return s[len(s) // 10]


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def run_schedule(args, n_batches, train_step, eval_step):
    """Runs the schedule above. `train_step(i)` / `eval_step(i)` run on batch i and
    return the loss as a Python float (so the work is finished)."""
    init_eval_loss = eval_step(0)
    nxt = 0

    def step():
        nonlocal nxt
        i = nxt % n_batches
        nxt += 1
        return train_step(i)

    t0 = time.perf_counter()
    losses = [step()]
    first_step_ms = ms(t0)
    for _ in range(1, args.sanity):
        losses.append(step())
    for _ in range(args.warmup):
        step()
    train = []
    last = float("nan")
    for _ in range(args.steps):
        t0 = time.perf_counter()
        last = step()
        train.append(ms(t0))
    for i in range(10):
        eval_step(i % n_batches)
    infer = []
    eval_loss = float("nan")
    for i in range(args.eval):
        t0 = time.perf_counter()
        eval_loss = eval_step(i % n_batches)
        infer.append(ms(t0))
    return {
        "first_step_ms": first_step_ms,
        "train_step_ms": median(train),
        "train_step_p10_ms": p10(train),
        "infer_ms": median(infer),
        "steps": nxt,
        "init_eval_loss": init_eval_loss,
        "sanity_losses": losses,
        "last_loss": last,
        "eval_loss": eval_loss,
    }


def emit(fields):
    fields["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(fields), flush=True)
