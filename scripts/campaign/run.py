#!/usr/bin/env python3
"""A hostile-input campaign against a release `mpc` binary (issue 10): seeded mutations
of the example models through `mpc train FILE --epochs 1`, corrupted data directories
(`--data DIR`, npy and CSV), corrupted checkpoints (`mpc run FILE --weights W`), and a
fixed list of command-line misuse. Every run is classified:

  clean     exit 0, or exit 1 with a line of stderr starting `error:` (rendered
            diagnostics end with their source excerpt, so not always the last line)
            and no `panicked at`
  panic     exit 101, or `panicked at` on stderr
  hang      no exit within --timeout seconds, twice: a run that times out is rerun
            alone with --confirm-factor (6) times the time; one that then finishes is
            listed as slow (kept with its reproducer) and counted by how it ended
  abort     killed by a signal or exit >= 128 (an allocation failure aborts: SIGABRT),
            or any other exit code

and the table `class | tried | clean errors | panics | hangs | aborts/OOM` is printed
(plus `succeeded`: the clean runs that exited 0). Every non-clean case is kept under
OUT/findings/<class>-<n>/ with its files, `cmd.sh` (the reproducer), stdout and stderr.

The classes live in models.py, data.py, checkpoints.py and misuse.py, running and
classifying in runner.py, shared pieces in common.py. Python 3 standard library only. Reproducible: the same --seed and --count give the same
cases. Each run has an address-space limit (--memory-gb) so that a huge allocation
fails (an abort, counted) instead of taking the machine down.

  python3 scripts/campaign/run.py --mpc /work/campaign-bin/mpc --out /work/campaign-out \\
      --seed 1 --count model=3000 --count data=400 --count checkpoint=300
"""

import argparse
import concurrent.futures
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkpoints import checkpoint_cases, make_checkpoints  # noqa: E402
from data import data_cases  # noqa: E402
from misuse import misuse_cases  # noqa: E402
from models import model_cases  # noqa: E402
from runner import execute, keep, signature  # noqa: E402

CLASSES = ["model", "data", "checkpoint", "misuse"]


