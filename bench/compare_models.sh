#!/usr/bin/env bash
# mpc vs PyTorch eager (Adam, fused Adam) vs JAX jit on the multimodal fusion model and
# the 2-layer graph network (runtime/examples/bench_models.rs, bench/models_*.py): same
# data, initial weights, batch order and threads. Same method as compare.sh (sides run
# one after another, interleaved over --reps rounds, pinned with taskset, a quiet-machine
# wait before each run), with a shorter default patience.
#
#   bench/compare_models.sh [--model fusion|graph|both] [--threads N] [--reps R]
#                           [--steps S] [--warmup W] [--out DIR] [--quiet PCT] [--patience S]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
models="fusion graph" threads=2 reps=3 steps=200 warmup=30 out="" quiet=15 patience=30
while [ $# -gt 0 ]; do
  case "$1" in
    --model) models="$2"; [ "$2" = both ] && models="fusion graph"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quiet) quiet="$2"; shift 2 ;;
    --patience) patience="$2"; shift 2 ;;
    *) echo "usage: bench/compare_models.sh [--model fusion|graph|both] [--threads N] [--reps R] [--steps S] [--warmup W] [--out DIR] [--quiet PCT] [--patience S]" >&2; exit 2 ;;
  esac
done
py="$root/bench/.venv/bin/python"
[ -x "$py" ] || { echo "bench/.venv is missing: run bench/setup.sh first" >&2; exit 1; }
ncpu="$(nproc)"
if [ "$threads" -lt 1 ] || [ "$threads" -gt "$ncpu" ]; then echo "--threads must be 1..$ncpu" >&2; exit 2; fi
base="${out:-$root/target/bench-models}"

cargo build --release --quiet -p mpc-runtime --example bench_models
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- compiler runtime/src src 2>/dev/null || rev="$rev (+ uncommitted changes)"
mpc="$root/target/release/examples/bench_models"

busy() {
  local a b
  read -r -a a < /proc/stat
  sleep 1
  read -r -a b < /proc/stat
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
measure() {
  local b waited=0 line
  b="$(busy)"
  while [ "$b" -ge "$quiet" ] && [ "$waited" -lt "$patience" ]; do
    [ "$waited" -eq 0 ] && echo "  waiting for a quiet machine ($b% busy)..." >&2
    b="$(busy)"; waited=$((waited + 1))
  done
  [ "$b" -ge "$quiet" ] && echo "  warning: still $b% busy after ${patience}s; running anyway" >&2
  line="$("$@")"
  echo "${line%\}},\"busy_pct\":$b,\"quiet_pct\":$quiet,\"load1\":$(cut -d' ' -f1 /proc/loadavg)}" >> "$results"
}

cpus="0-$((threads - 1))"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
common=(--threads "$threads" --steps "$steps" --warmup "$warmup")
for model in $models; do
  run="$base/$model"
  mkdir -p "$run"
  results="$run/results-t$threads.jsonl"
  : > "$results"
  "$mpc" --model "$model" --out "$run" --write-only > /dev/null
  echo "$model: load average before: $(cut -d' ' -f1-3 /proc/loadavg); pinned to cores $cpus; $reps rounds" >&2
  for rep in $(seq 1 "$reps"); do
    echo "round $rep/$reps" >&2
    measure taskset -c "$cpus" "$mpc" --model "$model" --out "$run" "${common[@]}"
    measure taskset -c "$cpus" "$py" bench/models_torch.py --model "$model" --run "$run" "${common[@]}"
    measure taskset -c "$cpus" "$py" bench/models_torch.py --model "$model" --run "$run" "${common[@]}" --fused
    measure taskset -c "$cpus" "$py" bench/models_jax.py --model "$model" --run "$run" "${common[@]}"
  done
  echo "$model: load average after: $(cut -d' ' -f1-3 /proc/loadavg); raw results: $results" >&2
  echo
  echo "## $model, $threads thread(s)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), mpc $rev, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu cores; $(rustc --version | cut -d' ' -f1-2); $("$py" -c 'import torch, jax; print(f"torch {torch.__version__}, jax {jax.__version__}")')"
  "$py" "$root/bench/summarize.py" "$results"
done
