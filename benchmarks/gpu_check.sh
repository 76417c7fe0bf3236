#!/usr/bin/env bash
# The GPU check: training images/s (mobilevit_xxs, mobilevit_s at 256²; fp32 vs bf16 + channels_last; per-sample vs
# device-side augmentation), one paper-sized LOSO fold's wall time, folds sharing a GPU, the projected time of the
# paper's whole recipe at 1, 2 and 4 folds per GPU, MTCNN batched detection frames/s, and spotting frames/s on 640×480
# video (benchmarks/spot_speed.py --check). Under 6 minutes on a GPU.
# Without CUDA (or with --cpu-smoke) it runs small sizes on the CPU in about a minute, so CI keeps it working.
#
# Usage: bash benchmarks/gpu_check.sh [--cpu-smoke]      (PYTHON=... picks the interpreter; default: python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
args=(--check)
if [[ "${1:-}" == "--cpu-smoke" ]] || ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  args+=(--cpu-smoke)
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,utilization.gpu --format=csv,noheader || true
fi
echo "# load: $(uptime)"
timeout "${GPU_CHECK_TIMEOUT:-290}" "$PY" benchmarks/train_speed.py "${args[@]}"
# spotting throughput (mer spot's pipeline on 640×480 video): MTCNN on the GPU when there is one, flow on the CPU
spot_device=cuda
[[ " ${args[*]} " == *" --cpu-smoke "* ]] && spot_device=cpu
timeout "${SPOT_CHECK_TIMEOUT:-120}" "$PY" benchmarks/spot_speed.py --check --device "$spot_device"
