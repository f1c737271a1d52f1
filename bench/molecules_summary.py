"""Table of the molecules benchmark (bench/molecules.sh): reads DIR/roundR-SIDE.jsonl
(the side's JSON lines, mpc's raw `train --json` output, plus the runner's wall-time
line) and DIR/roundR-mpc.time (`/usr/bin/time -v` of mpc), prints a markdown table of
medians over the rounds.

  python bench/molecules_summary.py DIR ROUNDS

Columns: first epoch s (JAX compiles most of its shapes there; mpc compiles before its
first epoch, see the process wall column), median of epochs 2..K (per run, then the
median over the rounds), training steps per second = steps of an epoch / that median
(the epoch's time includes the held-out pass), compiles (train + eval), all epochs s
(their sum: a shape first met in a later epoch compiles there), peak RSS MB,
held-out MAE after the last epoch, process wall s (start to exit: imports, data
loading, compiles, all K epochs), median epoch time / mpc's.
"""

import json
import re
import statistics
import sys

SIDES = [
    ("mpc", "mpc (Cranelift JIT)"),
    ("pyg", "PyG DataLoader + eager PyTorch"),
    ("jax", "JAX jit, padded buckets"),
]


def read_run(d, r, side):
    epochs, final, extra = [], {}, {}
    with open(f"{d}/round{r}-{side}.jsonl") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            o = json.loads(line)
            if "wall_seconds" in o:
                extra = o
            elif o.get("final"):
                final = o
            elif "epoch" in o:
                epochs.append(o)
    if side == "mpc":
        with open(f"{d}/round{r}-mpc.time") as f:
            kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
        final["peak_rss_mb"] = int(kb.group(1)) / 1024.0 if kb else None
    later = [e["seconds"] for e in epochs[1:]] or [epochs[0]["seconds"]]
    return {
        "first": epochs[0]["seconds"],
        "later": statistics.median(later),
        "total": sum(e["seconds"] for e in epochs),
        "steps": epochs[-1]["steps"],
        "compiles": final["compiles"],
        "rss": final["peak_rss_mb"],
        "mae": epochs[-1]["eval_mae"],
        "wall": extra.get("wall_seconds"),
        "load1": extra.get("load1"),
        "busy": extra.get("busy_pct"),
        "all": [round(e["seconds"], 3) for e in epochs],
    }


def main():
    d, rounds = sys.argv[1], int(sys.argv[2])
    med = statistics.median
    rows = {}
    for side, _ in SIDES:
        runs = [read_run(d, r, side) for r in range(1, rounds + 1)]
        rows[side] = {
            "first": med(x["first"] for x in runs),
            "later": med(x["later"] for x in runs),
            "total": med(x["total"] for x in runs),
            "steps": runs[0]["steps"],
            "compiles": runs[0]["compiles"],
            "compiles_all": sorted({(x["compiles"]["train"], x["compiles"]["eval"]) for x in runs}),
            "rss": med(x["rss"] for x in runs),
            "mae": med(x["mae"] for x in runs),
            "mae_range": (min(x["mae"] for x in runs), max(x["mae"] for x in runs)),
            "wall": med(x["wall"] for x in runs),
            "later_range": (min(x["later"] for x in runs), max(x["later"] for x in runs)),
            "load1": [x["load1"] for x in runs],
            "busy": [x["busy"] for x in runs],
            "all": [x["all"] for x in runs],
        }
    base = rows["mpc"]["later"]
    print("| side | first epoch s | median later epoch s | x mpc | steps/s | compiles (train + eval) "
          "| all epochs s | peak RSS MB | held-out MAE | process wall s |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for side, name in SIDES:
        x = rows[side]
        comp = ", ".join(f"{t} + {e}" for t, e in x["compiles_all"])
        print(f"| {name} | {x['first']:.3f} | {x['later']:.3f} | {x['later'] / base:.2f} "
              f"| {x['steps'] / x['later']:.0f} | {comp} | {x['total']:.2f} | {x['rss']:.0f} | {x['mae']:.2f} | {x['wall']:.2f} |")
    print()
    print("Per side: range over the rounds of the median later epoch s and of the final MAE; "
          "CPU busy % just before each run and 1-min load average when it ended; every epoch's seconds, run by run.")
    print()
    for side, name in SIDES:
        x = rows[side]
        print(f"- {name}: later epoch {x['later_range'][0]:.3f}-{x['later_range'][1]:.3f} s, "
              f"MAE {x['mae_range'][0]:.2f}-{x['mae_range'][1]:.2f}, busy {x['busy']} %, load {x['load1']}, epochs {x['all']}")


if __name__ == "__main__":
    main()
