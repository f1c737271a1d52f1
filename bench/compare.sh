#!/usr/bin/env bash
# mpc vs PyTorch eager (Adam, fused Adam) vs JAX jit on the text classifier
# (B=64, T=32, vocab 10000, Adam), same data, initial weights, batch order and threads.
#
#   bench/compare.sh [--threads N] [--reps R] [--steps S] [--out DIR]
#
# Builds the mpc side (release), writes the run directory (data + initial weights),
# then runs every side ONE AFTER ANOTHER, R rounds (sides interleaved, so a change in
# machine load hits all of them), each process pinned to cores 0..N-1 with taskset,
# and prints the table of medians (bench/summarize.py). Needs bench/.venv
# (bench/setup.sh). Run it on a quiet machine: another process on a core (a cargo
# build) makes millisecond timings several times worse, so before each run the script
# waits (up to --patience seconds, default 600) until the machine's CPUs are less than
# --quiet percent busy (default 15) over one second, and records how busy they were.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads=2 reps=5 steps=300 out="" quiet=15 patience=600
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quiet) quiet="$2"; shift 2 ;;
    --patience) patience="$2"; shift 2 ;;
    *) echo "usage: bench/compare.sh [--threads N] [--reps R] [--steps S] [--out DIR] [--quiet PCT] [--patience S]" >&2; exit 2 ;;
  esac
done
py="$root/bench/.venv/bin/python"
if [ ! -x "$py" ]; then
  echo "bench/.venv is missing: run bench/setup.sh first" >&2
  exit 1
fi
ncpu="$(nproc)"
if [ "$threads" -lt 1 ] || [ "$threads" -gt "$ncpu" ]; then
  echo "--threads must be 1..$ncpu" >&2
  exit 2
fi
run="${out:-$root/target/bench-run}"
mkdir -p "$run"
results="$run/results-t$threads.jsonl"
: > "$results"

cargo build --release --quiet -p mpc-runtime --example bench_step
# What was built: the commit, and whether the sources differed from it.
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- compiler runtime src 2>/dev/null || rev="$rev (+ uncommitted changes)"
mpc="$root/target/release/examples/bench_step"
"$mpc" --out "$run" --write-only > /dev/null

# Percent of all CPU time spent busy over one second (this script sleeps meanwhile).
busy() {
  local a b
  read -r -a a < /proc/stat
  sleep 1
  read -r -a b < /proc/stat
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
# Waits for a quiet machine, runs "$@" and appends its JSON line, with busy_pct, to $results.
measure() {
  local b waited=0 line
  b="$(busy)"
  while [ "$b" -ge "$quiet" ] && [ "$waited" -lt "$patience" ]; do
    [ "$waited" -eq 0 ] && echo "  waiting for a quiet machine ($b% busy)..." >&2
    b="$(busy)"; waited=$((waited + 1))
  done
  [ "$b" -ge "$quiet" ] && echo "  warning: still $b% busy after ${patience}s; running anyway" >&2
  line="$("$@")"
  echo "${line%\}},\"busy_pct\":$b,\"quiet_pct\":$quiet}" >> "$results"
}

cpus="0-$((threads - 1))"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
common=(--threads "$threads" --steps "$steps")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); pinned to cores $cpus; $reps rounds" >&2
for rep in $(seq 1 "$reps"); do
  echo "round $rep/$reps" >&2
  measure taskset -c "$cpus" "$mpc" --out "$run" "${common[@]}"
  measure taskset -c "$cpus" "$py" bench/text_classifier_torch.py --run "$run" "${common[@]}"
  measure taskset -c "$cpus" "$py" bench/text_classifier_torch.py --run "$run" "${common[@]}" --fused
  measure taskset -c "$cpus" "$py" bench/text_classifier_jax.py --run "$run" "${common[@]}"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); raw results: $results" >&2
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), mpc $rev, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ncpu cores; $(rustc --version | cut -d' ' -f1-2); $("$py" -c 'import torch, jax; print(f"torch {torch.__version__}, jax {jax.__version__}")')"
"$py" "$root/bench/summarize.py" "$results"
