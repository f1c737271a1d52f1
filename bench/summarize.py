"""Reads the JSON lines of bench/run.sh (one per run) and prints a Markdown table:
per framework the median over repetitions of each run's medians, and ratios vs mpc
(peer time / mpc time: above 1 means mpc is faster). Then the same ratios from each
side's fastest round: on a shared machine whose slow phases (2x, seconds to minutes,
for every framework) only ever add time, the fastest round is the least disturbed one,
and a slow phase that hits one side's rounds more than the other's moves the medians'
ratio but not this one.

  python bench/summarize.py results.jsonl
"""

import json
import statistics
import sys

ORDER = [
    ("mpc", "jit", "mpc (Cranelift JIT)"),
    ("torch", "eager, Adam", "PyTorch eager, Adam"),
    ("torch", "eager, fused Adam", "PyTorch eager, Adam(fused=True)"),
    # gnn-nonlinear only: the same model from PyG MessagePassing layers.
    ("torch", "pyg, Adam", "PyTorch + PyG MessagePassing, Adam"),
    ("torch", "pyg, fused Adam", "PyTorch + PyG MessagePassing, Adam(fused=True)"),
    ("jax", "jit", "JAX jax.jit"),
]


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    groups = {}
    for r in runs:
        groups.setdefault((r["framework"], r["variant"]), []).append(r)
    mpc = groups.get(("mpc", "jit"))
    if not mpc:
        sys.exit(f"{path}: no mpc runs")
    base_train, base_infer = med(mpc, "train_step_ms"), med(mpc, "infer_ms")
    threads = sorted({r["threads"] for r in runs})
    print(f"threads: {', '.join(map(str, threads))}; runs per row: "
          f"{', '.join(str(len(groups[(f, v)])) for f, v, _ in ORDER if (f, v) in groups)}")
    print()
    print("| | train step ms | x mpc | inference ms | x mpc | compile ms | first step ms | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for f, v, label in ORDER:
        rows = groups.get((f, v))
        if not rows:
            continue
        tr, inf = med(rows, "train_step_ms"), med(rows, "infer_ms")
        comp = med(rows, "compile_ms")
        comp = "n/a (eager)" if comp != comp else f"{comp:.1f}"
        print(f"| {label} | {tr:.3f} | {tr / base_train:.2f} | {inf:.3f} | {inf / base_infer:.2f} "
              f"| {comp} | {med(rows, 'first_step_ms'):.1f} "
              f"| {med(rows, 'peak_rss_mb'):.0f} |")
    print()
    print("Fastest round per side (see the module doc):")
    print()
    print("| | train step ms | x mpc | inference ms | x mpc |")
    print("| --- | ---: | ---: | ---: | ---: |")
    best = lambda rows, key: min(r[key] for r in rows)  # noqa: E731
    best_train, best_infer = best(mpc, "train_step_ms"), best(mpc, "infer_ms")
    for f, v, label in ORDER:
        rows = groups.get((f, v))
        if rows:
            tr, inf = best(rows, "train_step_ms"), best(rows, "infer_ms")
            print(f"| {label} | {tr:.3f} | {tr / best_train:.2f} | {inf:.3f} | {inf / best_infer:.2f} |")
    busy = [r["busy_pct"] for r in runs if r.get("busy_pct") is not None]
    if busy:
        print()
        print(f"CPU busy with other processes just before each run: median {statistics.median(busy):.0f}%, "
              f"max {max(busy):.0f}% (run.sh waits for < {runs[0].get('quiet_pct', '?')}%)")
    print()
    print("Sanity (first run of each): loss of the initial weights on batch 0 without dropout "
          "(must agree to ~1e-6), and training losses of steps 1, 5, 10 and the mean of steps "
          "1-10 (dropout masks differ between frameworks, so these agree only roughly).")
    print()
    print("| | init eval loss | step 1 | step 5 | step 10 | mean 1-10 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for f, v, label in ORDER:
        rows = groups.get((f, v))
        if not rows:
            continue
        s = rows[0]["sanity_losses"]
        pick = lambda i: f"{s[i]:.4f}" if len(s) > i else "-"  # noqa: E731
        print(f"| {label} | {rows[0]['init_eval_loss']:.7f} | {pick(0)} | {pick(4)} | {pick(9)} "
              f"| {statistics.mean(s):.4f} |")


if __name__ == "__main__":
    main(sys.argv[1])
