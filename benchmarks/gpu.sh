#!/usr/bin/env bash
# Issue 14 item 6 in one command, on a machine with a CUDA GPU (prepared on a CPU-only machine; not yet run):
#   1. the tests that take the CUDA path (device resolution, the runtime's forward, the fused form, the speed
#      paths; each of these runs its CUDA branch when torch sees a GPU),
#   2. benchmarks/gpu.py: 30-view forward fp32 / bf16 autocast / channels-last vs mmaction2 on the same GPU, peak
#      memory, end-to-end videos/s with uint8 views normalised on the GPU, the Kinetics-400 validation estimate.
# Usage: benchmarks/gpu.sh [SECONDS]   (default 540: everything stops by then; the results are in $OUT or ./gpu-results)
set -u
cd "$(dirname "$0")/.."
LIMIT="${1:-540}"
OUT_DIR="${OUT:-gpu-results}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/nvidia-smi.txt"
timeout $((LIMIT / 3)) "$PY" -m pytest -q -x -p no:cacheprovider \
  tests/test_runtime.py tests/test_fuse.py tests/test_speed_paths.py tests/test_first_hour.py \
  2>&1 | tail -30 | tee "$OUT_DIR/cuda-tests.txt"
timeout $((LIMIT - LIMIT / 3)) "$PY" benchmarks/gpu.py --json "$OUT_DIR/gpu.json" 2>&1 | tee "$OUT_DIR/gpu.txt"
