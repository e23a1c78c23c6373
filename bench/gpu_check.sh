#!/usr/bin/env bash
# The GPU check (issue 14, item 5): see bench/gpu_check.py and bench/README.md.
#   bash bench/gpu_check.sh                         # CUDA, <= 8 minutes -> bench/results/gpu_check_cuda.json
#   bash bench/gpu_check.sh --device cpu --quick    # tiny CPU smoke of the same steps (gloo instead of nccl)
# Each step has its own time limit within --budget (480 s on CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/gpu_check.py "$@"
