#!/usr/bin/env bash
# Creates bench/.venv with the peers of the mpc benchmark: PyTorch, JAX (CPU), numpy,
# safetensors, torch-geometric (PyG, for the GAT parity and benchmark). torch from PyPI pulls the CUDA wheels (~3 GB); it runs on the CPU.
# Idempotent: re-running upgrades nothing that is already installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet torch "jax[cpu]" numpy safetensors torch-geometric
"$venv/bin/python" - <<'PY'
import jax, numpy, safetensors, torch, torch_geometric
print(f"bench/.venv: torch {torch.__version__}, jax {jax.__version__}, "
      f"numpy {numpy.__version__}, safetensors {safetensors.__version__}, "
      f"torch_geometric {torch_geometric.__version__}")
PY
