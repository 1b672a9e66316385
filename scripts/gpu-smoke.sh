#!/usr/bin/env bash
# Hardware check: compare the exporter's NVML readings with nvidia-smi for about 60 seconds, under a
# PyTorch load where PyTorch is installed, and exit non-zero beyond the stated tolerances.
# Needs only nvidia-ml-py and this checkout (no install). Never changes a GPU setting.
#   scripts/gpu-smoke.sh              # on a machine with NVIDIA GPUs
#   scripts/gpu-smoke.sh --dry-run    # against the fake NVML and a fake nvidia-smi
# Options: --duration SECONDS (60), --interval SECONDS (1), --no-load. PYTHON picks the interpreter.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$repo/scripts/gpu_smoke.py" "$@"