def parse_counts(specs):
    counts = {"model": 3000, "data": 400, "checkpoint": 300, "misuse": 1}
    for s in specs or []:
        if "=" in s:
            k, v = s.split("=", 1)
            if k not in counts:
                sys.exit(f"--count {s}: classes are {', '.join(counts)}")
            counts[k] = int(v)
        else:
            for k in ("model", "data", "checkpoint"):
                counts[k] = int(s)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpc", default="/work/campaign-bin/mpc", help="the mpc binary (a release build)")
    ap.add_argument("--out", default="/work/campaign-out", help="findings and scratch directory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", action="append",
                    help="N (every generated class) or CLASS=N (model, data, checkpoint; misuse=0 skips the list)")
    ap.add_argument("--classes", default=",".join(CLASSES), help="comma-separated subset of " + ",".join(CLASSES))
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a run counts as a hang")
    ap.add_argument("--confirm-factor", type=float, default=6.0,
                    help="a timed-out run is rerun alone with this many times the timeout; only one that "
                         "times out again counts as a hang")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="one line per run: case, kind, exit, last stderr line")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of each run")
    args = ap.parse_args()
    mpc = str(Path(args.mpc).resolve())
    counts = parse_counts(args.count)
    classes = [c for c in args.classes.split(",") if c]
    out = Path(args.out)
    work, findings = out / "work", out / "findings"
    for d in (work, findings):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    base, other = make_checkpoints(mpc, work)

    cases = []
    for cls in classes:
        rng = random.Random(f"{args.seed}-{cls}")
        if cls == "model":
            cases += model_cases(rng, counts["model"])
        elif cls == "data":
            cases += data_cases(rng, counts["data"])
        elif cls == "checkpoint":
            cases += checkpoint_cases(rng, counts["checkpoint"], base, other)
        elif cls == "misuse" and counts["misuse"]:
            cases += misuse_cases(base)
        elif cls != "misuse":
            sys.exit(f"unknown class {cls}")

    stats = {c: {"tried": 0, "ok": 0, "clean": 0, "panic": 0, "hang": 0, "abort": 0, "slow": 0} for c in classes}
    bad = []
    slow_cases = []
    start = time.monotonic()
    done = 0

    def one(case):
        result = execute(case, mpc, work, args.timeout, args.memory_gb)
        return case, result

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for case, (kind, code, dt, so, se, d) in pool.map(one, cases):
            if kind == "hang":
                # Confirm alone, with --confirm-factor times the time: a run that then
                # finishes was slow (legitimate work: a huge vocabulary, a batch of one),
                # not stuck; it is kept and listed, but counted by how it ended.
                kind, code, dt, so, se, d = execute(case, mpc, work, args.timeout * args.confirm_factor,
                                                    args.memory_gb)
                if kind != "hang":
                    stats[case.cls]["slow"] += 1
                    slow_cases.append((case, kind, code, dt))
                    if kind in ("ok", "clean"):
                        # Kept here; a non-clean end is kept below like any other.
                        keep(case, kind, code, dt, so, se, d, findings)
                        d = findings / f"{case.cls}-{case.n}"
            if args.verbose:
                last = next((line for line in reversed(se.splitlines()) if line.strip()), "")
                print(f"{case.cls}-{case.n} {kind} exit={code} {dt:.1f}s [{case.desc[:80]}] {last[:150]}",
                      file=sys.stderr)
            s = stats[case.cls]
            s["tried"] += 1
            s[kind] += 1
            if kind in ("ok", "clean"):
                if d.parent == work:
                    shutil.rmtree(d, ignore_errors=True)
            else:
                keep(case, kind, code, dt, so, se, d, findings)
                bad.append((case, kind, code, se))
            done += 1
            if done % 200 == 0:
                print(f"... {done}/{len(cases)} runs, {time.monotonic() - start:.0f} s", file=sys.stderr)

    print(f"\nmpc campaign: seed {args.seed}, {len(cases)} runs in {time.monotonic() - start:.0f} s, "
          f"timeout {args.timeout:g} s, binary {mpc}\n")
    print("| class | tried | clean errors | panics | hangs | aborts/OOM | succeeded (exit 0) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = {k: 0 for k in ("tried", "ok", "clean", "panic", "hang", "abort")}
    for cls in classes:
        s = stats[cls]
        for k in total:
            total[k] += s[k]
        print(f"| {cls} | {s['tried']} | {s['clean']} | {s['panic']} | {s['hang']} | {s['abort']} | {s['ok']} |")
    t = total
    print(f"| all | {t['tried']} | {t['clean']} | {t['panic']} | {t['hang']} | {t['abort']} | {t['ok']} |")
    if slow_cases:
        print(f"\n{len(slow_cases)} run(s) took over {args.timeout:g} s but finished when rerun alone within "
              f"{args.timeout * args.confirm_factor:g} s (counted by how they ended; kept under findings/):")
        for case, kind, code, dt in slow_cases:
            print(f"  - {case.cls}-{case.n} [{kind}, exit {code}, {dt:.1f} s alone] {case.desc[:120]}")
    if bad:
        groups = {}
        for case, kind, code, err in bad:
            groups.setdefault((kind, signature(err)), []).append(case)
        print(f"\nNon-clean cases ({len(bad)}) in {len(groups)} groups (kind, where); reproducers: "
              f"{findings}/<case>/cmd.sh (MPC=/path/to/mpc sh cmd.sh)")
        for (kind, where), group in sorted(groups.items(), key=lambda g: -len(g[1])):
            print(f"\n{kind} x{len(group)}: {where}")
            for case in group[:5]:
                print(f"  - {case.cls}-{case.n}: {case.desc[:150]}")
            if len(group) > 5:
                print(f"  - ... and {len(group) - 5} more: "
                      + " ".join(f"{c.cls}-{c.n}" for c in group[5:40]) + (" ..." if len(group) > 40 else ""))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
