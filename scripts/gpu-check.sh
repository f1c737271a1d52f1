#!/usr/bin/env bash
# The PTX backend end to end. Two halves:
#
#  1. CPU side (any machine): release build, `mpc compile --emit ptx` of every example
#     (training and evaluation steps), `ptxas -arch=sm_80` and `-arch=sm_90` on each.
#  2. GPU side (needs an NVIDIA GPU and driver): every example's held-out loss at its
#     initial weights (the forward pass alone) must agree on CUDA and on the CPU to 1e-5
#     relative, and after one epoch from the same seed to 1e-3 (sums in other orders round
#     differently, and Adam's steps, divided by tiny second moments, magnify that: the
#     fusion model's 3072-long image products gave 1.2e-4 after one epoch). Then
#     the GPU benchmark: mpc on CUDA vs PyTorch CUDA eager, the text classifier on the same
#     data and initial weights (`mpc-bench step --write-only` writes them), one table.
#
#   scripts/gpu-check.sh [--steps N] [--epochs E]
#
# A machine without cargo (a GPU machine lent for minutes) uses the release binaries
# already in target/release (build them elsewhere on the same architecture and copy them).
# ptxas: $MPC_PTXAS, else ptxas on PATH or in /usr/local/cuda/bin, else installed into
# .venv-ptxas from PyPI (nvidia-cuda-nvcc). Every run is bounded by `timeout`, so a hung
# kernel fails the check instead of holding the machine. The benchmark's PyTorch: $PYTHON (default bench/.venv/bin/python,
# else python3) with a CUDA build of torch, numpy and safetensors.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
epochs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs="$2"; shift 2 ;;
    *) echo "usage: scripts/gpu-check.sh [--epochs E]" >&2; exit 2 ;;
  esac
done
out="$root/target/gpu-check"
mkdir -p "$out"

echo "== 1. CPU side: build, PTX, ptxas"
if command -v cargo >/dev/null 2>&1; then
  cargo build --release --quiet -p mpc -p mpc-bench
else
  echo "no cargo here: using the prebuilt target/release/mpc and mpc-bench"
fi
mpc="$root/target/release/mpc"
ptxas="${MPC_PTXAS:-$(command -v ptxas || true)}"
[ -z "$ptxas" ] && [ -x /usr/local/cuda/bin/ptxas ] && ptxas=/usr/local/cuda/bin/ptxas
if [ -z "$ptxas" ]; then
  if ! ls .venv-ptxas/lib/python3*/site-packages/nvidia/cu*/bin/ptxas >/dev/null 2>&1; then
    (python3 -m venv .venv-ptxas && .venv-ptxas/bin/pip install --quiet --no-deps nvidia-cuda-nvcc) ||
      echo "ptxas could not be installed (no network?)"
  fi
  ptxas="$(ls "$root"/.venv-ptxas/lib/python3*/site-packages/nvidia/cu*/bin/ptxas 2>/dev/null | head -n 1)"
fi
fail=0
if [ -z "$ptxas" ]; then
  echo "no ptxas: the PTX is not assembled here"
