#!/usr/bin/env bash
# One-shot GPU benchmark: l3net train pairs/s (paper preset, bf16, channels_last, compiled, the real
# pair pipeline) against a bare step, embedding windows/s (fp32, bf16, compiled), peak GPU memory and
# achieved FLOP/s against the GPU's dense bf16 peak; under 8 minutes on one H100/H200.
#
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128     # once: a CUDA build of PyTorch
#   benchmarks/gpu.sh --json gpu.json                                 # then paste the output into BENCHMARKS.md
#   benchmarks/gpu.sh --device cpu --smoke                            # toy sizes: checks it runs end to end
#
# Options are benchmarks/gpu.py's (--help). PYTHON picks the interpreter (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader || true
fi
exec "$python" benchmarks/gpu.py "$@"
