#!/usr/bin/env bash
# On a machine with CUDA: what torch and ONNX Runtime see, the tests marked gpu, then the throughput table
# (fp32 and fp16 rows, the detector's provider named). Extra arguments go to benchmarks/throughput.py.
#   bash scripts/gpu_check.sh [--video PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import torch, onnxruntime as ort; cuda = torch.cuda.is_available(); \
print('torch', torch.__version__, '| CUDA', cuda, torch.cuda.get_device_name(0) if cuda else '', \
'| onnxruntime', ort.__version__, ort.get_available_providers())"
"$PY" -m pytest -m gpu -q -rs tests/model/test_gpu.py
"$PY" benchmarks/throughput.py --device cuda --batch-sizes 8 32 64 "$@"
