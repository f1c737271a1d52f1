#!/usr/bin/env bash
# mpc vs PyTorch eager (Adam, fused Adam) vs JAX jit: same model, data, initial weights,
# batch order and threads on every side.
#
#   bench/run.sh [text|fusion|graph|transformer|gat|gat-karate|gnn-nonlinear|all] [--threads N] [--reps R] [--steps S] [--warmup W]
#                [--out DIR] [--quiet PCT] [--patience S]
#
# text: the text classifier (B=64, T=32, vocab 10000, Adam); fusion: examples/fusion.mp;
# graph: a 2-layer mean-aggregation GNN (N=2000, E=10000); transformer:
# examples/transformer.mp on the language-id words; gat: examples/gat.mp at N=2000,
# E=10000, F=32 (PyG GATConv on the PyTorch side); gat-karate: examples/gat.mp on the
# karate club as shipped; gnn-nonlinear: a 2-layer GNN with messages
# tanh(linear(concat(src, dst), 32)), max then sum aggregation (N=3000, E=15000, F=16),
# with PyG MessagePassing layers as two more PyTorch rows; all: every model, one table each.
# Builds mpc-bench in release, writes each model's run directory (data + initial weights,
# `mpc-bench models --model M --write-only`), then runs the sides ONE AFTER ANOTHER, R
# rounds (sides interleaved, so a change in machine load hits all of them), each process
# pinned to cores 0..N-1 with taskset, and prints the table of medians with ratios vs mpc
# (bench/summarize.py). Needs bench/.venv (bench/setup.sh). Run it on a quiet machine:
# another process on a core (a cargo build) makes millisecond timings several times
# worse, so before each run the script waits (up to --patience seconds) until the CPUs are
# less than --quiet percent busy (default 15) over one second, and records how busy they
# were. Defaults: text 5 rounds of 300 timed steps after 50 warm-up steps, patience 600 s;
# the others 3 rounds of 200 after 30, patience 30 s (flags override all models).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
usage="usage: bench/run.sh [text|fusion|graph|transformer|gat|gat-karate|gnn-nonlinear|all] [--threads N] [--reps R] [--steps S] [--warmup W] [--out DIR] [--quiet PCT] [--patience S]"
models="text" threads=2 reps="" steps="" warmup="" out="" quiet=15 patience=""
while [ $# -gt 0 ]; do
  case "$1" in
    text|fusion|graph|transformer|gat|gat-karate|gnn-nonlinear) models="$1"; shift ;;
    all) models="text fusion graph transformer gat gat-karate gnn-nonlinear"; shift ;;
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quiet) quiet="$2"; shift 2 ;;
    --patience) patience="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
py="$root/bench/.venv/bin/python"
[ -x "$py" ] || { echo "bench/.venv is missing: run bench/setup.sh first" >&2; exit 1; }
ncpu="$(nproc)"
if [ "$threads" -lt 1 ] || [ "$threads" -gt "$ncpu" ]; then echo "--threads must be 1..$ncpu" >&2; exit 2; fi
# The cargo target directory (CARGO_TARGET_DIR when set, as cargo itself does).
target="${CARGO_TARGET_DIR:-$root/target}"
base="${out:-$target/bench-run}"

cargo build --release --quiet -p mpc-bench
# What was built: the commit, and whether the sources differed from it.
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- compiler runtime/src src bench/src 2>/dev/null || rev="$rev (+ uncommitted changes)"
mpc="$target/release/mpc-bench"

# busy: percent of the CPUs busy over one second.
source "$root/bench/quiet.sh"
# Waits for a quiet machine, runs "$@" and appends its JSON line, with busy_pct, the
# threshold and the load average, to $results.
measure() {
  local b waited=0 line
  b="$(busy)"
  while [ "$b" -ge "$quiet" ] && [ "$waited" -lt "$wait_s" ]; do
    [ "$waited" -eq 0 ] && echo "  waiting for a quiet machine ($b% busy)..." >&2
    b="$(busy)"; waited=$((waited + 1))
  done
  [ "$b" -ge "$quiet" ] && echo "  warning: still $b% busy after ${wait_s}s; running anyway" >&2
  line="$("$@")"
  echo "${line%\}},\"busy_pct\":$b,\"quiet_pct\":$quiet,\"load1\":$(cut -d' ' -f1 /proc/loadavg)}" >> "$results"
}

cpus="0-$((threads - 1))"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
for model in $models; do
  if [ "$model" = text ]; then d_reps=5 d_steps=300 d_warmup=50 d_patience=600; else d_reps=3 d_steps=200 d_warmup=30 d_patience=30; fi
  rounds="${reps:-$d_reps}" wait_s="${patience:-$d_patience}"
  common=(--model "$model" --threads "$threads" --steps "${steps:-$d_steps}" --warmup "${warmup:-$d_warmup}")
  run="$base/$model"
  mkdir -p "$run"
  results="$run/results-t$threads.jsonl"
  : > "$results"
  "$mpc" models --model "$model" --out "$run" --write-only > /dev/null
  echo "$model: load average before: $(cut -d' ' -f1-3 /proc/loadavg); pinned to cores $cpus; $rounds rounds" >&2
  for rep in $(seq 1 "$rounds"); do
    echo "round $rep/$rounds" >&2
    measure taskset -c "$cpus" "$mpc" models --out "$run" "${common[@]}"
    measure taskset -c "$cpus" "$py" bench/models_torch.py --run "$run" "${common[@]}"
    measure taskset -c "$cpus" "$py" bench/models_torch.py --run "$run" "${common[@]}" --fused
    if [ "$model" = gnn-nonlinear ]; then
      measure taskset -c "$cpus" "$py" bench/models_torch.py --run "$run" "${common[@]}" --pyg
      measure taskset -c "$cpus" "$py" bench/models_torch.py --run "$run" "${common[@]}" --pyg --fused
    fi
    measure taskset -c "$cpus" "$py" bench/models_jax.py --run "$run" "${common[@]}"
  done
  echo "$model: load average after: $(cut -d' ' -f1-3 /proc/loadavg); raw results: $results" >&2
  echo
  echo "## $model, $threads thread(s)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), mpc $rev, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu cores; $(rustc --version | cut -d' ' -f1-2); $("$py" -c 'import torch, jax; print(f"torch {torch.__version__}, jax {jax.__version__}")')"
  "$py" "$root/bench/summarize.py" "$results"
done
