#!/usr/bin/env bash
# GPU check: the device-agnostic tests on CUDA, then training-step time and rollout
# throughput per model on the GPU (float32 and bfloat16 autocast). Run from the repository root on a CUDA machine:
#     bash benchmarks/gpu_check.sh
set -euo pipefail
PY=${PY:-python}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('device:', torch.cuda.get_device_name(0))"
PCNODE_TEST_DEVICE=cuda $PY -m pytest -q -p no:warnings \
    tests/test_teacher_forcing.py tests/test_rollout.py tests/test_train.py
$PY benchmarks/train_speed.py --device cuda --steps 20 --precision float32 bfloat16
[ -d runs/quality ] || $PY benchmarks/quality.py --tasks billiards2d --device cuda
$PY benchmarks/rollout_speed.py --device cuda