else
echo "ptxas: $ptxas ($("$ptxas" --version | tail -n 1))"
for f in examples/*.mp; do
  name="$(basename "$f" .mp)"
  for which in train eval; do
    flag=""; [ "$which" = eval ] && flag="--eval"
    ptx="$out/$name.$which.ptx"
    "$mpc" compile "$f" --emit ptx $flag > "$ptx"
    for arch in sm_80 sm_90; do
      if "$ptxas" -arch=$arch "$ptx" -o "$out/$name.$which.$arch.cubin" 2> "$out/ptxas.err"; then
        printf '  %-24s %-5s %-5s ok (%d lines of PTX)\n' "$name" "$which" "$arch" "$(wc -l < "$ptx")"
      else
        printf '  %-24s %-5s %-5s FAILED\n' "$name" "$which" "$arch"; cat "$out/ptxas.err"; fail=1
      fi
    done
  done
done
fi
[ $fail = 0 ] || echo "ptxas rejected some PTX (the GPU half runs all the same)"

echo
echo "== 2. GPU side: CUDA vs CPU losses, then the benchmark"
probe=$("$mpc" train examples/text_classifier.mp --device cuda --epochs 0 2>&1 >/dev/null || true)
if [ -n "$probe" ] || ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "GPU half NOT RUN: no usable CUDA device on this machine."
  echo "  ${probe:-nvidia-smi not found}"
  echo "Run scripts/gpu-check.sh on a machine with an NVIDIA GPU (sm_80 or later) and driver."
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader

# Losses: the mean training loss of each epoch and the held-out loss, CPU vs CUDA.
python_cmp='
import json, sys
cpu = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
gpu = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
worst = 0.0
for a, b in zip(cpu, gpu):
    for k in ("loss", "eval_loss"):
        if a.get(k) is None: continue
        rel = abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
        worst = max(worst, rel)
        tag = "epoch %s" % a.get("epoch", "final")
        print("    %-9s %-9s cpu %.7f  cuda %.7f  rel %.2e" % (tag, k, a[k], b[k], rel))
ms = lambda rows: [r["step_ms"] for r in rows if r.get("step_ms") is not None]
if ms(cpu) and ms(gpu):
    print("    step_ms   cpu (1 thread) %.3f  cuda %.3f" % (ms(cpu)[-1], ms(gpu)[-1]))
limit = float(sys.argv[3])
print("    worst relative difference %.2e (limit %g)" % (worst, limit))
sys.exit(0 if worst <= limit and len(cpu) == len(gpu) else 1)
'
for f in examples/*.mp; do
  name="$(basename "$f" .mp)"
  for epochs_limit in "0 1e-5" "1 1e-3"; do
    set -- $epochs_limit
    run_name="$name.e$1"
    if ! timeout 300 "$mpc" train "$f" --epochs "$1" --json --threads 1 > "$out/$run_name.cpu.jsonl" 2> "$out/$run_name.cpu.err"; then
      echo "  $name: skipped (the CPU run failed: $(head -n 1 "$out/$run_name.cpu.err"))"
      continue
    fi
    if ! timeout 120 "$mpc" train "$f" --epochs "$1" --json --device cuda > "$out/$run_name.cuda.jsonl" 2> "$out/$run_name.cuda.err"; then
      echo "  $name: CUDA run FAILED (exit $?): $(head -c 2000 "$out/$run_name.cuda.err")"; fail=1; continue
    fi
    echo "  $name, $1 epochs:"
    python3 -c "$python_cmp" "$out/$run_name.cpu.jsonl" "$out/$run_name.cuda.jsonl" "$2" || { echo "  $name: losses differ"; fail=1; }
  done
done
[ $fail = 0 ] || echo "CUDA and CPU disagree (the benchmark runs all the same)"

# Benchmark: the same run directory (data + initial weights) for both sides.
run="$out/bench-run"
"$root/target/release/mpc-bench" step --out "$run" --write-only > /dev/null
python="${PYTHON:-}"
[ -z "$python" ] && { [ -x bench/.venv/bin/python ] && python=bench/.venv/bin/python || python=python3; }
timeout 300 "$mpc" train examples/text_classifier.mp --data "$run" --init "$run/init.safetensors" --device cuda --epochs "$epochs" --json > "$out/bench.mpc.jsonl"
timeout 300 "$python" scripts/gpu_bench_torch.py --run "$run" --epochs "$epochs" > "$out/bench.torch.json"
python3 - "$out/bench.mpc.jsonl" "$out/bench.torch.json" <<'PY'
import json, statistics, sys
epochs = [json.loads(l) for l in open(sys.argv[1]) if l.strip() and '"epoch"' in l]
torch = json.loads(open(sys.argv[2]).read())
# Epoch 1 includes warm-up; the median of the others (or epoch 1 alone).
timed = epochs[1:] or epochs
mpc_ms = statistics.median(e["seconds"] * 1e3 / e["steps"] for e in timed)
rows = [("mpc (PTX, CUDA)", mpc_ms, epochs[-1]["loss"]), ("PyTorch CUDA eager", torch["step_ms"], torch["loss"])]
print()
print("text classifier, B=64, %d steps/epoch, GPU: %s" % (epochs[0]["steps"], torch.get("device", "?")))
print("| side | ms / training step (median epoch) | steps/s | last epoch loss | vs PyTorch |")
print("| --- | --- | --- | --- | --- |")
for name, ms, loss in rows:
    print("| %s | %.3f | %.0f | %.4f | %.2fx |" % (name, ms, 1e3 / ms, loss, torch["step_ms"] / ms))
PY
exit $fail
