#!/usr/bin/env bash
# Molecules benchmark (issue 12: mini-batches of many graphs): examples/molecules.mp
# trained on examples/data/molecules (3,993 molecules, 998 held out, batches of 64) by
#   mpc  `mpc train ... --data examples/data/molecules --json` (one compiled step for
#        every batch; its epoch JSON gives "seconds", the final line "compiles"),
#   PyG  bench/molecules_pyg.py (Data list + DataLoader collation, eager PyTorch, Adam),
#   JAX  bench/molecules_jax.py (jax.jit, batches padded to buckets, hand-written Adam),
# one process per side, sides alternating (mpc, PyG, JAX, mpc, ...) for R rounds, each
# pinned to cores 0..T-1 with taskset, K epochs each. An epoch = training steps over the
# training set + one evaluation pass over the held-out set. Prints a markdown table of
# medians over the rounds (bench/molecules_summary.py): first epoch (JAX compiles there),
# median of the later epochs, steps/s, compiles, peak RSS, held-out MAE, ratio vs mpc.
#
#   bench/molecules.sh [--epochs K] [--rounds R] [--threads T] [--seed S] [--mpc BIN] [--out DIR]
#                      [--quiet PCT] [--patience S]
#
# Defaults: K=5, R=3, T=2, S=0, BIN=$MPC or target/release/mpc (cargo build --release
# --bin mpc first), DIR=${TMPDIR:-/tmp}/mpc-bench-molecules. Does not build anything.
# As bench/run.sh, before each run it waits (up to --patience s, default 120) until the
# CPUs are less than --quiet % busy (default 15) over one second, and records how busy
# they were: eager PyTorch in particular slows down many times when a cargo build holds a core.
# Peak RSS: mpc from /usr/bin/time -v (else the children's ru_maxrss), the Python sides
# their own ru_maxrss. Needs bench/.venv (bench/setup.sh) with torch_geometric.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
usage="usage: bench/molecules.sh [--epochs K] [--rounds R] [--threads T] [--seed S] [--mpc BIN] [--out DIR] [--quiet PCT] [--patience S]"
epochs=5 rounds=3 threads=2 seed=0 quiet=15 patience=120 mpc="${MPC:-target/release/mpc}" out="${TMPDIR:-/tmp}/mpc-bench-molecules"
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --mpc) mpc="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quiet) quiet="$2"; shift 2 ;;
    --patience) patience="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
py="$root/bench/.venv/bin/python"
[ -x "$py" ] || { echo "bench/.venv is missing: run bench/setup.sh first" >&2; exit 1; }
[ -x "$mpc" ] || { echo "no mpc binary at $mpc (--mpc BIN or MPC=BIN)" >&2; exit 1; }
ncpu="$(nproc)"
if [ "$threads" -lt 1 ] || [ "$threads" -gt "$ncpu" ]; then echo "--threads must be 1..$ncpu" >&2; exit 2; fi
cpus="0-$((threads - 1))"
data="$root/examples/data/molecules"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
mkdir -p "$out"
rm -f "$out"/round*.jsonl "$out"/round*.err "$out"/round*.time

# busy: percent of the CPUs busy over one second.
source "$root/bench/quiet.sh"

# run SIDE ROUND CMD...: waits for a quiet machine, then the command's stdout to
# $out/roundR-SIDE.jsonl, then a line with the process's wall time, how busy the CPUs
# were just before it and the 1-minute load average when it ended.
run() {
  local side="$1" r="$2"; shift 2
  local f="$out/round$r-$side" t0 t1 b waited=0
  b="$(busy)"
  while [ "$b" -ge "$quiet" ] && [ "$waited" -lt "$patience" ]; do
    [ "$waited" -eq 0 ] && echo "  $side: waiting for a quiet machine ($b% busy)..." >&2
    b="$(busy)"; waited=$((waited + 1))
  done
  [ "$b" -ge "$quiet" ] && echo "  $side: still $b% busy after ${patience}s; running anyway" >&2
  t0="$(date +%s.%N)"
  "$@" > "$f.jsonl" 2> "$f.err" || { echo "$side failed, see $f.err" >&2; tail -5 "$f.err" >&2; exit 1; }
  t1="$(date +%s.%N)"
  echo "{\"wall_seconds\": $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'), \"busy_pct\": $b, \"load1\": $(cut -d' ' -f1 /proc/loadavg)}" >> "$f.jsonl"
}

if [ -x /usr/bin/time ]; then
  mpc_run() { /usr/bin/time -v -o "$out/round$1-mpc.time" "${@:2}"; }
else
  # No GNU time: the peak RSS of the child, read by a Python parent after it exits.
  mpc_run() {
    "$py" -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write("Maximum resident set size (kbytes): %d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)' "$out/round$1-mpc.time" "${@:2}"
  }
fi

load_before="$(uptime)"
echo "load before: $load_before; pinned to cores $cpus; $rounds rounds of $epochs epochs; raw output in $out" >&2
for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds" >&2
  run mpc "$r" mpc_run "$r" taskset -c "$cpus" "$mpc" train "$root/examples/molecules.mp" --data "$data" \
    --epochs "$epochs" --json --threads "$threads" --seed "$seed"
  run pyg "$r" taskset -c "$cpus" "$py" bench/molecules_pyg.py --epochs "$epochs" --threads "$threads" --seed "$seed"
  run jax "$r" taskset -c "$cpus" "$py" bench/molecules_jax.py --epochs "$epochs" --threads "$threads" --seed "$seed"
done
load_after="$(uptime)"
echo "load after: $load_after" >&2

echo
echo "## Molecules (examples/molecules.mp), $threads thread(s), $rounds rounds x $epochs epochs"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu cores; mpc $mpc; $("$py" -c 'import torch, torch_geometric, jax; print(f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, jax {jax.__version__}")' 2>/dev/null)"
echo "load before: ${load_before#*load average: }; after: ${load_after#*load average: }"
echo
"$py" bench/molecules_summary.py "$out" "$rounds"
